"""``remask serve-local``: the HTTP API in this process with uvicorn, for development without Ray.

The models load once; the pipelines run in worker threads of a
:class:`services.api.engine.LocalEngine` (one request per model at a time, bounded queue).
The settings are validated before any model loads, so a non-loopback ``--host`` without
API keys (``REMASK_API_KEYS=key:tenant,...``) is refused at once. With ``--jobs`` the batch
routes are served too, over the same queue ``remask worker`` works off.

SIGTERM or Ctrl-C stops it: requests in flight finish (for at most ``--stop-timeout`` less
5 s), then the engine and the embedded Valkey (if this command started it) are stopped and
the command exits 0; a second signal exits at once (:mod:`services.commands.signals`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from services.commands.signals import StopSignals

TEARDOWN_RESERVE_S = 5.0  # of --stop-timeout, kept for closing the engine and stopping Valkey


def register(sub: Any) -> None:
    p = sub.add_parser("serve-local", help="run the HTTP API in this process (uvicorn, no Ray)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s); "
                   "anything but loopback needs REMASK_API_KEYS")
    p.add_argument("--port", type=int, default=8000, help="bind port (default: %(default)s)")
    p.add_argument("--refiner", type=Path, default=None, help="refiner model directory (default: models/refiner)")
    p.add_argument("--drafter", type=Path, default=None, help="drafter model directory (default: models/drafter)")
    p.add_argument("--no-drafter", action="store_true", help="serve without a drafter (diffusion mode only)")
    p.add_argument("--max-pending", type=int, default=16, help="requests admitted at once; more get 429")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request body (413 over it)")
    p.add_argument("--jobs", action="store_true", help="serve /v1/jobs over the job queue (run `remask worker` "
                   "beside it to work the jobs off)")
    p.add_argument("--redis-url", default=None, help="queue server (default: $REDIS_URL, else an embedded Valkey)")
    p.add_argument("--data-dir", type=Path, default=Path("data/valkey"), help="embedded Valkey's data directory")
    p.add_argument("--prefix", default="remask", help="key prefix of the queue (default: %(default)s)")
    p.add_argument("--torch-threads", type=int, default=1, help="torch threads per model (default: %(default)s; "
                   "the drafter and the refiner run side by side, one thread each)")
    p.add_argument("--drafter-backend", choices=["torch", "onnx"], default="torch",
                   help="run the drafter in PyTorch or ONNX Runtime (exported on first use)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--stop-timeout", type=float, default=25.0,
                   help="longest graceful stop after SIGTERM or Ctrl-C: requests in flight finish within all but "
                        f"{TEARDOWN_RESERVE_S:g} s of it; past it remask exits at once (default: %(default)s)")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from services.api import LocalEngine, Settings, build_app
    from services.api.settings import Limits
    from workflows.engines import load_drafter, load_refiner

    stop = StopSignals("remask serve-local")
    stop.install()  # before the models load: a signal meanwhile is a clean stop too
    settings = Settings(host=args.host, port=args.port, max_pending=args.max_pending,
                        limits=Limits(max_body_bytes=args.max_body_bytes))
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.torch_threads)
    refiner = load_refiner(args.refiner)
    drafter = None if args.no_drafter else load_drafter(args.drafter, backend=args.drafter_backend,
                                                        threads=args.torch_threads)
    engine = LocalEngine(refiner, drafter, max_pending=settings.max_pending,
                         queue_timeout_s=settings.queue_timeout_s, retry_after_s=settings.retry_after_s)
    jobs, valkey = None, None
    try:
        if args.jobs and not stop.requested:
            from workflows.queue import JobQueue, Keys, connect

            r, valkey = connect(args.redis_url, args.data_dir)
            if valkey is not None:
                # its own session: nothing else would stop it
                stop.on_force(functools.partial(valkey.stop, timeout=2.0))
            jobs = JobQueue(r, Keys(args.prefix))
        drain_s = max(1, int(args.stop_timeout - TEARDOWN_RESERVE_S))
        config = uvicorn.Config(build_app(engine, settings, jobs), host=settings.host, port=settings.port,
                                log_level=args.log_level, timeout_graceful_shutdown=drain_s)
        server = _uvicorn_server(config)
        stop.on_stop(lambda: setattr(server, "should_exit", True))  # uvicorn polls it
        if not stop.requested:
            server.run()
    finally:
        stop.request()  # a signal from here on exits at once
        stop.deadline(args.stop_timeout)
        engine.close()
        if valkey is not None:
            valkey.stop()
    return 0


def _uvicorn_server(config: Any) -> Any:
    """A uvicorn server that leaves the signals to remask: uvicorn's own handlers would replace
    ours while it runs, then re-raise each signal once it has stopped, and a re-raised SIGTERM
    ends the process before the engine and the embedded Valkey are stopped."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(config)
