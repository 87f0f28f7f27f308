"""The queue's client side: submit, look at, list and cancel jobs; read their outputs.

:class:`JobQueue` is what an HTTP layer or a Serve deployment holds: every call names the
tenant, and a tenant sees only its own jobs (another tenant's job id answers exactly like
an unknown one: :class:`JobNotFound`). Workers (:mod:`workflows.queue.worker`) use the same
class for the state changes they share with clients.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import redis

from workflows.limits import Limits
from workflows.queue.jobs import FINAL_STATES, Job, JobStatus
from workflows.queue.keys import Keys, new_job_id
from workflows.queue.scripts import Scripts
from workflows.queue.validation import MAX_LINES, LineError, SubmissionError, parse_submission

DAY = 86_400
MAX_IDEMPOTENCY_KEY = 256
MAX_METADATA = 16  # entries, as OpenAI Batch allows

# JobQueue has a method named ``list``: inside the class these aliases stand for the builtins
Lines = list[str]
Jobs = list[Job]


class JobNotFound(KeyError):
    """No such job for this tenant (it may exist for another one: that is not said)."""

    def __str__(self) -> str:
        return f"job {self.args[0]!r} not found"


def _s(v: Any) -> str:
    """A reply value as str, whatever the client's ``decode_responses`` setting."""
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


@dataclass
class QueueStats:
    """Figures for metrics: how much waits, how much runs, how jobs ended."""

    depth: int  # jobs waiting for a worker (new, or between retries)
    delayed: int  # of those, jobs waiting out a retry backoff
    in_flight: int  # stream entries delivered to a worker and not yet settled
    dead_lettered: int  # entries in the dead-letter stream
    jobs_by_state: dict[str, int] = field(default_factory=dict)  # live states: now; final: in all


