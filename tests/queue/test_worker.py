"""The worker in this process, against a real server, with a stub handler (no models)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
import redis

from tests.queue.stubs import StubHandler, executions, failed_runs, jsonl
from workflows.queue import BatchItem, JobQueue, JobStatus, Worker, WorkerConfig

FAST = WorkerConfig(lease_s=1.0, poll_s=0.02, backoff_s=0.05, block_s=0.1)


def worker(queue: JobQueue, handler: Any, **cfg: Any) -> Worker:
    config = WorkerConfig(**{**FAST.__dict__, **cfg})
    return Worker(queue.r, handler, config, queue=queue)


def in_thread(fn: Callable[..., Any], **kw: Any) -> threading.Thread:
    t = threading.Thread(target=fn, kwargs=kw, daemon=True)
    t.start()
    return t


def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def custom_ids(lines: list[str]) -> list[str]:
    return [json.loads(x)["custom_id"] for x in lines]


def test_a_job_runs_to_completion_with_outputs_in_input_order(queue: JobQueue, r: redis.Redis) -> None:
    data = jsonl(3) + jsonl(1, code="bad", prefix="bad") + jsonl(2, prefix="late")
    job = queue.submit(data, tenant="acme")
    assert worker(queue, StubHandler(r)).run(stop_when_empty=True) == 1
    done = queue.get(job.id, "acme")
    assert done.status is JobStatus.COMPLETED and done.progress == 1.0
    assert (done.request_counts.completed, done.request_counts.failed) == (5, 1)
    assert None not in (done.in_progress_at, done.finalizing_at, done.completed_at)
    assert done.attempts == 1 and done.current_item is None
    assert custom_ids(queue.results(job.id, "acme")) == ["item-0", "item-1", "item-2", "late-0", "late-1"]
    [err] = [json.loads(x) for x in queue.errors(job.id, "acme")]
    assert err["custom_id"] == "bad-0" and err["error"]["message"] == "the stub refuses this item"
    first = json.loads(queue.results(job.id, "acme")[0])
    assert first["response"] == {"status_code": 200, "request_id": f"{job.id}_req_0",
                                 "body": {"text": "X = 1", "custom_id": "item-0"}}
    s = queue.stats()
    assert (s.depth, s.in_flight, s.dead_lettered) == (0, 0, 0) and s.jobs_by_state["completed"] == 1
    assert r.xlen(queue.keys.stream) == 0  # settled entries are deleted
    assert 0 < r.ttl(queue.keys.job(job.id)) <= queue.retention_s  # kept for the retention time


def test_a_poison_item_goes_to_the_errors_file_alone_and_the_job_completes(queue: JobQueue,
                                                                           r: redis.Redis) -> None:
    data = jsonl(1, prefix="ok") + jsonl(1, code="boom", prefix="boom") + jsonl(2, prefix="late")
    poison = queue.submit(data, tenant="acme")
    healthy = queue.submit(jsonl(2), tenant="acme")
    t0 = time.monotonic()
    worker(queue, StubHandler(r), max_attempts=3).run(stop_when_empty=True)
    assert time.monotonic() - t0 >= 0.05 + 0.1  # two backoffs: 0.05 s, then 0.1 s
    job = queue.get(poison.id, "acme")
    assert job.status is JobStatus.COMPLETED and job.attempts == 3 and job.failed_at is None
    assert (job.request_counts.completed, job.request_counts.failed) == (3, 1)
    assert custom_ids(queue.results(poison.id, "acme")) == ["ok-0", "late-0", "late-1"]
    [err] = [json.loads(x) for x in queue.errors(poison.id, "acme")]
    assert err["custom_id"] == "boom-0" and err["error"]["code"] == "item_failed"
    assert err["error"]["message"] == "failed 3 times; last: RuntimeError: the stub crashed"
    [dead] = queue.dead_letters()
    assert (dead["job"], dead["tenant"], dead["item"], dead["custom_id"], dead["attempts"]) == (
        poison.id, "acme", "1", "boom-0", "3")
    runs = executions(r)
    assert runs.count("boom-0") == 3  # charged to the item: its runs, not the job's deliveries
    assert [runs.count(c) for c in ("ok-0", "late-0", "late-1")] == [1, 1, 1]  # nothing else ran twice
    assert failed_runs(r, queue, poison.id) == {1: 3}
    assert queue.get(healthy.id, "acme").status is JobStatus.COMPLETED
    s = queue.stats()
    assert s.dead_lettered == 1 and s.jobs_by_state["completed"] == 2 and s.jobs_by_state["failed"] == 0
    assert s.delayed == 0


def test_an_item_whose_workers_all_died_is_spent_without_running_again(queue: JobQueue, r: redis.Redis) -> None:
    job = queue.submit(jsonl(1, code="die", prefix="die") + jsonl(2), tenant="acme")
    k = queue.keys
    # as if two workers had died running item 0 and a third took the entry and died too
    [[_, [(entry, _)]]] = r.xreadgroup(k.group, "ghost", {k.stream: ">"}, count=1)
    queue.transition(job.id, JobStatus.IN_PROGRESS, JobStatus.QUEUED)
    r.hset(k.job(job.id), mapping={"running": f"0 {entry.decode()} ghost-run", "failures:0": 2, "attempts": 3})
    r.xclaim(k.stream, k.group, "ghost", 0, [entry], idle=60_000, justid=True)  # silent for a minute
    worker(queue, StubHandler(r), max_attempts=3).run(stop_when_empty=True)
    done = queue.get(job.id, "acme")
    assert done.status is JobStatus.COMPLETED and done.attempts == 4
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    assert executions(r) == ["item-0", "item-1"]  # the spent item never ran again
    [err] = [json.loads(x) for x in queue.errors(job.id, "acme")]
    assert err["custom_id"] == "die-0" and err["error"]["code"] == "item_failed"
    assert "its worker stopped while running it" in err["error"]["message"]
    [dead] = queue.dead_letters()
    assert (dead["custom_id"], dead["attempts"]) == ("die-0", "3")


def test_a_failed_attempt_is_retried_after_its_backoff(queue: JobQueue, r: redis.Redis) -> None:
    class FlakyOnce(StubHandler):
        def __call__(self, item: BatchItem, checkpoint: Any) -> dict[str, Any]:
            if self.calls == 1:
                self.calls += 1
                raise ConnectionResetError("a transient failure")
            return super().__call__(item, checkpoint)

    job = queue.submit(jsonl(3))
    handler = FlakyOnce(r)
    worker(queue, handler, backoff_s=0.2).run(stop_when_empty=True)
    done = queue.get(job.id, "default")
    assert done.status is JobStatus.COMPLETED and done.attempts == 2
    assert done.request_counts.completed == 3 and executions(r) == ["item-0", "item-1", "item-2"]


def test_each_result_is_written_once_when_a_job_is_delivered_twice(queue: JobQueue, r: redis.Redis) -> None:
    job = queue.submit(jsonl(20))
    r.xadd(queue.keys.stream, {"job": job.id})  # a second delivery of the same job
    handler = StubHandler(r, delay_s=0.02, steps=1)
    a, b = worker(queue, handler), worker(queue, handler)
    threads = [in_thread(a.run, stop_when_empty=True), in_thread(b.run, stop_when_empty=True)]
    for t in threads:
        t.join(20)
    done = queue.get(job.id, "default")
    assert done.status is JobStatus.COMPLETED
    assert len(executions(r)) > 20  # both deliveries ran items...
    assert (done.request_counts.completed, done.request_counts.failed) == (20, 0)  # ...counted once
    assert custom_ids(queue.results(job.id, "default")) == [f"item-{i}" for i in range(20)]


def test_record_writes_an_item_outcome_at_most_once(queue: JobQueue, r: redis.Redis) -> None:
    job = queue.submit(jsonl(1))
    k = queue.keys
    keys = [k.results(job.id), k.errors(job.id), k.job(job.id)]
    assert queue.scripts.record(keys=keys, args=[0, "completed", "first", 0, 2]) == 1
    assert queue.scripts.record(keys=keys, args=[0, "failed", "second", 0, 5]) == 0
    assert r.hget(k.results(job.id), "0") == b"first" and not r.exists(k.errors(job.id))
    assert queue.get(job.id, "default").request_counts.completed == 1
    assert queue.get(job.id, "default").review_counts.findings == 2


def test_findings_left_for_review_are_counted_on_the_job_once_per_item(queue: JobQueue, r: redis.Redis) -> None:
    lines = jsonl(2) + jsonl(1, "review 3", "held") + jsonl(1, "review 1", "also") + jsonl(1, "bad", "refused")
    job = queue.submit(lines)
    r.xadd(queue.keys.stream, {"job": job.id})  # delivered twice: each item's findings still count once
    handler = StubHandler(r, delay_s=0.02, steps=1)
    threads = [in_thread(worker(queue, handler).run, stop_when_empty=True) for _ in range(2)]
    for t in threads:
        t.join(20)
    done = queue.get(job.id, "default")
    assert (done.request_counts.completed, done.request_counts.failed) == (4, 1)
    assert (done.review_counts.items, done.review_counts.findings) == (2, 4)
    assert done.to_dict()["review_counts"] == {"items": 2, "findings": 4}


def test_cancel_mid_job_stops_between_steps_and_keeps_finished_items(queue: JobQueue, r: redis.Redis) -> None:
    job = queue.submit(jsonl(30), tenant="acme")
    handler = StubHandler(r, delay_s=0.06, steps=6)
    t = in_thread(worker(queue, handler).run, stop_when_empty=True)
    wait_for(lambda: queue.get(job.id, "acme").request_counts.completed >= 3)
    assert queue.cancel(job.id, "acme").status in (JobStatus.CANCELLING, JobStatus.CANCELLED)
    t.join(10)
    done = queue.get(job.id, "acme")
    assert done.status is JobStatus.CANCELLED and done.cancelling_at and done.cancelled_at
    n = done.request_counts.completed
    assert 3 <= n < 30 and done.request_counts.failed == 0
    assert custom_ids(queue.results(job.id, "acme")) == [f"item-{i}" for i in range(n)]
    assert len(executions(r)) - n <= 1  # at most the interrupted item ran without a result
    assert queue.stats().jobs_by_state["cancelled"] == 1 and r.xlen(queue.keys.stream) == 0


def test_a_job_cancelled_while_queued_never_runs(queue: JobQueue, r: redis.Redis) -> None:
    job = queue.submit(jsonl(2))
    queue.cancel(job.id, "default")
    worker(queue, StubHandler(r)).run(stop_when_empty=True)
    assert executions(r) == [] and queue.get(job.id, "default").status is JobStatus.CANCELLED
    assert r.xlen(queue.keys.stream) == 0


def test_a_stalled_worker_loses_its_lease_and_another_finishes(queue: JobQueue, r: redis.Redis) -> None:
    job = queue.submit(jsonl(8))
    slow = worker(queue, StubHandler(r, delay_s=0.1, steps=5), lease_s=0.5, heartbeat_s=0.1)
    t = in_thread(slow.step, block_s=1.0)
    wait_for(lambda: queue.get(job.id, "default").request_counts.completed >= 2)
    entry = r.xpending_range(queue.keys.stream, queue.keys.group, "-", "+", 1)[0]["message_id"]
    r.xclaim(queue.keys.stream, queue.keys.group, "thief", 0, [entry], justid=True)  # as XAUTOCLAIM would
    t.join(5)
    assert not t.is_alive()
    stalled = queue.get(job.id, "default")
    assert stalled.status is JobStatus.IN_PROGRESS and stalled.request_counts.completed < 8
    # the thief never works: its entry goes idle past the lease and a third worker reclaims it
    worker(queue, StubHandler(r), lease_s=0.5).run(stop_when_empty=True)
    done = queue.get(job.id, "default")
    assert done.status is JobStatus.COMPLETED and done.request_counts.completed == 8 and done.attempts == 2


def test_a_stopping_worker_gives_its_job_back_at_once(queue: JobQueue, r: redis.Redis) -> None:
    job = queue.submit(jsonl(10))
    first = worker(queue, StubHandler(r, delay_s=0.05), lease_s=30.0)
    t = in_thread(first.run)
    wait_for(lambda: queue.get(job.id, "default").request_counts.completed >= 2)
    first.stop()
    t.join(5)
    assert queue.get(job.id, "default").attempts == 0  # a graceful stop is not an attempt
    t0 = time.monotonic()
    worker(queue, StubHandler(r), lease_s=30.0).run(stop_when_empty=True)  # no 30 s wait
    assert time.monotonic() - t0 < 5
    assert queue.get(job.id, "default").status is JobStatus.COMPLETED


def test_an_expired_job_is_not_run(queue: JobQueue, r: redis.Redis) -> None:
    job = queue.submit(jsonl(2))
    r.hset(queue.keys.job(job.id), "expires_at", int(time.time()) - 1)
    worker(queue, StubHandler(r)).run(stop_when_empty=True)
    done = queue.get(job.id, "default")
    assert done.status is JobStatus.EXPIRED and done.expired_at and executions(r) == []


def test_the_webhook_gets_the_final_job_and_a_dead_one_is_harmless(queue: JobQueue, r: redis.Redis,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMASK_WEBHOOK_ALLOW", "127.0.0.1")  # the receiver is on loopback: internal
    got: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    in_thread(server.serve_forever)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        job = queue.submit(jsonl(2), webhook_url=url)
        unreachable = queue.submit(jsonl(1), webhook_url="http://127.0.0.1:9/nobody-listens")
        worker(queue, StubHandler(r), webhook_timeout_s=1.0).run(stop_when_empty=True)
    finally:
        server.shutdown()
    assert [(g["id"], g["status"], g["request_counts"]["completed"]) for g in got] == [(job.id, "completed", 2)]
    assert queue.get(unreachable.id, "default").status is JobStatus.COMPLETED
