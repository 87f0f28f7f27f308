"""The client side: submission, idempotency, tenants, listing, cancelling, figures."""

from __future__ import annotations

import pytest
import redis

from tests.queue.stubs import jsonl
from workflows.queue import JobNotFound, JobQueue, JobStatus, Keys, SubmissionError


def test_submit_stores_a_queued_job(queue: JobQueue) -> None:
    job = queue.submit(jsonl(3), tenant="acme", metadata={"project": "q3"}, webhook_url="http://127.0.0.1:9/x")
    assert job.id.startswith("batch_")
    assert job.status is JobStatus.QUEUED
    assert (job.request_counts.total, job.request_counts.completed, job.request_counts.failed) == (3, 0, 0)
    assert job.progress == 0.0 and job.metadata == {"project": "q3"}
    assert job.expires_at == job.created_at + queue.completion_window_s
    view = job.to_dict()
    assert view["object"] == "batch" and view["status"] == "queued"
    assert queue.depth() == 1


def test_same_idempotency_key_returns_the_same_job_and_queues_once(queue: JobQueue, r: redis.Redis) -> None:
    a = queue.submit(jsonl(2), tenant="acme", idempotency_key="upload-1")
    b = queue.submit(jsonl(2), tenant="acme", idempotency_key="upload-1")
    c = queue.submit(jsonl(2), tenant="other", idempotency_key="upload-1")  # keys are per tenant
    assert a.id == b.id != c.id
    assert r.xlen(queue.keys.stream) == 2 and queue.depth() == 2
    assert len(r.keys("t:job:*:items")) == 2  # nothing left behind by the resubmission
    assert r.ttl(queue.keys.items(a.id)) == -1  # the stored job's items do not expire


def test_a_tenant_sees_only_its_own_jobs(queue: JobQueue) -> None:
    mine = queue.submit(jsonl(1), tenant="acme")
    theirs = queue.submit(jsonl(1), tenant="globex")
    assert queue.get(mine.id, "acme").id == mine.id
    for call in (queue.get, queue.cancel, queue.results, queue.errors):
        with pytest.raises(JobNotFound):
            call(theirs.id, "acme")
    with pytest.raises(JobNotFound):
        queue.get("batch_doesnotexist", "acme")
    assert [j.id for j in queue.list("acme")] == [mine.id]
    assert queue.get(theirs.id, "globex").status is JobStatus.QUEUED  # untouched by acme's cancel


def test_tenant_names_cannot_forge_keys(queue: JobQueue) -> None:
    a = queue.submit(jsonl(1), tenant="a:idem", idempotency_key="k")
    b = queue.submit(jsonl(1), tenant="a", idempotency_key="idem:k")
    assert a.id != b.id


def test_list_pages_newest_first(queue: JobQueue) -> None:
    ids = [queue.submit(jsonl(1), tenant="acme").id for _ in range(5)]
    first = queue.list("acme", limit=2)
    rest = queue.list("acme", limit=10, after=first[-1].id)
    assert [j.id for j in first + rest] == ids[::-1]


def test_cancelling_a_queued_job_is_immediate(queue: JobQueue) -> None:
    job = queue.submit(jsonl(2), tenant="acme")
    done = queue.cancel(job.id, "acme")
    assert done.status is JobStatus.CANCELLED and done.cancelled_at is not None
    assert queue.cancel(job.id, "acme").status is JobStatus.CANCELLED  # again: unchanged
    s = queue.stats()
    assert s.depth == 0 and s.jobs_by_state["cancelled"] == 1 and s.jobs_by_state["queued"] == 0


def test_submission_options_are_checked(queue: JobQueue) -> None:
    with pytest.raises(SubmissionError, match="webhook_url"):
        queue.submit(jsonl(1), webhook_url="ftp://example.org/hook")
    with pytest.raises(SubmissionError, match="tenant"):
        queue.submit(jsonl(1), tenant="")
    with pytest.raises(SubmissionError, match="line 1, body.code"):
        queue.submit('{"custom_id": "a", "url": "/v1/repair", "body": {"code": 3}}')
    assert queue.depth() == 0


def test_queues_with_different_prefixes_are_independent(r: redis.Redis) -> None:
    a, b = JobQueue(r, Keys("qa")), JobQueue(r, Keys("qb"))
    job = a.submit(jsonl(1))
    assert a.depth() == 1 and b.depth() == 0
    with pytest.raises(JobNotFound):
        b.get(job.id, "default")
