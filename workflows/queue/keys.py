"""Every Redis key, stream and group name of the job queue, built in one place.

Layout under a prefix ``P`` (default ``remask``), one job ``J`` of tenant ``T``:

- ``P:jobs`` stream, consumer group ``P:workers``: one entry ``{job: J}`` per delivery
  request (a submission, a retry that came due); acknowledged and deleted when settled
- ``P:delayed`` sorted set: job ids waiting for a retry, scored by the time they are due
- ``P:dead`` stream: dead-lettered items, spent by failed runs (``job``, ``tenant``, ``item``,
  ``custom_id``, ``attempts``, ``error``, ``at``)
- ``P:states`` hash: jobs per state (gauges for live states, totals for final ones)
- ``P:job:J`` hash: the job's state, counts, timestamps and options; ``running`` (the item
  being run: ``"<index> <entry> <run token>"``) and ``failures:<index>`` (an item's failed runs)
- ``P:job:J:items`` list: the items as normalised JSON, in input order
- ``P:job:J:results`` / ``P:job:J:errors`` hashes: item index -> output JSONL line;
  an index is written at most once across both (the exactly-once record)
- ``P:tenant:T:jobs`` sorted set: the tenant's job ids by creation time
- ``P:tenant:T:idem:K`` string: the job id an idempotency key ``K`` maps to

Tenant names and idempotency keys are user input: they are hex-encoded in key names, so
a ``:`` in them can never forge another tenant's key. Job ids are user input too (every job
route takes one): the id format is defined here, once, beside the function that makes ids.
A well-formed id (``batch_`` and 32 hex digits: no separator) is its own key segment; any
other text is hex-encoded behind ``!``, a character no id has, so ``J:items`` or another
tenant's key can never be addressed through an id: it names a key no job uses.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

DEFAULT_PREFIX = "remask"
JOB_ID_PREFIX = "batch_"  # OpenAI Batch ids look alike
JOB_ID_PATTERN = re.compile(r"batch_[0-9a-f]{32}")  # JOB_ID_PREFIX + a UUID4's hex digits


def new_job_id() -> str:
    """A fresh job id (random, so an id reveals nothing and cannot be guessed)."""
    return f"{JOB_ID_PREFIX}{uuid.uuid4().hex}"


def is_job_id(text: object) -> bool:
    """Whether ``text`` has the exact format of the ids :func:`new_job_id` makes."""
    return isinstance(text, str) and JOB_ID_PATTERN.fullmatch(text) is not None


def _safe(part: str) -> str:
    """Encode user-supplied text for a key segment (no separators, no collisions)."""
    return part.encode("utf-8").hex()


def _job_segment(job_id: str) -> str:
    """The key segment of a job id: itself when well formed (keys of stored jobs keep their
    names), else ``!`` + hex of its UTF-8 (lone surrogates too): never a ``:``, never an id."""
    if is_job_id(job_id):
        return job_id
    return "!" + job_id.encode("utf-8", "surrogatepass").hex()


@dataclass(frozen=True)
class Keys:
    """Builds the queue's key names under one prefix (one prefix = one independent queue)."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or any(c.isspace() for c in self.prefix):
            raise ValueError(f"queue prefix {self.prefix!r} must be non-empty and have no whitespace")

    @property
    def stream(self) -> str:
        """Stream of jobs to run."""
        return f"{self.prefix}:jobs"

    @property
    def group(self) -> str:
        """Consumer group every worker reads :attr:`stream` through."""
        return f"{self.prefix}:workers"

    @property
    def delayed(self) -> str:
        """Sorted set of job ids waiting for a retry, scored by due time (unix seconds)."""
        return f"{self.prefix}:delayed"

    @property
    def dead(self) -> str:
        """Dead-letter stream."""
        return f"{self.prefix}:dead"

    @property
    def states(self) -> str:
        """Hash: state name -> number of jobs."""
        return f"{self.prefix}:states"

    def job(self, job_id: str) -> str:
        """Hash of one job's state."""
        return f"{self.prefix}:job:{_job_segment(job_id)}"

    def items(self, job_id: str) -> str:
        """List of a job's items (JSON), in input order."""
        return f"{self.job(job_id)}:items"

    def results(self, job_id: str) -> str:
        """Hash: item index -> result line."""
        return f"{self.job(job_id)}:results"

    def errors(self, job_id: str) -> str:
        """Hash: item index -> error line."""
        return f"{self.job(job_id)}:errors"

    def job_keys(self, job_id: str) -> list[str]:
        """Every key that holds one job's data (for expiry after it ends)."""
        return [self.job(job_id), self.items(job_id), self.results(job_id), self.errors(job_id)]

    def tenant_jobs(self, tenant: str) -> str:
        """Sorted set of a tenant's job ids, scored by creation time."""
        return f"{self.prefix}:tenant:{_safe(tenant)}:jobs"

    def idempotency(self, tenant: str, key: str) -> str:
        """String: the job id an idempotency key of a tenant maps to."""
        return f"{self.prefix}:tenant:{_safe(tenant)}:idem:{_safe(key)}"
