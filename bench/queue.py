"""Job queue under worker kills: jobs/s, and no job lost or duplicated (embedded Valkey, loopback).

``remask bench queue --json`` starts an embedded Valkey in a temporary directory, a few
worker processes with a stub handler (no models: each item sleeps ``--item-ms`` and echoes
its body, so the figures measure the queue, not the pipelines), submits ``--jobs`` jobs and,
while they run, SIGKILLs a worker that holds a job every ``--kill-every`` seconds and starts
a replacement, ``--kills`` times. Figures:

- ``jobs``: jobs submitted; ``jobs_per_s``: jobs / seconds from first submission to last end
- ``worker_kills``: SIGKILLs delivered to workers holding a job
- ``lost``: jobs that did not complete with one result per item (target 0)
- ``duplicated``: item results recorded more than once (target 0)
- ``reexecuted``: item runs beyond one per item (at-least-once delivery at work: the items
  a killed worker was running when it died)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

RUNS_KEY = "benchq:runs"  # hash custom_id -> times run, written by the worker processes
PREFIX = "benchq"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=int, default=200)
    p.add_argument("--items", type=int, default=3, help="items per job")
    p.add_argument("--workers", type=int, default=3, help="worker processes at a time")
    p.add_argument("--kills", type=int, default=6, help="worker SIGKILLs during the run")
    p.add_argument("--kill-every", type=float, default=0.4, help="seconds between kills")
    p.add_argument("--item-ms", type=float, default=15.0, help="stub work per item (ms)")
    p.add_argument("--lease", type=float, default=1.0, help="lease (s): a killed worker's job waits this long")
    p.add_argument("--max-attempts", type=int, default=5, help="so a job hit by two kills is not dead-lettered")
    p.add_argument("--timeout", type=float, default=120.0, help="the run ends by then, finished or not")
    p.add_argument("--seed", type=int, default=0)


class _Workers:
    """The worker processes, by consumer name; a new one is named once it says it is ready."""

    def __init__(self, url: str, args: argparse.Namespace) -> None:
        self.url, self.args = url, args
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.all: list[subprocess.Popen[str]] = []
        self._lock = threading.Lock()

    def spawn(self) -> None:
        """Start a worker without waiting for it (a kill is not held up by a start)."""
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
        cmd = [sys.executable, "-m", "bench.queue", "--worker", self.url, str(self.args.item_ms / 1000),
               str(self.args.lease), str(self.args.max_attempts)]
        p = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, text=True)
        self.all.append(p)
        threading.Thread(target=self._named, args=(p,), daemon=True).start()

    def _named(self, p: subprocess.Popen[str]) -> None:
        assert p.stdout is not None
        line = p.stdout.readline().split()
        if len(line) == 2 and line[0] == "ready":
            with self._lock:
                self.procs[line[1]] = p

    def wait_ready(self, n: int, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while len(self.procs) < n:
            if time.monotonic() > end:
                raise RuntimeError("the bench workers did not start")
            time.sleep(0.05)

    def kill(self, name: str) -> bool:
        with self._lock:
            p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return False
        p.send_signal(signal.SIGKILL)
        p.wait(5)
        return True

    def close(self) -> None:
        for p in self.all:
            p.kill()
            p.wait(5)


def _submit_all(queue: Any, args: argparse.Namespace) -> list[str]:
    ids = []
    for j in range(args.jobs):
        lines = "".join(json.dumps({"custom_id": f"j{j}-i{i}", "method": "POST", "url": "/v1/repair",
                                    "body": {"code": f"x = {j * args.items + i}"}}) + "\n"
                        for i in range(args.items))
        ids.append(queue.submit(lines, tenant="bench", idempotency_key=f"job-{j}").id)
    return ids


def run(args: argparse.Namespace) -> dict[str, Any]:
    import redis

    from workflows.queue import EmbeddedValkey, JobQueue, Keys
    from workflows.queue.validation import parse_submission

    parse_submission('{"custom_id":"w","url":"/v1/repair","body":{"code":"x"}}')  # load the validators now
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="remask-bench-queue-") as tmp, EmbeddedValkey(tmp) as server:
        r = redis.Redis.from_url(server.url)
        queue = JobQueue(r, Keys(PREFIX))
        workers = _Workers(server.url, args)
        try:
            for _ in range(args.workers):
                workers.spawn()
            workers.wait_ready(args.workers)
            t0 = time.monotonic()
            ids = _submit_all(queue, args)
            kills, next_kill = 0, time.monotonic() + args.kill_every
            while time.monotonic() - t0 < args.timeout:
                if all(queue.is_final(i) for i in ids):
                    break
                if kills < args.kills and time.monotonic() >= next_kill:
                    pending: Any = r.xpending_range(queue.keys.stream, queue.keys.group, "-", "+", 50)
                    busy = [p["consumer"].decode() for p in pending if p["consumer"].decode() in workers.procs]
                    if busy and workers.kill(rng.choice(busy)):
                        kills += 1
                        workers.spawn()
                        next_kill = time.monotonic() + args.kill_every
                time.sleep(0.05)
            elapsed = time.monotonic() - t0
        finally:
            workers.close()
        return _figures(queue, r, ids, args, kills, elapsed)


def _figures(queue: Any, r: Any, ids: list[str], args: argparse.Namespace, kills: int,
             elapsed: float) -> dict[str, Any]:
    from workflows.queue import JobStatus

    lost = duplicated = 0
    for job_id in ids:
        job = queue.get(job_id, "bench")
        lines = queue.results(job_id, "bench")
        cids = [json.loads(x)["custom_id"] for x in lines]
        duplicated += len(cids) - len(set(cids)) + max(0, job.request_counts.done - job.request_counts.total)
        if job.status is not JobStatus.COMPLETED or len(set(cids)) != args.items:
            lost += 1
    runs = sum(int(v) for v in r.hvals(RUNS_KEY))
    return {
        "jobs": len(ids),
        "jobs_per_s": round(len(ids) / elapsed, 2),
        "worker_kills": kills,
        "lost": lost,
        "duplicated": duplicated,
        "reexecuted": runs - len(ids) * args.items,
        "items_per_job": args.items,
        "workers": args.workers,
        "handler": f"stub: {args.item_ms:g} ms sleep per item, no models",
        "seconds": round(elapsed, 2),
    }


def _worker_main(url: str, item_s: float, lease_s: float, max_attempts: int) -> None:
    """A bench worker process: the stub handler, counting every item run in Redis."""
    import redis

    from workflows.queue import BatchItem, EchoHandler, JobQueue, Keys, Worker, WorkerConfig

    r = redis.Redis.from_url(url)
    echo = EchoHandler(delay_s=item_s, steps=2)

    def handler(item: BatchItem, checkpoint: Any) -> dict[str, Any]:
        r.hincrby(RUNS_KEY, item.custom_id, 1)
        return echo(item, checkpoint)

    cfg = WorkerConfig(lease_s=lease_s, poll_s=0.05, max_attempts=max_attempts, backoff_s=0.1, block_s=0.5)
    worker = Worker(r, handler, cfg, queue=JobQueue(r, Keys(PREFIX)))
    print("ready", worker.name, flush=True)
    worker.run()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        _worker_main(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
    else:
        raise SystemExit("usage: remask bench queue --json (this entry point is for its worker processes)")
