"""Job queue under worker kills, Valkey restarts and a poison item (embedded Valkey, loopback).

``remask bench queue --json`` starts an embedded Valkey in a temporary directory and
``--workers`` worker processes, submits ``--jobs`` jobs of ``--items`` items and, while they
run, injects faults ``--fault-every`` seconds apart: ``--kills`` SIGKILLs of a worker that
holds a job (a replacement starts at once) and Valkey restarts (stop, ``--restarts`` seconds
down, start again on the same port and data directory: append-only file). One item is
poison (``--poison``): its handler raises, or SIGKILLs its own worker process, every time it
runs; it must end in its job's errors file alone, after ``--max-attempts`` failed runs, while
its job and every other one completes.

Handlers (``--handler``): ``models`` (the default) runs the pipelines' item handler
(:class:`workflows.queue.ModelHandler`) on the shipped models in ``models/`` (one torch
thread per worker), cycling through revise, repair, completion, FIM and compliance items
with small step budgets; ``stub`` sleeps ``--item-ms`` per item and echoes its body, so the
figures measure the queue alone. Figures:

- ``jobs``; ``jobs_per_s``: jobs / seconds from first submission to last end (outages and
  model loading of replacement workers included)
- ``worker_kills``; ``valkey_restarts``: the seconds each restart kept the server down
- ``lost``: jobs that did not end with one outcome (result or error) per item (target 0)
- ``duplicated``: outcomes recorded more than once (target 0)
- ``jobs_failed``: jobs that did not end ``completed`` (target 0)
- ``items_failed``: ``request_counts.failed`` over all jobs (target: 1, the poison item)
- ``errors_file``: custom_ids in the errors files; ``poison_alone_in_errors`` (target true)
- ``dead_letters``: custom_ids in the dead-letter stream; ``poison_runs``: its runs
- ``charged``: failed runs charged to items other than the poison (a kill charges the item
  it interrupted); ``reexecuted``: item runs beyond one per item (at-least-once delivery
  at work: items cut by a kill or an outage, and the poison's runs)
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
TENANT = "bench"
POISON = "poison"  # custom_id of the poison item
RULES = {"name": "house", "rules": [
    {"id": "no-email", "type": "redact", "kind": "email"},
    {"id": "say-customer", "type": "banned_phrase", "phrases": ["client"], "preferred": "customer"},
]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=int, default=200)
    p.add_argument("--items", type=int, default=3, help="items per job")
    p.add_argument("--workers", type=int, default=3, help="worker processes at a time")
    p.add_argument("--handler", choices=["models", "stub"], default="models",
                   help="models: the pipelines on the shipped models; stub: a sleep per item, no models")
    p.add_argument("--item-ms", type=float, default=15.0, help="stub work per item (ms)")
    p.add_argument("--kills", type=int, default=6, help="worker SIGKILLs during the run")
    p.add_argument("--restarts", default="10,10,1",
                   help="Valkey restarts: seconds down for each, comma-separated ('' for none)")
    p.add_argument("--fault-every", type=float, default=2.0, help="seconds between faults")
    p.add_argument("--poison", choices=["kill", "raise", "none"], default="kill",
                   help="the poison item SIGKILLs its worker, or raises, on every run")
    p.add_argument("--lease", type=float, default=2.0, help="lease (s): a killed worker's job waits this long")
    p.add_argument("--max-attempts", type=int, default=3, help="failed runs of an item before it is spent")
    p.add_argument("--timeout", type=float, default=600.0, help="the run ends by then, finished or not")
    p.add_argument("--seed", type=int, default=0)


def _item(j: int, i: int, handler: str) -> dict[str, Any]:
    """Item ``i`` of job ``j``: for the models, the endpoints in turn, each with a small budget."""
    n = j * 7 + i
    body: dict[str, Any]
    if handler == "stub":
        url, body = "/v1/repair", {"code": f"x = {n}"}
    else:
        url, body = [
            ("/v1/revise", {"text": f"Note {n}: the client may write to us for help.", "spans": [[0, 4]],
                            "steps": 2, "seed": n}),
            ("/v1/repair", {"code": f"def f{n}(:\n    return {n}\n", "rounds": 1, "samples": 0, "steps": 2}),
            ("/v1/completions", {"prompt": f"def add_{n}(a, b):\n    return ", "suffix": "\n", "max_tokens": 4,
                                 "steps": 2, "seed": n}),
            ("/v1/fim/completions", {"prompt": f"x{n} = ", "suffix": "\n", "max_tokens": 3, "mode": "diffusion",
                                     "steps": 2}),
            ("/v1/compliance", {"text": f"Client {n} may write to ops@example.org.", "rules": RULES, "steps": 2}),
        ][n % 5]
    return {"custom_id": f"j{j}-i{i}", "method": "POST", "url": url, "body": body}


def _jobs(args: argparse.Namespace) -> list[str]:
    """Each job's JSONL; item 1 of the job a quarter of the way in is the poison."""
    out = []
    for j in range(args.jobs):
        items = [_item(j, i, args.handler) for i in range(args.items)]
        if args.poison != "none" and j == args.jobs // 4:
            items[min(1, args.items - 1)]["custom_id"] = POISON
        out.append("".join(json.dumps(it) + "\n" for it in items))
    return out


