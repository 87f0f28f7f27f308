"""``remask lsp``: the language server for editors, on stdin/stdout (see :mod:`lsp.server`).

It talks to a running remask server (``remask serve-local`` or the Ray Serve app) over HTTP;
it loads no model. Command-line options are defaults beneath the editor's
``initializationOptions``; without either, ``$REMASK_URL`` and ``$REMASK_API_KEY`` apply.
Logs go to stderr (editors show them) or ``--log-file``, never to stdout: stdout carries
the protocol.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from typing import Any

from lsp.settings import LspSettings
from services.commands.edit import flag_kind
from workflows.options import DEFAULTS, InfillParams


def register(sub: Any) -> None:
    p = sub.add_parser("lsp", help="language server over stdio: inline completion and 'Refine selection'")
    p.add_argument("--url", default=None, help="remask server (default: $REMASK_URL, else http://127.0.0.1:8000)")
    p.add_argument("--api-key", default=None, help="API key (default: $REMASK_API_KEY)")
    _infill_options(p)
    p.add_argument("--timeout", type=float, default=None, help="seconds per HTTP request (default: 10)")
    p.add_argument("--log-file", default=None, help="write the log here instead of stderr")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_run)


def _infill_options(p: argparse.ArgumentParser) -> None:
    """``--mode``, ``--max-tokens``, ``--steps``, typed and described as the completion options are.

    The defaults shown are the editor settings' own; ``steps`` left out lets the server choose
    per endpoint.
    """
    ours = LspSettings()
    shown = {"mode": ours.mode, "max_tokens": ours.max_tokens,
             "steps": f"the server's: {DEFAULTS['infill'].steps} for a completion, {DEFAULTS['revise'].steps} "
                      "for a refine"}
    for name, default in shown.items():
        info = InfillParams.model_fields[name]
        p.add_argument("--" + name.replace("_", "-"), default=None, help=f"{info.description} (default: {default})",
                       **flag_kind(info.annotation))


def _run(args: argparse.Namespace) -> int:
    from lsp.server import serve_stdio

    handler = logging.FileHandler(args.log_file) if args.log_file else logging.StreamHandler(sys.stderr)
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    given = {"url": args.url, "api_key": args.api_key, "mode": args.mode, "max_tokens": args.max_tokens,
             "steps": args.steps, "timeout": args.timeout}
    defaults = replace(LspSettings.from_env(), **{k: v for k, v in given.items() if v is not None})
    serve_stdio(defaults)
    return 0
