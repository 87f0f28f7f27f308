"""Key names: the job id format, and no id (whatever text a user sends) addressing another key."""

from __future__ import annotations

import pytest
import redis

from tests.queue.stubs import jsonl
from workflows.queue import JobNotFound, JobQueue, Keys
from workflows.queue.keys import JOB_ID_PATTERN, is_job_id, new_job_id

VALID = "batch_0123456789abcdef0123456789abcdef"
HOSTILE = [
    f"{VALID}:items", f"{VALID}:results", f"{VALID}:errors", "x:y", "*", "batch_*", "", " ", "a b", "..", "\x00",
    "\u00e9", "\ud800", "!" + VALID.encode().hex(), VALID.upper(), VALID[:-1], VALID + "0", VALID + "\n",
    " " + VALID, "batch_" + "a" * 5000, "tenant:616263:jobs",
]


def test_new_ids_have_the_format_and_do_not_repeat() -> None:
    ids = {new_job_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(JOB_ID_PATTERN.fullmatch(i) and is_job_id(i) for i in ids)


@pytest.mark.parametrize("text", [*HOSTILE, None, 7, b"batch_0123456789abcdef0123456789abcdef"])
def test_anything_else_is_not_an_id(text: object) -> None:
    assert not is_job_id(text)


def test_a_valid_id_keeps_its_key_names() -> None:
    k = Keys("p")
    assert (k.job(VALID), k.items(VALID), k.results(VALID), k.errors(VALID)) == (
        f"p:job:{VALID}", f"p:job:{VALID}:items", f"p:job:{VALID}:results", f"p:job:{VALID}:errors")


def test_no_text_addresses_another_key() -> None:
    k = Keys("p")
    genuine = {name for i in (VALID, new_job_id()) for name in k.job_keys(i)}
    genuine |= {k.stream, k.group, k.delayed, k.dead, k.states, k.tenant_jobs("abc"), k.idempotency("abc", "x")}
    built = [name for text in HOSTILE for name in k.job_keys(text)]
    assert len(set(built)) == len(built)  # different texts, different keys
    assert not set(built) & genuine
    for text in HOSTILE:
        segment = k.job(text).removeprefix("p:job:")
        assert segment.startswith("!") and ":" not in segment and not is_job_id(segment)


def test_a_suffixed_or_malformed_id_is_an_unknown_job(queue: JobQueue, r: redis.Redis) -> None:
    theirs = queue.submit(jsonl(2), tenant="globex")
    assert r.type(queue.keys.items(theirs.id)) == b"list"  # what `<id>:items` used to read as a job hash
    for text in (f"{theirs.id}:items", f"{theirs.id}:results", f"{theirs.id}:errors", "*", "\ud800"):
        for tenant in ("acme", "globex"):
            for call in (queue.get, queue.cancel, queue.results, queue.errors):
                with pytest.raises(JobNotFound):
                    call(text, tenant)
    assert queue.get(theirs.id, "globex").request_counts.total == 2  # the real job is untouched