class JobQueue:
    """Client of the job queue on one Redis (or Valkey) server.

    ``retention_s``: how long a finished job (state, items, outputs) and its idempotency
    key are kept; ``completion_window_s``: how long a job may wait and run before it expires.
    """

    def __init__(self, r: redis.Redis, keys: Keys | None = None, max_lines: int = MAX_LINES,
                 retention_s: int = 7 * DAY, completion_window_s: int = DAY) -> None:
        self.r = r
        self.keys = keys or Keys()
        self.max_lines = max_lines
        self.retention_s = retention_s
        self.completion_window_s = completion_window_s
        self.scripts = Scripts(r)
        self.ensure_group()

    def ensure_group(self) -> None:
        """Create the stream and its consumer group if they do not exist yet."""
        try:
            self.r.xgroup_create(self.keys.stream, self.keys.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- submitting -------------------------------------------------------------------

    def submit(self, data: str | bytes | list[Any], tenant: str = "default",
               idempotency_key: str | None = None, webhook_url: str | None = None,
               metadata: dict[str, str] | None = None, completion_window_s: int | None = None,
               limits: Limits | None = None) -> Job:
        """Validate and queue a job; returns it (status ``queued``).

        ``data`` is JSONL text/bytes or a list of item objects; each body is checked against
        ``limits`` (the service's request limits; default :class:`Limits`). With an ``idempotency_key``
        already used by this tenant (within the retention time), nothing is queued and the
        existing job is returned. Raises :class:`SubmissionError` naming line and field.
        """
        problems = _check_options(tenant, idempotency_key, webhook_url, metadata)
        if problems:
            raise SubmissionError(problems)
        items = parse_submission(data, self.max_lines, limits)
        job_id = new_job_id()
        now = int(time.time())
        window = completion_window_s or self.completion_window_s
        k = self.keys
        # items first, under a fresh id and a short expiry: a submitter that dies before
        # the script below leaves nothing behind that could run; the script keeps them
        pipe = self.r.pipeline(transaction=False)
        lines = [it.to_json() for it in items]
        for i in range(0, len(lines), 1000):
            pipe.rpush(k.items(job_id), *lines[i:i + 1000])
        pipe.expire(k.items(job_id), 3600)
        pipe.execute()
        fields = {
            "id": job_id, "tenant": tenant, "status": JobStatus.QUEUED.value, "created_at": now,
            "queued_at": now, "expires_at": now + window, "total": len(items), "completed": 0,
            "failed": 0, "attempts": 0, "idempotency_key": idempotency_key or "",
            "webhook_url": webhook_url or "", "metadata": json.dumps(metadata or {}),
        }
        argv: Any = [job_id, repr(time.time()), self.retention_s]  # score: sub-second order
        for name, value in fields.items():
            argv += [name, value]
        idem = k.idempotency(tenant, idempotency_key) if idempotency_key else ""
        got = _s(self.scripts.submit(keys=[idem, k.job(job_id), k.tenant_jobs(tenant), k.stream, k.states,
                                           k.items(job_id)], args=argv))
        if got != job_id:  # a resubmission: the job it repeats stands
            self.r.delete(k.items(job_id))
        return self.get(got, tenant)

    # -- looking at jobs --------------------------------------------------------------

    def get(self, job_id: str, tenant: str) -> Job:
        """The job, if it belongs to ``tenant``; else :class:`JobNotFound`."""
        job = self.load(job_id)
        if job is None or job.tenant != tenant:
            raise JobNotFound(job_id)
        return job

    def load(self, job_id: str) -> Job | None:
        """The job whoever owns it (for workers and operators), or None."""
        h = {_s(a): _s(b) for a, b in self.r.hgetall(self.keys.job(job_id)).items()}
        return Job.from_hash(h) if "id" in h else None

    def list(self, tenant: str, limit: int = 20, after: str | None = None) -> Jobs:
        """The tenant's jobs, newest first; ``after`` is the last id of the previous page."""
        key = self.keys.tenant_jobs(tenant)
        start = 0
        if after is not None:
            rank: Any = self.r.zrevrank(key, after)
            if rank is None:
                raise JobNotFound(after)
            start = int(rank) + 1
        jobs: Jobs = []
        while len(jobs) < limit:
            ids: Lines = [_s(x) for x in self.r.zrevrange(key, start, start + limit - 1)]
            if not ids:
                break
            start += len(ids)
            for job_id in ids:
                job = self.load(job_id)
                if job is None:  # expired after its retention time
                    self.r.zrem(key, job_id)
                    start -= 1
                elif len(jobs) < limit:
                    jobs.append(job)
        return jobs

    def results(self, job_id: str, tenant: str) -> Lines:
        """Output lines of the items that succeeded, in input order."""
        return self._outputs(self.get(job_id, tenant), self.keys.results(job_id))

    def errors(self, job_id: str, tenant: str) -> Lines:
        """Output lines of the items that failed, in input order."""
        return self._outputs(self.get(job_id, tenant), self.keys.errors(job_id))

    def results_jsonl(self, job_id: str, tenant: str) -> str:
        """:meth:`results` as a JSONL document."""
        return "".join(line + "\n" for line in self.results(job_id, tenant))

    def errors_jsonl(self, job_id: str, tenant: str) -> str:
        """:meth:`errors` as a JSONL document."""
        return "".join(line + "\n" for line in self.errors(job_id, tenant))

    def _outputs(self, job: Job, key: str) -> Lines:
        return list(self._iter_outputs(job.request_counts.total, key))

    def _iter_outputs(self, total: int, key: str, chunk: int = 500) -> Iterator[str]:
        for lo in range(0, total, chunk):
            for v in self.r.hmget(key, [str(i) for i in range(lo, min(total, lo + chunk))]):
                if v is not None:
                    yield _s(v)

    # -- changing state ---------------------------------------------------------------

    def cancel(self, job_id: str, tenant: str) -> Job:
        """Cancel a job: a queued one is cancelled at once, a running one becomes
        ``cancelling`` and its worker stops at the next item or denoising step, keeping
        what it finished. A finished job is returned unchanged."""
        self.get(job_id, tenant)
        if self.transition(job_id, JobStatus.CANCELLED, JobStatus.QUEUED, JobStatus.VALIDATING):
            self.expire(job_id)
        else:
            self.transition(job_id, JobStatus.CANCELLING, JobStatus.IN_PROGRESS)
        return self.get(job_id, tenant)

    def transition(self, job_id: str, to: JobStatus, *sources: JobStatus) -> JobStatus | None:
        """Move a job to ``to`` if it is in one of ``sources``; returns the state it left."""
        got = self.scripts.transition(keys=[self.keys.job(job_id), self.keys.states],
                                      args=[to.value, int(time.time()), *(s.value for s in sources)])
        return JobStatus(_s(got)) if got else None

    def expire(self, job_id: str) -> None:
        """Start the retention clock of a job that reached a final state."""
        pipe = self.r.pipeline(transaction=False)
        for key in self.keys.job_keys(job_id):
            pipe.expire(key, self.retention_s)
        pipe.execute()

    # -- figures ----------------------------------------------------------------------

    def depth(self) -> int:
        """Jobs waiting for a worker (queued, including those waiting out a retry)."""
        return int(self.r.hget(self.keys.states, JobStatus.QUEUED.value) or 0)

    def stats(self) -> QueueStats:
        """Queue depth, in-flight deliveries, jobs by state and dead-lettered jobs."""
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(k.states)
        pipe.zcard(k.delayed)
        pipe.xpending(k.stream, k.group)
        pipe.xlen(k.dead)
        states, delayed, pending, dead = pipe.execute()
        by_state = {s.value: 0 for s in JobStatus}
        by_state.update({_s(a): int(b) for a, b in states.items()})
        return QueueStats(depth=by_state[JobStatus.QUEUED.value], delayed=int(delayed),
                          in_flight=int(pending["pending"]), dead_lettered=int(dead), jobs_by_state=by_state)

    def dead_letters(self, count: int = 100) -> Any:
        """The newest dead-letter entries, as dicts (operators' view: all tenants)."""
        entries: Any = self.r.xrevrange(self.keys.dead, count=count)
        return [{_s(a): _s(b) for a, b in fields.items()} | {"entry": _s(eid)} for eid, fields in entries]

    def is_final(self, job_id: str) -> bool:
        """Whether the job reached a final state (or no longer exists)."""
        v = self.r.hget(self.keys.job(job_id), "status")
        return v is None or JobStatus(_s(v)) in FINAL_STATES


def _check_options(tenant: str, idempotency_key: str | None, webhook_url: str | None,
                   metadata: dict[str, str] | None) -> list[LineError]:
    problems = []
    if not isinstance(tenant, str) or not tenant:
        problems.append(LineError(0, "tenant", "required: a non-empty string"))
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        problems.append(LineError(0, "idempotency_key", f"1 to {MAX_IDEMPOTENCY_KEY} characters"))
    if webhook_url is not None:
        u = urlparse(webhook_url)
        if u.scheme not in ("http", "https") or not u.netloc:
            problems.append(LineError(0, "webhook_url", "an http:// or https:// URL"))
    if metadata is not None and (len(metadata) > MAX_METADATA or not all(
            isinstance(a, str) and isinstance(b, str) for a, b in metadata.items())):
        problems.append(LineError(0, "metadata", f"at most {MAX_METADATA} string keys and values"))
    return problems
