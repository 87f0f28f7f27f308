"""``remask worker``: run a batch-job worker as a plain process.

The server is ``--redis-url``, else ``REDIS_URL``, else an embedded Valkey with
append-only persistence in ``--data-dir`` (reused if another process already runs it
there). SIGTERM or Ctrl-C stops the worker at its next checkpoint; a job it was running
goes back to the queue at once. An embedded Valkey started here runs in a session of its
own (a Ctrl-C reaches this process only) and is stopped after the worker; a signal while
it stops exits at once, after it.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path
from typing import Any

from services.commands.signals import StopSignals


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="run a batch-job worker (Redis/Valkey job queue)")
    p.add_argument("--redis-url", default=None, help="queue server (default: $REDIS_URL, else an embedded Valkey)")
    p.add_argument("--data-dir", type=Path, default=Path("data/valkey"),
                   help="embedded server's data directory (default: %(default)s)")
    p.add_argument("--prefix", default="remask", help="key prefix of the queue (default: %(default)s)")
    p.add_argument("--handler", choices=["models", "echo"], default="models",
                   help="models: run items through the pipelines; echo: answer each item's body (no models)")
    p.add_argument("--refiner", type=Path, default=None, help="refiner model directory (default: models/refiner)")
    p.add_argument("--drafter", type=Path, default=None, help="drafter model directory (default: models/drafter)")
    p.add_argument("--no-drafter", action="store_true", help="load no drafter (items that need one fail)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--lease", type=float, default=30.0, help="seconds before a silent worker's job is reclaimed")
    p.add_argument("--max-attempts", type=int, default=3,
                   help="failed runs of one item (it raised, or its worker died) before it goes to the errors file")
    p.add_argument("--backoff", type=float, default=2.0, help="first retry delay in seconds (doubles per failed run)")
    p.add_argument("--stop-when-empty", action="store_true", help="exit once no job is waiting or running")
    p.add_argument("--verbose", "-v", action="store_true")
    p.set_defaults(func=_run)


def _handler(args: argparse.Namespace) -> Any:
    from workflows.queue import EchoHandler, ModelHandler

    if args.handler == "echo":
        return EchoHandler()
    from workflows.engines import load_engines

    return ModelHandler(load_engines(args.refiner, args.drafter, need_drafter=not args.no_drafter, device=args.device))


def _run(args: argparse.Namespace) -> int:
    from workflows.queue import Keys, WorkerConfig, connect, run_worker

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # ours outside run_worker (which installs its own while it runs): a signal while the
    # models load stops cleanly, and one while the embedded Valkey stops exits at once after it
    stop = StopSignals("remask worker")
    stop.install()
    handler = _handler(args)  # models first: a missing model fails before anything connects
    if stop.requested:
        return 0
    r, server = connect(args.redis_url, args.data_dir)
    if server is not None:
        stop.on_force(functools.partial(server.stop, timeout=2.0))  # its own session: nothing else would stop it
    cfg = WorkerConfig(lease_s=args.lease, max_attempts=args.max_attempts, backoff_s=args.backoff)
    n = 0
    try:
        if not stop.requested:
            n = run_worker(r, handler, cfg, Keys(args.prefix), stop_when_empty=args.stop_when_empty)
    finally:
        stop.request()
        if server is not None:
            server.stop()
    print(f"remask worker: {n} deliveries handled", file=sys.stderr)
    return 0