class _Workers:
    """``count`` worker processes kept alive (a killed or dead one is replaced), by consumer
    name once each says it is ready (models loaded, connected)."""

    def __init__(self, url: str, args: argparse.Namespace) -> None:
        self.config = json.dumps({"url": url, "handler": args.handler, "item_s": args.item_ms / 1000,
                                  "lease_s": args.lease, "max_attempts": args.max_attempts, "poison": args.poison})
        self.count = args.workers
        self.procs: dict[str, subprocess.Popen[str]] = {}  # ready ones, by name
        self.all: list[subprocess.Popen[str]] = []
        self.deaths = 0  # processes that died on their own (the poison killing its worker)
        self._killed: set[int] = set()
        self._lock = threading.Lock()

    def spawn(self) -> None:
        """Start a worker without waiting for it (a kill is not held up by a start)."""
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
        p = subprocess.Popen([sys.executable, "-m", "bench.queue", "--worker", self.config], cwd=root, env=env,
                             stdout=subprocess.PIPE, text=True)
        self.all.append(p)
        threading.Thread(target=self._named, args=(p,), daemon=True).start()

    def _named(self, p: subprocess.Popen[str]) -> None:
        assert p.stdout is not None
        line = p.stdout.readline().split()
        if len(line) == 2 and line[0] == "ready":
            with self._lock:
                self.procs[line[1]] = p

    def keep_up(self) -> None:
        """Replace processes that died on their own."""
        for p in list(self.all):
            if p.poll() is not None and p.pid not in self._killed:
                self._killed.add(p.pid)  # counted once
                self.deaths += 1
                with self._lock:
                    self.procs = {n: q for n, q in self.procs.items() if q is not p}
                self.spawn()

    def wait_ready(self, n: int, timeout: float = 180.0) -> None:
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
        self._killed.add(p.pid)
        p.send_signal(signal.SIGKILL)
        p.wait(5)
        self.spawn()
        return True

    def close(self) -> None:
        for p in self.all:
            p.kill()
            p.wait(5)


def _plan(kills: int, restarts: list[float]) -> list[float | None]:
    """The faults in order: None for a kill, seconds for a restart; restarts spread evenly."""
    plan: list[float | None] = [None] * kills
    for n, secs in enumerate(restarts):
        plan.insert(round((n + 1) * kills / (len(restarts) + 1)) + n, secs)
    return plan


def run(args: argparse.Namespace) -> dict[str, Any]:
    import redis

    from workflows.queue import EmbeddedValkey, JobQueue, Keys

    restarts = [float(x) for x in args.restarts.split(",") if x.strip()]
    plan = _plan(args.kills, restarts)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="remask-bench-queue-") as tmp:
        server = EmbeddedValkey(tmp)
        server.start()
        try:
            r = redis.Redis.from_url(server.url)
            queue = JobQueue(r, Keys(PREFIX))
            workers = _Workers(server.url, args)
            try:
                for _ in range(args.workers):
                    workers.spawn()
                workers.wait_ready(args.workers)
                t0 = time.monotonic()
                ids = [queue.submit(lines, tenant=TENANT, idempotency_key=f"job-{j}").id
                       for j, lines in enumerate(_jobs(args))]
                kills, downs = 0, []
                next_fault = time.monotonic() + args.fault_every
                while time.monotonic() - t0 < args.timeout and not _all_final(r, queue, ids):
                    workers.keep_up()
                    if plan and time.monotonic() >= next_fault:
                        if plan[0] is not None:  # a restart: the server down for that long
                            server.stop()
                            time.sleep(plan[0])
                            server.start()
                            downs.append(plan.pop(0))
                        elif _kill_busy(r, queue, workers, rng):
                            kills += 1
                            plan.pop(0)
                        next_fault = time.monotonic() + args.fault_every
                    time.sleep(0.2)
                elapsed = time.monotonic() - t0
            finally:
                workers.close()
            figures = _figures(queue, r, ids, args, elapsed)
            return {**figures, "worker_kills": kills, "valkey_restarts": downs, "worker_deaths": workers.deaths}
        finally:
            server.stop()


def _all_final(r: Any, queue: Any, ids: list[str]) -> bool:
    pipe = r.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(queue.keys.job(job_id), "status")
    return all(s in (b"completed", b"failed", b"cancelled", b"expired") for s in pipe.execute())


