"""SIGTERM and Ctrl-C on ``remask serve``: clean stops out of repeated starts (loopback only).

``remask bench shutdown --json`` starts ``remask serve`` (the default models and config, an
embedded Valkey and Ray's temp directory in a fresh temporary directory, a free loopback
port) ``--runs`` times per way of stopping it, waits for ``/ready``, records the command's
process tree, stops it, and checks what it leaves. Ways (``--ways``): ``sigterm`` (SIGTERM
to the process: systemd, Kubernetes, ``docker stop``) and ``ctrl-c`` (SIGINT to its whole
process group, as a terminal sends it). The child gets SIGINT at its default disposition and
nothing blocked, whatever this process inherited. Figures per way:

- ``runs``; ``clean``: runs that exited 0 within ``--limit`` seconds (30) with no process of
  the recorded tree alive and no file left (target: every run)
- ``exit_codes``: how many runs ended with each exit code (``timeout`` past the limit)
- ``stop_s_p50``, ``stop_s_max``: seconds from the signal to the exit
- ``left_running``, ``left_files``: what the unclean runs left (processes were killed after)
- ``start_s_p50``: seconds from the start to ``/ready`` (for scale)

The helpers (:func:`start`, :class:`Service`, :func:`leftover_files`) also drive the shutdown
tests in ``tests/serve``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.serve import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[1]
STOP_LIMIT_S = 30.0  # what the service promises: exit 0 within this after SIGTERM or Ctrl-C
WAYS = {"sigterm": (signal.SIGTERM, False), "ctrl-c": (signal.SIGINT, True)}  # (signal, to the group)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=int, default=10, help="starts and stops per way (default: %(default)s)")
    p.add_argument("--ways", nargs="+", choices=sorted(WAYS), default=["sigterm", "ctrl-c"])
    p.add_argument("--limit", type=float, default=STOP_LIMIT_S, help="seconds a stop may take (default: %(default)s)")
    p.add_argument("--num-cpus", type=float, default=2, help="the local Ray instance's CPUs (default: %(default)s)")
    p.add_argument("--startup-timeout", type=float, default=300.0)


@dataclass
class Service:
    """A service command running as a child: its process, log and URL."""

    proc: subprocess.Popen[bytes]
    log: Path
    url: str
    tree: list[Any] = field(default_factory=list)  # psutil.Process of every descendant, by record_tree
    sent: tuple[signal.Signals, float] = (signal.SIGTERM, 0.0)

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Return once ``/ready`` answers 200; RuntimeError (with the log's tail) otherwise."""
        try:
            wait_ready(self.url, self.proc, timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{self.log_tail()}") from exc

    def wait_for_descendant(self, marker: str, timeout: float = 300.0) -> None:
        """Return once a descendant's command line contains ``marker`` (``ServeReplica``: the
        application is being deployed)."""
        import psutil

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with code {self.proc.returncode}:\n{self.log_tail()}")
            if any(marker in _name(p) for p in psutil.Process(self.proc.pid).children(recursive=True)):
                return
            time.sleep(0.5)
        raise RuntimeError(f"no process {marker!r} within {timeout:g}s:\n{self.log_tail()}")

    def record_tree(self) -> list[Any]:
        """Every descendant of the command now (Ray's processes, the replicas, Valkey)."""
        import psutil

        self.tree = psutil.Process(self.proc.pid).children(recursive=True)
        return self.tree

    def send(self, sig: signal.Signals, group: bool) -> None:
        """Send ``sig`` to the command, or to its whole process group as Ctrl-C does."""
        self.sent = (sig, time.monotonic())
        (os.killpg if group else os.kill)(self.proc.pid, sig)

    def wait_exit(self, limit: float = STOP_LIMIT_S) -> tuple[int | None, float]:
        """(exit code, seconds since :meth:`send`); the code is None, and the command killed,
        when it has not exited ``limit`` seconds after the signal."""
        t0 = self.sent[1]
        try:
            rc: int | None = self.proc.wait(max(0.0, t0 + limit - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            rc = None
        return rc, time.monotonic() - t0

    def left_running(self, grace_s: float = 5.0) -> list[str]:
        """The recorded descendants still alive (a zombie runs nothing), after a short grace for
        processes that the command killed and that are still exiting."""
        end = time.monotonic() + grace_s
        while True:
            alive = [p for p in self.tree if _alive(p)]
            if not alive or time.monotonic() > end:
                return [f"{p.pid} {_name(p)}" for p in alive]
            time.sleep(0.1)

    def kill(self) -> None:
        """Clean up after a failure: the command's group, then whatever of its tree is left."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        for p in self.tree:
            if _alive(p):
                p.kill()


def with_disposition(cmd: list[str], ignore_sigint: bool = False) -> list[str]:
    """``cmd`` behind a small Python trampoline that sets the signal disposition it gets (SIGINT
    ignored, as a background job of a non-interactive shell has it, or default; SIGTERM
    default; nothing blocked), then execs it: same pid, and an ignored signal stays ignored
    across exec. (A preexec_fn would do the same, but is unsafe in a process with threads.)"""
    setup = (f"import os, signal; signal.signal(signal.SIGINT, signal.{'SIG_IGN' if ignore_sigint else 'SIG_DFL'}); "
             "signal.signal(signal.SIGTERM, signal.SIG_DFL); signal.pthread_sigmask(signal.SIG_SETMASK, []); "
             f"os.execv({cmd[0]!r}, {cmd!r})")
    return [sys.executable, "-c", setup]


def start(args: list[str], log: Path, port: int, ignore_sigint: bool = False,
          env: dict[str, str] | None = None) -> Service:
    """Start ``remask <args>`` as the leader of a new session (a terminal's job leads its
    process group), its output in ``log``, without the caller's REDIS_URL or API keys."""
    base = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REMASK_API_KEYS")}
    with log.open("wb") as out:
        proc = subprocess.Popen(with_disposition([sys.executable, "-m", "services.cli", *args], ignore_sigint),
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**base, **(env or {})}, start_new_session=True)
    return Service(proc, log, f"http://127.0.0.1:{port}")


def leftover_files(data_dir: Path, ray_tmp: Path | None = None) -> list[str]:
    """Files a stopped command must not leave: the embedded Valkey's URL file, its generated
    config, pid or socket files, and Ray's session directories under ``ray_tmp`` (its
    RAY_TMPDIR: sockets, port files, logs)."""
    left = [p.name for p in data_dir.glob("*") if p.name in ("server.url", "valkey.conf")
            or p.suffix in (".pid", ".sock")]
    if ray_tmp is not None and (ray_tmp / "ray").is_dir():
        left += [f"ray/{p.name}" for p in (ray_tmp / "ray").iterdir() if p.name.startswith("session")]
    return left


def _one(way: str, args: argparse.Namespace) -> dict[str, Any]:
    sig, group = WAYS[way]
    # Ray's temp directory is short on purpose: its socket paths must fit in 107 bytes
    work = Path(tempfile.mkdtemp(prefix="rt"))
    try:
        port = free_port()
        svc = start(["serve", "--port", str(port), "--num-cpus", str(args.num_cpus), "--data-dir",
                     str(work / "valkey"), "--log-level", "warning"], work / "serve.log", port,
                    env={"RAY_TMPDIR": str(work)})
        t0 = time.monotonic()
        try:
            svc.wait_ready(args.startup_timeout)
        except RuntimeError as exc:
            svc.kill()
            return {"start_failed": str(exc)[-500:]}
        started = time.monotonic() - t0
        svc.record_tree()
        svc.send(sig, group)
        rc, took = svc.wait_exit(args.limit)
        running = svc.left_running()
        files = leftover_files(work / "valkey", work)
        svc.kill()  # whatever an unclean run left
        clean = rc == 0 and took <= args.limit and not running and not files
        return {"rc": "timeout" if rc is None else rc, "stop_s": round(took, 2), "start_s": round(started, 1),
                "left_running": running, "left_files": files, "clean": clean,
                **({} if clean else {"log_tail": svc.log_tail(1500)})}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"limit_s": args.limit}
    for way in args.ways:
        runs = []
        for i in range(args.runs):
            r = _one(way, args)
            print(f"bench shutdown: {way} {i + 1}/{args.runs}: {r}", file=sys.stderr, flush=True)
            runs.append(r)
        done = [r for r in runs if "rc" in r]
        stops = [r["stop_s"] for r in done]
        figures[way] = {
            "runs": len(runs), "clean": sum(bool(r.get("clean")) for r in runs),
            "start_failed": len(runs) - len(done),
            "exit_codes": {str(k): v for k, v in Counter(r["rc"] for r in done).items()},
            "stop_s_p50": round(statistics.median(stops), 2) if stops else None,
            "stop_s_max": max(stops) if stops else None,
            "start_s_p50": round(statistics.median(r["start_s"] for r in done), 1) if done else None,
            "left_running": sorted({p for r in done for p in r["left_running"]}),
            "left_files": sorted({f for r in done for f in r["left_files"]}),
        }
    return figures


def _alive(p: Any) -> bool:
    import psutil

    try:
        return bool(p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _name(p: Any) -> str:
    import psutil

    try:
        return " ".join(p.cmdline())[:100] or str(p.name())
    except psutil.Error:
        return "?"
