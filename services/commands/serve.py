"""``remask serve``: the Ray Serve application on this machine (a local Ray instance).

Reads the Serve config (``deploy/serve.yaml`` by default: the same file ``serve deploy``
takes on a cluster), applies its deployment options, and runs until interrupted. Without
``REDIS_URL`` the job queue's embedded Valkey is started here, before Ray, in a session of
its own. A non-loopback ``--host`` without API keys is refused before anything starts.

SIGTERM or SIGINT (Ctrl-C), at any moment from the start on, stops it in order: the
application is deleted while the proxy still answers, so requests in flight finish (the
ingress first, then the models and the job worker, each within its graceful shutdown
timeout); then Serve, Ray and its processes, and the embedded Valkey last (its final
append-only write). The server URL file and Ray's session directory go too, and the
command exits 0, within ``--stop-timeout`` seconds. Past it, or on a second signal, it
exits at once (:mod:`services.commands.signals`): Valkey is stopped, whatever is left of
Ray's processes is killed, and the exit code is 1 (past the timeout) or 128 + the signal.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from services.commands.signals import StopSignals

log = logging.getLogger("remask.serve")

DEFAULT_CONFIG = Path("deploy/serve.yaml")
TEARDOWN_RESERVE_S = 10.0  # of --stop-timeout, kept for stopping Serve, Ray and Valkey after the drain
DEPLOY_POLL_S = 0.5  # how often the start looks at the application's status


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
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="of this command and of every replica (default: %(default)s)")
    p.add_argument("--stop-timeout", type=float, default=25.0,
                   help="longest graceful stop after SIGTERM or Ctrl-C: requests in flight drain for all but "
                        f"{TEARDOWN_RESERVE_S:g} s of it; past it remask exits at once (default: %(default)s)")
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
    # no implicit ray.init: a Ray call made after the stop's ray.shutdown (by a thread of a
    # library) must fail, not start a second Ray instance (read when ray is imported)
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = StopSignals("remask serve")
    stop.install()  # first of all: a signal while the models load is a clean stop too
    stop.on_force(kill_descendants)  # registered first, so it runs last: after Valkey's own stop
    cfg = load_config(args.config)
    http = dict(cfg.get("http_options") or {})
    host = args.host or http.get("host", "127.0.0.1")
    port = args.port if args.port is not None else int(http.get("port", 8000))
    cli = {"refiner": args.refiner, "drafter": args.drafter, "host": host,
           "data_dir": args.data_dir, "log_level": args.log_level,
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
            stop.on_force(functools.partial(server.stop, timeout=2.0))  # its own session: nothing else would stop it

    # Ray runs its workers at nice 15 by default; a service's replicas are the point of the machine
    os.environ.setdefault("RAY_worker_niceness", "0")
    app = cfg["applications"][0]
    name, route = app.get("name", "remask"), app.get("route_prefix", "/")
    session_dir: str | None = None
    started = False  # False after a failed start: Ray's session directory (its logs) is kept
    try:
        if not stop.requested:
            session_dir = _start_ray(args, stop)
        if not stop.requested:
            _start_serve(compose(app_args, overrides), name, route, host, port, args.log_level, stop)
        if not stop.requested:
            print(f"remask: serving on http://{host}:{port}{route.rstrip('/')}/ (Ctrl-C stops)",
                  file=sys.stderr, flush=True)
            stop.wait()
        started = True
    finally:
        stop.request()  # a stop from here on, whatever ended the run: a signal now exits at once
        stop.deadline(args.stop_timeout)
        _stop_all(name, server, session_dir if started else None, args.stop_timeout - TEARDOWN_RESERVE_S)
    return 0


def _start_ray(args: argparse.Namespace, stop: StopSignals) -> str | None:
    """Start a local Ray instance (or join ``--address``); the session directory of a local one."""
    import ray

    try:
        ctx = ray.init(address=args.address, num_cpus=None if args.address else args.num_cpus,
                       include_dashboard=False, logging_level=max(logging.WARNING, _level(args.log_level)))
    except SystemExit:
        # a SIGTERM reached Ray's own handler (ray.init installs it) before ours came back: Ray
        # has stopped its processes already; what is left is the rest of a normal stop
        stop.request(signal.SIGTERM)
        return None
    finally:
        stop.install()  # ray.init replaced the SIGTERM handler (and Ray's native one aborts the process)
    # a RayContext when this process started Ray: its address_info names the session directory
    info = getattr(ctx, "address_info", None) or {}
    return None if args.address or not info.get("session_dir") else str(info["session_dir"])


def _start_serve(app: Any, name: str, route: str, host: str, port: int, log_level: str, stop: StopSignals) -> None:
    """Start Serve and deploy ``app``; returns once it runs, or early when a stop is requested.

    ``serve.run`` would block until every deployment runs (tens of seconds while the models
    load; ``/ready`` may answer before it returns) and then go on calling Ray: the deployment
    is submitted without waiting instead, and this thread polls its status between signals,
    so a stop during the start is a stop like any other and no other thread is left calling
    Ray when the stop shuts it down.
    """
    from ray import serve
    from ray.serve.schema import ApplicationStatus

    logging_config = {"log_level": log_level.upper()}
    logging.getLogger("ray.serve").setLevel(log_level.upper())  # this process's part of Serve's log
    serve.start(http_options={"host": host, "port": port}, logging_config=logging_config)
    serve.run_many([serve.RunTarget(app, name=name, route_prefix=route, logging_config=logging_config)],
                   wait_for_applications_running=False)
    while not stop.wait(DEPLOY_POLL_S):
        status = serve.status().applications[name]
        if status.status == ApplicationStatus.RUNNING:
            return
        if status.status == ApplicationStatus.DEPLOY_FAILED:
            raise RuntimeError(f"deploying application {name!r} failed: {status.message}")


def _stop_all(name: str, server: Any, session_dir: str | None, drain_s: float) -> bool:
    """Stop in order: drain and delete the application (Serve stops the ingress first, then the
    models and the job worker), stop Serve, then Ray, then the embedded Valkey last. Whatever
    fails is logged and the rest still runs; True when every step went well. ``session_dir``
    (Ray's, if this command started Ray) is removed only then: after a failure its logs are
    what an operator needs."""
    import ray

    ok = True
    if ray.is_initialized():
        from ray import serve

        ok = _step("drain the application", lambda: _drain(name, drain_s))
        ok = _step("stop Serve", serve.shutdown) and ok
        ok = _step("stop Ray", ray.shutdown) and ok
    if server is not None:
        ok = _step("stop the embedded Valkey", server.stop) and ok
    if ok and session_dir is not None:
        _step("remove Ray's session directory", lambda: remove_session(Path(session_dir)))
    return ok


def _drain(name: str, timeout_s: float) -> None:
    """Delete the application and wait until it is gone, at most ``timeout_s`` seconds.

    Serve's own shutdown stops the HTTP proxy at once, cutting the requests in flight;
    deleting the application first lets each replica finish its requests (up to its
    ``graceful_shutdown_timeout_s``) while the proxy still carries the answers back."""
    from ray import serve

    if name not in serve.status().applications:
        return
    serve.delete(name, _blocking=False)
    end = time.monotonic() + max(timeout_s, 1.0)
    while name in serve.status().applications:
        if time.monotonic() > end:
            raise TimeoutError(f"application {name!r} still draining after {timeout_s:g}s; stopping it")
        time.sleep(0.2)


def remove_session(path: Path) -> None:
    """Remove a Ray session directory this command created, and ``session_latest`` if it
    points there (what Ray leaves in its temp directory: logs, sockets, port files)."""
    import shutil

    latest = path.parent / "session_latest"
    if latest.is_symlink() and Path(os.readlink(latest)) == path:
        latest.unlink()
    shutil.rmtree(path, ignore_errors=True)


def kill_descendants() -> None:
    """SIGKILL every process this one started, directly or not, that still runs: what an exit
    at once must not leave behind (Ray's agents outlive its raylet; its daemons die with this
    process only where the kernel supports it)."""
    import psutil  # a Ray dependency (Ray ships it on its sys.path)

    for p in psutil.Process().children(recursive=True):
        try:
            p.kill()
        except psutil.Error:  # gone meanwhile
            pass


def _step(what: str, fn: Any) -> bool:
    """Run one step of the stop; False (logged) if it failed."""
    t0 = time.monotonic()
    try:
        fn()
    except Exception:  # logged with its traceback; the next steps run regardless
        log.exception("stopping: could not %s", what)
        return False
    log.info("stopping: %s: %.1fs", what, time.monotonic() - t0)
    return True


def _level(name: str) -> int:
    return int(logging.getLevelName(name.upper()))