def _kill_busy(r: Any, queue: Any, workers: _Workers, rng: random.Random) -> bool:
    """SIGKILL a ready worker that holds a job; False if none does right now.

    Kills are independent faults: a worker on the poison item is left alone (it may be dying
    of it, and that death is not the bench's kill), and so is one on an item a kill already
    hit (``max_attempts`` kills of one item would make it a poison item, by definition)."""
    k = queue.keys
    busy = set()
    for p in r.xpending_range(k.stream, k.group, "-", "+", 50):
        name = p["consumer"].decode()
        entries: Any = r.xrange(k.stream, p["message_id"], p["message_id"])
        if name not in workers.procs or not entries:
            continue
        job_key = k.job(entries[0][1][b"job"].decode())
        current, running = r.hmget(job_key, "current_item", "running")
        if running is None or current == POISON.encode():
            continue
        if not r.hexists(job_key, f"failures:{running.decode().split()[0]}"):
            busy.add(name)
    return bool(busy) and workers.kill(rng.choice(sorted(busy)))


def _figures(queue: Any, r: Any, ids: list[str], args: argparse.Namespace, elapsed: float) -> dict[str, Any]:
    from workflows.queue import JobStatus

    lost = duplicated = failed_jobs = items_failed = charged = 0
    errors: list[str] = []
    for job_id, lines in zip(ids, _jobs(args)):
        job = queue.get(job_id, TENANT)
        expected = [json.loads(x)["custom_id"] for x in lines.splitlines()]
        for field, value in r.hgetall(queue.keys.job(job_id)).items():  # failed runs charged, by item
            if field.startswith(b"failures:") and expected[int(field[len(b"failures:"):])] != POISON:
                charged += int(value)
        ok = [json.loads(x)["custom_id"] for x in queue.results(job_id, TENANT)]
        bad = [json.loads(x)["custom_id"] for x in queue.errors(job_id, TENANT)]
        outcomes = ok + bad
        duplicated += len(outcomes) - len(set(outcomes)) + max(0, job.request_counts.done - job.request_counts.total)
        lost += job.status is not JobStatus.COMPLETED or sorted(set(outcomes)) != sorted(expected)
        failed_jobs += job.status is not JobStatus.COMPLETED
        items_failed += job.request_counts.failed
        errors += bad
    runs = {k.decode(): int(v) for k, v in r.hgetall(RUNS_KEY).items()}
    return {
        "jobs": len(ids),
        "items_per_job": args.items,
        "jobs_per_s": round(len(ids) / elapsed, 2),
        "lost": lost,
        "duplicated": duplicated,
        "jobs_failed": failed_jobs,
        "items_failed": items_failed,
        "errors_file": errors,
        "poison": args.poison,
        "poison_alone_in_errors": errors == ([POISON] if args.poison != "none" else []),
        "poison_runs": runs.get(POISON, 0),
        "dead_letters": [d.get("custom_id", d.get("job")) for d in queue.dead_letters()],
        "charged": charged,
        "reexecuted": sum(runs.values()) - len(runs),
        "workers": args.workers,
        "max_attempts": args.max_attempts,
        "lease_s": args.lease,
        "handler": ("models: the pipelines' ModelHandler on the shipped models (revise, repair, completion, "
                    "FIM, compliance items; 2 steps), 1 torch thread per worker" if args.handler == "models"
                    else f"stub: {args.item_ms:g} ms sleep per item, no models"),
        "seconds": round(elapsed, 2),
    }


def _worker_main(config: dict[str, Any]) -> None:
    """A bench worker process: its handler, counting every item run in Redis; the poison
    item raises or kills this process on every run."""
    import redis

    from workflows.queue import (
        BatchItem,
        EchoHandler,
        JobQueue,
        Keys,
        ModelHandler,
        Worker,
        WorkerConfig,
    )

    if config["handler"] == "models":
        import torch

        from workflows.engines import load_engines

        torch.set_num_threads(1)  # several workers share the cores
        inner: Any = ModelHandler(load_engines())
    else:
        inner = EchoHandler(delay_s=config["item_s"], steps=2)
    r = redis.Redis.from_url(config["url"])

    def handler(item: BatchItem, checkpoint: Any) -> dict[str, Any]:
        r.hincrby(RUNS_KEY, item.custom_id, 1)
        if item.custom_id == POISON and config["poison"] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if item.custom_id == POISON and config["poison"] == "raise":
            raise RuntimeError("the poison item crashed its handler")
        return dict(inner(item, checkpoint))

    cfg = WorkerConfig(lease_s=config["lease_s"], poll_s=0.05, max_attempts=config["max_attempts"],
                       backoff_s=0.1, block_s=0.5)
    deadline = time.monotonic() + 60
    while True:  # a replacement may start while the server is down: wait for it
        try:
            queue = JobQueue(r, Keys(PREFIX))
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    worker = Worker(r, handler, cfg, queue=queue)
    print("ready", worker.name, flush=True)
    worker.run()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker_main(json.loads(sys.argv[2]))
    else:
        raise SystemExit("usage: remask bench queue --json (this entry point is for its worker processes)")
