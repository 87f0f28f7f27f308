"""The ``remask`` command line.

Each feature module exposes ``register(subparsers)`` that adds its subcommands and sets
``func`` on them; this file only gathers them, so features never edit each other's code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# modules with a ``register(subparsers)`` function, in help order
COMMAND_MODULES: tuple[str, ...] = (
    "services.commands.edit",
    "services.commands.bench",
    "services.commands.corpus",
    "services.commands.train",
    "services.commands.export_onnx",
    "services.commands.serve",
    "services.commands.serve_local",
    "services.commands.worker",
    "services.commands.jobs",
    "services.commands.lsp",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remask",
        description="Revise text and code with an AR drafter and a masked-diffusion refiner.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight-loading bars are noise on a command line
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, UnicodeDecodeError) as exc:
        print(f"remask: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
