"""Batch jobs through the SDK: a real Valkey, the real app, a worker on the tiny models."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from client import Job, JobWaitTimeout, NotFoundError, Remask, ReviewCounts, ValidationError
from tests.client.conftest import API_KEY, OTHER_KEY, SLOW, BackgroundWorker, Live


def item(custom_id: str, prompt: str = "x = ") -> dict[str, object]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/completions",
            "body": {"prompt": prompt, "suffix": "\n", "max_tokens": 3, "mode": "ar"}}


@pytest.fixture
def rm(live: Live) -> Remask:
    with Remask(live.url, API_KEY, max_retries=0) as client:
        yield client


def test_submit_a_file_wait_with_progress_and_read_results(rm: Remask, worker: BackgroundWorker,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(item(f"doc-{i}", f"x{i} = ")) + "\n" for i in range(4)))
    job = rm.submit_job(path, metadata={"team": "legal"})
    assert job.status in ("queued", "in_progress") and job.request_counts.total == 4
    assert job.metadata == {"team": "legal"}
    seen: list[Job] = []
    done = rm.wait_job(job.id, poll_interval=0.05, timeout=60, on_progress=seen.append)
    assert done.status == "completed" and done.final and done.progress == 1.0
    assert done.request_counts.completed == 4 and seen[-1] == done
    assert [j.progress for j in seen] == sorted(j.progress for j in seen)  # never goes back
    results = rm.job_results(job.id)
    assert [r.custom_id for r in results] == [f"doc-{i}" for i in range(4)]
    assert all(r.status_code == 200 and r.body is not None and r.body["object"] == "text_completion"
               for r in results)
    assert rm.job_errors(job.id) == []
    assert done.review_counts == ReviewCounts(0, 0)  # completions leave nothing for review
    # the answer of an item is what the synchronous endpoint gives for the same body
    assert results[2].body["choices"][0]["text"] == rm.infill("x2 = ", "\n", max_tokens=3, mode="ar").text
    page = rm.list_jobs(limit=100)
    assert job.id in [j.id for j in page.data]


def test_failed_items_come_back_as_errors(rm: Remask, worker: BackgroundWorker) -> None:
    # a span past the end of the text passes submission (it is checked against the text when it runs)
    lines = [item("good"), json.dumps({"custom_id": "bad-span", "url": "/v1/revise",
                                       "body": {"text": "short", "spans": [[0, 99]]}})]
    job = rm.wait_job(rm.submit_job(lines).id, poll_interval=0.05, timeout=60)
    assert job.status == "completed"
    errors = rm.job_errors(job.id)
    assert job.request_counts.failed == len(errors) == 1
    assert errors[0].custom_id == "bad-span" and errors[0].status_code is None and errors[0].error
    assert [r.custom_id for r in rm.job_results(job.id)] == ["good"]


def test_cancel_a_running_job_keeps_finished_items(rm: Remask, worker: BackgroundWorker) -> None:
    job = rm.submit_job([item("first"), item(f"{SLOW}second"), item("third")])
    deadline = time.monotonic() + 30
    while rm.get_job(job.id).request_counts.completed < 1:  # the first item is done, the slow one runs
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert rm.cancel_job(job.id).status in ("cancelling", "cancelled")
    done = rm.wait_job(job.id, poll_interval=0.05, timeout=30)
    assert done.status == "cancelled" and done.cancelled_at is not None
    assert [r.custom_id for r in rm.job_results(job.id)] == ["first"]


def test_wait_job_times_out_and_the_job_goes_on(rm: Remask, worker: BackgroundWorker) -> None:
    job = rm.submit_job([item(f"{SLOW}a")])
    with pytest.raises(JobWaitTimeout) as exc:
        rm.wait_job(job.id, poll_interval=0.05, timeout=0.3)
    assert isinstance(exc.value, TimeoutError) and job.id in exc.value.message
    assert not rm.get_job(job.id).final
    rm.cancel_job(job.id)
    assert rm.wait_job(job.id, poll_interval=0.05, timeout=30).status == "cancelled"


def test_job_errors_name_line_and_field_and_tenants_are_apart(rm: Remask, live: Live, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(item("ok")) + "\n" + json.dumps(
        {"custom_id": "bad", "url": "/v1/repair", "body": {"code": "x", "rounds": 0}}) + "\n")
    with pytest.raises(ValidationError) as exc:
        rm.submit_job(path)
    assert exc.value.param == "line 2.body.rounds" and exc.value.status == 422
    job = rm.submit_job([item(f"{SLOW}mine")])
    with Remask(live.url, OTHER_KEY, max_retries=0) as other:
        with pytest.raises(NotFoundError):
            other.get_job(job.id)
        with pytest.raises(NotFoundError):
            other.cancel_job(job.id)
        assert job.id not in [j.id for j in other.list_jobs().data]
    assert rm.cancel_job(job.id).status in ("cancelled", "cancelling")
    assert rm.wait_job(job.id, poll_interval=0.05, timeout=30).status == "cancelled"
