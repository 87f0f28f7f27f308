"""Faults with real processes: a worker SIGKILLed mid-job, an item that kills its worker,
the server restarted mid-queue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from tests.queue.stubs import StubHandler, executions, failed_runs, jsonl
from tests.queue.test_worker import wait_for, worker
from workflows.queue import EmbeddedValkey, JobQueue, JobStatus, Keys

ROOT = Path(__file__).resolve().parents[2]


def spawn_worker(url: str, lease_s: float, delay_s: float, max_attempts: int = 3) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "tests.queue.worker_proc", url, str(lease_s), str(delay_s),
                          str(max_attempts)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    ready, name = p.stdout.readline().split()  # the worker is connected and in the group
    assert ready == "ready"
    p.name = name  # type: ignore[attr-defined]
    return p


def test_sigkill_mid_job_the_job_completes_in_another_worker(valkey: EmbeddedValkey, queue: JobQueue,
                                                             r: redis.Redis) -> None:
    procs = [spawn_worker(valkey.url, lease_s=1.0, delay_s=0.1) for _ in range(2)]
    try:
        job = queue.submit(jsonl(8), tenant="acme")
        wait_for(lambda: queue.get(job.id, "acme").request_counts.completed >= 2, timeout=20)
        [pending] = r.xpending_range(queue.keys.stream, queue.keys.group, "-", "+", 10)
        victim = next(p for p in procs if p.name == pending["consumer"].decode())  # type: ignore[attr-defined]
        victim.send_signal(signal.SIGKILL)
        victim.wait(5)
        killed_at = queue.get(job.id, "acme").request_counts.completed
        wait_for(lambda: queue.get(job.id, "acme").status is JobStatus.COMPLETED, timeout=20)
    finally:
        for p in procs:
            p.kill()
            p.wait(5)
    done = queue.get(job.id, "acme")
    assert killed_at < 8 and done.attempts == 2
    assert (done.request_counts.completed, done.request_counts.failed) == (8, 0)
    ids = [json.loads(x)["custom_id"] for x in queue.results(job.id, "acme")]
    assert ids == [f"item-{i}" for i in range(8)]  # one result per item
    runs = executions(r)
    assert set(runs) == set(ids) and len(runs) - len(ids) <= 1  # only the interrupted item ran twice


def test_a_worker_kill_charges_the_running_item_only(valkey: EmbeddedValkey, queue: JobQueue,
                                                    r: redis.Redis) -> None:
    job = queue.submit(jsonl(2) + jsonl(1, code="hang", prefix="hang") + jsonl(2, prefix="late"))
    p = spawn_worker(valkey.url, lease_s=0.5, delay_s=0.0)
    try:  # the process hangs in item 2 until it is killed there
        wait_for(lambda: queue.get(job.id, "default").current_item == "hang-0" and "hang-0" in executions(r),
                 timeout=20)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(5)
    worker(queue, StubHandler(r), lease_s=0.5).run(stop_when_empty=True)  # reclaims after the lease
    done = queue.get(job.id, "default")
    assert done.status is JobStatus.COMPLETED and done.attempts == 2
    assert (done.request_counts.completed, done.request_counts.failed) == (5, 0)
    assert failed_runs(r, queue, job.id) == {2: 1}  # the item it died in, once; nothing else
    assert executions(r) == ["item-0", "item-1", "hang-0", "hang-0", "late-0", "late-1"]
    assert queue.errors(job.id, "default") == [] and queue.dead_letters() == []


def test_an_item_that_kills_its_worker_is_spent_and_the_job_completes(valkey: EmbeddedValkey, queue: JobQueue,
                                                                       r: redis.Redis) -> None:
    job = queue.submit(jsonl(1) + jsonl(1, code="die", prefix="die") + jsonl(2, prefix="late"), tenant="acme")
    for _ in range(2):  # two runs allowed: each worker process dies in the item
        p = spawn_worker(valkey.url, lease_s=0.5, delay_s=0.0, max_attempts=2)
        assert p.wait(30) == -signal.SIGKILL
    # a third worker finds the second death, charges it, and the item is spent without a run
    worker(queue, StubHandler(r), lease_s=0.5, max_attempts=2).run(stop_when_empty=True)
    done = queue.get(job.id, "acme")
    assert done.status is JobStatus.COMPLETED and done.failed_at is None
    assert (done.request_counts.completed, done.request_counts.failed) == (3, 1)
    assert [json.loads(x)["custom_id"] for x in queue.results(job.id, "acme")] == ["item-0", "late-0", "late-1"]
    [err] = [json.loads(x) for x in queue.errors(job.id, "acme")]
    assert err["custom_id"] == "die-0" and err["error"]["code"] == "item_failed"
    assert err["error"]["message"].startswith("failed 2 times; last: its worker stopped while running it")
    [dead] = queue.dead_letters()
    assert (dead["job"], dead["custom_id"], dead["attempts"]) == (job.id, "die-0", "2")
    assert executions(r) == ["item-0", "die-0", "die-0", "late-0", "late-1"]


@pytest.mark.parametrize("how", ["stop", "sigkill"])
def test_restarting_the_server_between_submit_and_processing_loses_nothing(tmp_path: Path, how: str) -> None:
    # "stop": a graceful restart (the append-only file is flushed on shutdown);
    # "sigkill": the server is killed; with appendfsync=always every answered write is on disk
    server = EmbeddedValkey(tmp_path / "data", appendfsync="always" if how == "sigkill" else "everysec")
    server.start()
    r = redis.Redis.from_url(server.url)
    queue = JobQueue(r, Keys("t"))
    try:
        jobs = [queue.submit(jsonl(3), tenant="acme", idempotency_key=f"k{i}").id for i in range(4)]
        queue.cancel(jobs[3], "acme")
        server.stop() if how == "stop" else server.kill()
        server.start()  # same directory, same port
        r2 = redis.Redis.from_url(server.url)
        q2 = JobQueue(r2, Keys("t"))
        assert q2.depth() == 3
        assert q2.submit(jsonl(3), tenant="acme", idempotency_key="k0").id == jobs[0]  # keys survive too
        worker(q2, StubHandler(r2)).run(stop_when_empty=True)
        states = [q2.get(j, "acme").status for j in jobs]
        assert states == [JobStatus.COMPLETED] * 3 + [JobStatus.CANCELLED]
        assert all(len(q2.results(j, "acme")) == 3 for j in jobs[:3])
        assert len(executions(r2)) == 9
    finally:
        server.stop()


def test_a_worker_rides_out_a_server_restart(tmp_path: Path) -> None:
    server = EmbeddedValkey(tmp_path / "data")
    server.start()
    r = redis.Redis.from_url(server.url, socket_timeout=5)
    queue = JobQueue(r, Keys("t"))
    try:
        job = queue.submit(jsonl(6))
        w = worker(queue, StubHandler(r, delay_s=0.05))
        server.stop()
        t0 = time.monotonic()
        t = threading.Thread(target=w.run, kwargs={"stop_when_empty": True}, daemon=True)
        t.start()
        time.sleep(0.3)  # the worker meets a dead server and keeps retrying
        server.start()
        t.join(20)
        assert not t.is_alive() and time.monotonic() - t0 < 20
        assert queue.get(job.id, "default").status is JobStatus.COMPLETED
    finally:
        server.stop()
