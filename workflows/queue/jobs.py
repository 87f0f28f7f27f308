"""Jobs and their items: the status enum, request counts, the job view, one batch item.

A job is a list of items in OpenAI Batch form, one JSON object per line::

    {"custom_id": "doc-1", "method": "POST", "url": "/v1/revise", "body": {"text": "..."}}

States follow OpenAI Batch, plus ``queued``::

    queued -> in_progress -> finalizing -> completed
       |           |  ^
       |           |  +-- queued (an item's run failed: a retry, waiting out its backoff)
       |           +----> cancelling -> cancelled      (stops between items/steps, keeps results)
       |           +----> expired                      (past its completion window)
       +----> cancelled / expired

Why ``queued``: the queue validates a submission synchronously (errors go back to the
caller at once), so a stored job is never *validating*; a job that waits for a worker,
or for its next attempt, is not *in_progress* either. Cancellation differs too: a queued
job is cancelled at once, a running one passes through *cancelling*. ``validating`` stays
in the enum for callers (an HTTP layer validating an upload asynchronously may report it).

Failures belong to items, as in OpenAI Batch: an item that fails (an item error at once; a
crash, or its worker dying, ``max_attempts`` times) gets an error line, counts in
``request_counts.failed``, and the job goes on and ends *completed*. No worker moves a job
to *failed*; the state stays in the enum for callers (a batch that could not start at all).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class JobStatus(str, Enum):
    """Where a job is in its life (OpenAI Batch names, plus ``queued``)."""

    VALIDATING = "validating"
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        """No worker will touch a job in this state again."""
        return self in FINAL_STATES


FINAL_STATES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED})
LIVE_STATES = tuple(s for s in JobStatus if s not in FINAL_STATES)

# item endpoints a job may call (the same paths as the HTTP API's synchronous endpoints)
URLS: tuple[str, ...] = ("/v1/revise", "/v1/repair", "/v1/completions", "/v1/fim/completions", "/v1/compliance")


@dataclass
class RequestCounts:
    """Items in a job: all of them, those that succeeded, those that failed."""

    total: int = 0
    completed: int = 0
    failed: int = 0

    @property
    def done(self) -> int:
        return self.completed + self.failed


@dataclass
class ReviewCounts:
    """Items whose result holds findings left for a person (compliance rewrites not applied), and those findings."""

    items: int = 0
    findings: int = 0


@dataclass
class Job:
    """A job as its owner sees it; :meth:`to_dict` gives the OpenAI Batch object shape."""

    id: str
    tenant: str
    status: JobStatus
    request_counts: RequestCounts
    created_at: int  # unix seconds, like every *_at field
    expires_at: int | None = None  # end of the completion window
    in_progress_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    expired_at: int | None = None
    attempts: int = 0  # deliveries that started running it
    idempotency_key: str | None = None
    webhook_url: str | None = None
    current_item: str | None = None  # custom_id of the item being run, while in progress
    error: str | None = None  # why the job failed, when it did
    metadata: dict[str, str] = field(default_factory=dict)
    review_counts: ReviewCounts = field(default_factory=ReviewCounts)

    @property
    def progress(self) -> float:
        """Share of items done (succeeded or failed), 0..1."""
        c = self.request_counts
        return c.done / c.total if c.total else 1.0

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> Job:
        """Build from a job hash (values decoded to str)."""

        def ts(name: str) -> int | None:
            v = h.get(name)
            return int(float(v)) if v else None

        return cls(
            id=h["id"],
            tenant=h["tenant"],
            status=JobStatus(h["status"]),
            request_counts=RequestCounts(int(h.get("total", 0)), int(h.get("completed", 0)), int(h.get("failed", 0))),
            created_at=int(float(h["created_at"])),
            expires_at=ts("expires_at"),
            in_progress_at=ts("in_progress_at"),
            finalizing_at=ts("finalizing_at"),
            completed_at=ts("completed_at"),
            failed_at=ts("failed_at"),
            cancelling_at=ts("cancelling_at"),
            cancelled_at=ts("cancelled_at"),
            expired_at=ts("expired_at"),
            attempts=int(h.get("attempts", 0)),
            idempotency_key=h.get("idempotency_key") or None,
            webhook_url=h.get("webhook_url") or None,
            current_item=h.get("current_item") or None,
            error=h.get("error") or None,
            metadata=json.loads(h.get("metadata") or "{}"),
            review_counts=ReviewCounts(int(h.get("review_items", 0)), int(h.get("review_findings", 0))),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view in OpenAI Batch shape (``object: "batch"``), plus ``progress``."""
        d = asdict(self)
        d["status"] = self.status.value
        d["object"] = "batch"
        d["progress"] = round(self.progress, 4)
        return d


@dataclass
class BatchItem:
    """One validated request of a job."""

    index: int  # 0-based position in the job
    custom_id: str
    url: str
    body: dict[str, Any]
    method: str = "POST"

    def to_json(self) -> str:
        return json.dumps({"custom_id": self.custom_id, "method": self.method, "url": self.url,
                           "body": self.body}, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, index: int, raw: str | bytes) -> BatchItem:
        d = json.loads(raw)
        return cls(index, d["custom_id"], d["url"], d["body"], d.get("method", "POST"))


def result_line(job_id: str, item: BatchItem, body: dict[str, Any]) -> str:
    """An output line of a succeeded item (OpenAI Batch output format)."""
    return json.dumps({
        "id": f"{job_id}_req_{item.index}",
        "custom_id": item.custom_id,
        "response": {"status_code": 200, "request_id": f"{job_id}_req_{item.index}", "body": body},
        "error": None,
    }, ensure_ascii=False, separators=(",", ":"))


def findings_for_review(body: dict[str, Any]) -> int:
    """How many findings an item's response body leaves for review (its ``needs_review`` list)."""
    return len(body.get("needs_review") or ())


def error_line(job_id: str, item: BatchItem, code: str, message: str) -> str:
    """An output line of a failed item (OpenAI Batch error file format)."""
    return json.dumps({
        "id": f"{job_id}_req_{item.index}",
        "custom_id": item.custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }, ensure_ascii=False, separators=(",", ":"))
