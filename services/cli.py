"""The ``remask`` command line.

Each feature module exposes ``register(subparsers)`` that adds its subcommands and sets
``func`` on them; this file only gathers them, so features never edit each other's code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command -> module with a ``register(subparsers)`` function, in help order. A command line
# naming a command imports only that module (``remask lsp`` starts in a fraction of a second
# instead of importing every model stack); ``remask --help`` imports them all.
COMMANDS: dict[str, str] = {
    "infill": "services.commands.edit",
    "revise": "services.commands.edit",
    "repair": "services.commands.edit",
    "bench": "services.commands.bench",
    "corpus": "services.commands.corpus",
    "train": "services.commands.train",
    "export-onnx": "services.commands.export_onnx",
    "serve": "services.commands.serve",
    "serve-local": "services.commands.serve_local",
    "worker": "services.commands.worker",
    "jobs": "services.commands.jobs",
    "lsp": "services.commands.lsp",
}
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(COMMANDS.values()))
NO_MODELS = frozenset({"jobs", "lsp"})  # commands that never load weights


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command`` (a key of :data:`COMMANDS`) only that command's module is loaded."""
    parser = argparse.ArgumentParser(
        prog="remask",
        description="Revise text and code with an AR drafter and a masked-diffusion refiner.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    modules = (COMMANDS[command],) if command in COMMANDS else COMMAND_MODULES
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    if args.command not in NO_MODELS:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # weight-loading bars are noise on a command line
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, UnicodeDecodeError) as exc:
        print(f"remask: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
