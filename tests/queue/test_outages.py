"""The queue server going away mid-job: nothing lost, nothing charged, no lease waited out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.queue.stubs import StubHandler, executions, failed_runs, jsonl
from tests.queue.test_worker import custom_ids, in_thread, wait_for, worker
from workflows.queue import BatchItem, EmbeddedValkey, JobQueue, JobStatus, Keys
from workflows.queue.worker import server_unavailable


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedValkey]:
    """A server of this test alone (it is stopped and restarted): same port and data dir."""
    s = EmbeddedValkey(tmp_path / "data")
    s.start()
    yield s
    s.stop()


def impatient(url: str) -> redis.Redis:
    """A client that does not retry on its own, so the worker meets a short outage itself
    (redis-py's default retries for about 5 s: the same path, only slower to reach)."""
    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0))


def test_server_faults_are_told_from_job_faults() -> None:
    assert server_unavailable(redis.ConnectionError("Connection refused"))
    assert server_unavailable(redis.TimeoutError("Timeout reading from socket"))
    assert server_unavailable(redis.exceptions.BusyLoadingError("Valkey is loading the dataset in memory"))
    assert server_unavailable(redis.ResponseError("BUSY Valkey is busy running a script."))
    assert server_unavailable(redis.exceptions.ReadOnlyError("You can't write against a read only replica."))
    assert server_unavailable(redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."))
    assert server_unavailable(redis.ResponseError("NOGROUP No such key 't:jobs' or consumer group"))
    assert not server_unavailable(redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"))
    assert not server_unavailable(RuntimeError("the model crashed"))
    assert not server_unavailable(ConnectionResetError("a socket of the handler's own"))


def test_a_server_error_inside_a_handler_is_waited_out_and_charges_nothing(queue: JobQueue,
                                                                          r: redis.Redis) -> None:
    class LosesTheServerOnce(StubHandler):
        def __call__(self, item: BatchItem, checkpoint: Any) -> dict[str, Any]:
            if item.custom_id == "item-2" and self.calls == 2:
                self.calls += 1
                raise redis.ConnectionError("Connection reset by peer")
            return super().__call__(item, checkpoint)

    job = queue.submit(jsonl(5))
    w = worker(queue, LosesTheServerOnce(r))
    w.run(stop_when_empty=True)
    done = queue.get(job.id, "default")
    assert done.status is JobStatus.COMPLETED and done.error is None
    assert done.attempts == 1  # the worker resumed its own delivery: no second attempt
    assert w.outages == 1 and failed_runs(r, queue, job.id) == {}
    assert executions(r) == [f"item-{i}" for i in range(5)]
    assert (done.request_counts.completed, done.request_counts.failed) == (5, 0)


def test_a_server_restart_mid_job_loses_nothing_and_charges_nothing(server: EmbeddedValkey) -> None:
    r = impatient(server.url)
    queue = JobQueue(r, Keys("t"))
    job = queue.submit(jsonl(12))
    # a lease far longer than the test: only a worker that resumes its own delivery finishes in time
    w = worker(queue, StubHandler(r, delay_s=0.04), lease_s=60.0)
    t = in_thread(w.run, stop_when_empty=True)
    try:
        wait_for(lambda: queue.get(job.id, "default").request_counts.completed >= 3)
        server.stop()  # graceful: the append-only file is flushed
        wait_for(lambda: w.outages == 1)
        server.start()  # same port, same data
        t.join(20)
        assert not t.is_alive()
    finally:
        w.stop()
        t.join(5)
    done = queue.get(job.id, "default")
    assert done.status is JobStatus.COMPLETED and done.attempts == 1
    assert (done.request_counts.completed, done.request_counts.failed) == (12, 0)
    assert failed_runs(r, queue, job.id) == {} and queue.dead_letters() == []
    assert custom_ids(queue.results(job.id, "default")) == [f"item-{i}" for i in range(12)]
    runs = executions(r)
    assert set(runs) == {f"item-{i}" for i in range(12)} and len(runs) - 12 <= 1  # at most the cut item twice
    assert json.loads(queue.results(job.id, "default")[11])["response"]["status_code"] == 200


def test_after_a_restart_no_entry_is_reclaimed_before_the_server_was_up_a_lease(server: EmbeddedValkey) -> None:
    r = redis.Redis.from_url(server.url)
    queue = JobQueue(r, Keys("t"))
    queue.submit(jsonl(1))
    k = queue.keys
    [[_, [(entry, _)]]] = r.xreadgroup(k.group, "owner", {k.stream: ">"}, count=1)
    # the entry's idle time runs on while the server is down, as if it had been down a minute
    r.xclaim(k.stream, k.group, "owner", 0, [entry], idle=60_000, justid=True)
    server.stop()
    server.start()
    r2 = redis.Redis.from_url(server.url)
    w = worker(JobQueue(r2, Keys("t")), StubHandler(r2), lease_s=10.0)
    assert w.step() is False  # the owner may still be alive: it gets a lease to renew
    [pending] = r2.xpending_range(k.stream, k.group, "-", "+", 10)
    assert pending["consumer"] == b"owner" and pending["time_since_delivered"] > 10_000
