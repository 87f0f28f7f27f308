"""``remask worker`` against a real server, and the embedded server it starts without one."""

from __future__ import annotations

import pytest
import redis

from services.cli import main
from tests.queue.stubs import jsonl
from workflows.queue import JobQueue, JobStatus, Keys, connect


def test_remask_worker_runs_queued_jobs_and_stops_when_empty(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    r, server = connect(None, tmp_path / "valkey")  # no URL: an embedded server
    assert server is not None
    try:
        again, none = connect(None, tmp_path / "valkey")  # a second process would reuse it
        assert none is None and again.ping()
        queue = JobQueue(r, Keys("cli"))
        job = queue.submit(jsonl(3))
        rc = main(["worker", "--redis-url", server.url, "--prefix", "cli", "--handler", "echo",
                   "--stop-when-empty"])
        assert rc == 0 and "1 deliveries handled" in capsys.readouterr().err
        done = queue.get(job.id, "default")
        assert done.status is JobStatus.COMPLETED and done.request_counts.completed == 3
    finally:
        server.stop()
    with pytest.raises(redis.ConnectionError):
        r.ping()
