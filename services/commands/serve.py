"""``remask serve``: the Ray Serve application on this machine (a local Ray instance).

Reads the Serve config (``deploy/serve.yaml`` by default: the same file ``serve deploy``
takes on a cluster), applies its deployment options, and runs until interrupted. Without
``REDIS_URL`` the job queue's embedded Valkey is started here, before Ray, and stopped on
exit. A non-loopback ``--host`` without API keys is refused before anything starts.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path("deploy/serve.yaml")


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the Ray Serve application (drafter, refiner, job worker, HTTP ingress)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="Serve config YAML (default: %(default)s)")
    p.add_argument("--host", default=None, help="bind address (default: the config's http_options.host)")
    p.add_argument("--port", type=int, default=None, help="bind port (default: the config's http_options.port)")
    p.add_argument("--refiner", default=None, help="refiner model directory (overrides the config's args)")
    p.add_argument("--drafter", default=None, help="drafter model directory (overrides the config's args)")
    p.add_argument("--no-drafter", action="store_true", help="serve without a drafter (diffusion mode only)")
    p.add_argument("--drafter-backend", choices=["torch", "onnx"], default=None,
                   help="run the drafter in PyTorch or ONNX Runtime (overrides the config's args)")
    p.add_argument("--refiner-backend", choices=["torch", "onnx"], default=None,
                   help="run the refiner in PyTorch or ONNX Runtime (overrides the config's args)")
    p.add_argument("--no-jobs", action="store_true", help="no /v1/jobs routes and no JobWorker deployment")
    p.add_argument("--data-dir", default=None, help="embedded Valkey's data directory (overrides the config's args)")
    p.add_argument("--num-cpus", type=float, default=None, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--address", default=None, help="join this Ray cluster instead of starting a local one")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_serve)


def load_config(path: Path) -> dict[str, Any]:
    """The Serve config, checked for what ``remask serve`` needs (one application)."""
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"no Serve config at {path}")
    cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    apps = cfg.get("applications") or []
    if len(apps) != 1:
        raise ValueError(f"{path}: applications: expected exactly one application, found {len(apps)}")
    return cfg


def app_parts(cfg: dict[str, Any], cli: dict[str, Any]) -> tuple[Any, dict[str, dict[str, Any]]]:
    """(AppArgs, deployment overrides) from the config's application, with ``cli`` on top."""
    from services.serve.app import AppArgs

    app = cfg["applications"][0]
    args = AppArgs.model_validate({**(app.get("args") or {}), **{k: v for k, v in cli.items() if v is not None}})
    overrides: dict[str, dict[str, Any]] = {}
    for d in app.get("deployments") or []:
        d = dict(d)
        name = d.pop("name", None)
        if not name:
            raise ValueError("deployments: every entry needs a name")
        overrides[name] = d
    return args, overrides


def _serve(args: argparse.Namespace) -> int:
    import os

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config)
    http = dict(cfg.get("http_options") or {})
    host = args.host or http.get("host", "127.0.0.1")
    port = args.port if args.port is not None else int(http.get("port", 8000))
    cli = {"refiner": args.refiner, "drafter": args.drafter, "host": host,
           "data_dir": args.data_dir,
           "drafter_backend": args.drafter_backend, "refiner_backend": args.refiner_backend,
           "no_drafter": True if args.no_drafter else None, "jobs": False if args.no_jobs else None}
    app_args, overrides = app_parts(cfg, cli)

    from services.serve.app import compose, http_settings

    http_settings(app_args)  # keys off loopback: refused before Ray starts
    server = None
    if app_args.jobs and not (app_args.redis_url or os.environ.get("REDIS_URL")):
        from workflows.queue import connect

        _, server = connect(None, app_args.data_dir)
        if server is not None:
            app_args = app_args.model_copy(update={"redis_url": server.url})

    # Ray runs its workers at nice 15 by default; a service's replicas are the point of the machine
    os.environ.setdefault("RAY_worker_niceness", "0")
    import ray
    from ray import serve

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        ray.init(address=args.address, num_cpus=None if args.address else args.num_cpus,
                 include_dashboard=False, logging_level=logging.WARNING)
        serve.start(http_options={"host": host, "port": port})
        name = cfg["applications"][0].get("name", "remask")
        route = cfg["applications"][0].get("route_prefix", "/")
        serve.run(compose(app_args, overrides), name=name, route_prefix=route)
        print(f"remask: serving on http://{host}:{port}{route.rstrip('/')}/ (Ctrl-C stops)", file=sys.stderr, flush=True)
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            if server is not None:
                server.stop()
    return 0
