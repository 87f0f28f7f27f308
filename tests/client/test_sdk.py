"""Every SDK call end to end against the real app (tiny random models), sync and async."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from client import (
    APIConnectionError,
    AsyncRemask,
    AuthenticationError,
    NotFoundError,
    PayloadTooLargeError,
    Remask,
    Repair,
    Revision,
    ValidationError,
)
from client.types import Edit
from services.api.schemas import FIM_STEPS
from tests.client.conftest import API_KEY, Live

PREFIX = "def add(a, b):\n    return "
SUFFIX = "\n\nprint(add(1, 2))\n"
TEXT = "The licensee shall not disclose confidential information to third parties."


@pytest.fixture
def rm(live: Live) -> Remask:
    with Remask(live.url, API_KEY, max_retries=0, timeout=30) as client:
        yield client


def apply_edits(text: str, edits: list[Edit]) -> str:
    """The input with the edits applied, last first (offsets are into the input)."""
    for e in sorted(edits, key=lambda e: e.start, reverse=True):
        assert text[e.start:e.end] == e.before
        text = text[:e.start] + e.after + text[e.end:]
    return text


def test_infill_matches_the_raw_answer_and_carries_confidences(rm: Remask, live: Live) -> None:
    ins = rm.infill(PREFIX, SUFFIX, max_tokens=6, mode="ar", candidates=False)
    raw = httpx.post(f"{live.url}/v1/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                     json={"prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 6, "mode": "ar",
                           "candidates": False}).json()
    assert ins.text == raw["choices"][0]["text"] and ins.text
    assert ins.mode == "ar" and ins.start == ins.end == len(PREFIX)
    assert [t.text for t in ins.tokens] == [t["text"] for t in raw["remask"]["tokens"]]
    assert all(0.0 <= t.confidence <= 1.0 for t in ins.tokens) and ins.min_confidence is not None
    assert ins.usage is not None and ins.usage.completion_tokens == len(ins.tokens) <= 6
    assert ins.finish_reason in ("stop", "length") and ins.audit is not None


def test_infill_without_steps_takes_the_server_default(rm: Remask, live: Live) -> None:
    ins = rm.infill(PREFIX, SUFFIX, max_tokens=6, mode="diffusion")
    pinned = rm.infill(PREFIX, SUFFIX, max_tokens=6, mode="diffusion", steps=FIM_STEPS)
    more = rm.infill(PREFIX, SUFFIX, max_tokens=6, mode="diffusion", steps=4 * FIM_STEPS)
    assert (ins.text, ins.nfe) == (pinned.text, pinned.nfe)
    assert ins.nfe is not None and more.nfe is not None and ins.nfe < more.nfe


@pytest.mark.parametrize("mode", ["ar", "hybrid", "diffusion"])
def test_stream_pieces_add_up_to_the_final_text(rm: Remask, mode: str) -> None:
    whole = rm.infill(PREFIX, SUFFIX, max_tokens=6, mode=mode, steps=4, candidates=False)
    with rm.stream_infill(PREFIX, SUFFIX, max_tokens=6, mode=mode, steps=4, candidates=False) as stream:
        chunks = list(stream)
    assert "".join(c.text for c in chunks) == whole.text
    assert chunks[-1].event == "done" and chunks[-1].result is stream.result
    assert stream.result is not None and stream.result.text == whole.text and stream.result.mode == mode
    if mode == "ar":  # token deltas, each with its confidence
        assert all(c.confidence is not None for c in chunks[:-1]) and len(chunks) > 1
    else:
        assert all(c.text == "" for c in chunks[:-1])  # snapshots travel beside the text
        assert all(c.snapshot is not None for c in chunks if c.event == "snapshot")


def test_revise_a_span_returns_edits_that_rebuild_the_text(rm: Remask) -> None:
    span = (TEXT.index("confidential"), TEXT.index(" information"))
    rev = rm.revise(TEXT, spans=[span], steps=4)
    assert isinstance(rev, Revision) and rev.kind == "revision" and rev.spans is not None
    assert any(s <= span[0] and span[1] <= e for s, e in rev.spans)  # re-masked: the span, aligned to tokens
    assert rev.edits and apply_edits(TEXT, rev.edits) == rev.text
    assert all(e.reason == "user_span" and e.start < span[1] and e.end > span[0] for e in rev.edits)  # word-aligned
    assert (rev.diff != "") == (rev.text != TEXT) and rev.audit is not None


def test_stream_revise_ends_with_the_same_result(rm: Remask) -> None:
    span = (4, 12)
    whole = rm.revise(TEXT, spans=[span], steps=4)
    events = list(rm.stream_revise(TEXT, spans=[span], steps=4))
    assert events[-1].result is not None and events[-1].result.text == whole.text
    assert [e.edits for e in [events[-1].result]] == [whole.edits]
    assert all(e.snapshot is not None and len(e.snapshot) > 0 for e in events[:-1])


def test_revise_with_a_rule_set_from_a_yaml_file(rm: Remask, tmp_path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("name: t\nversion: '1'\nrules:\n"
                     "  - {id: no-third, type: banned_phrase, phrases: [third parties], preferred: others}\n"
                     "  - {id: pii-email, type: redact, kind: email, replacement: '[EMAIL]'}\n")
    text = TEXT + " Write to legal@example.com."
    rev = rm.revise(text, rules=rules)
    assert rev.kind == "compliance" and rev.unresolved == [] and rev.needs_review == []
    assert "third parties" not in rev.text and "[EMAIL]" in rev.text and "legal@example.com" not in rev.text
    assert {"no-third", "pii-email"} <= {e.reason for e in rev.edits} and apply_edits(text, rev.edits) == rev.text


def test_repair_reports_issues_and_edits(rm: Remask) -> None:
    code = "def f(x:\n    return x\n"
    rep = rm.repair(code, rounds=1, steps=2)
    assert isinstance(rep, Repair) and rep.kind == "repair"
    assert rep.issues_before and rep.rounds >= 1
    assert rep.parses == (rep.issues_after == [])
    assert apply_edits(code, rep.edits) == rep.text


def test_errors_carry_the_servers_message_and_field(rm: Remask, live: Live) -> None:
    with pytest.raises(ValidationError) as exc:
        rm.infill(PREFIX, max_tokens=33)  # the test server's limit is 32
    assert exc.value.status == 422 and exc.value.field == "max_tokens" and "over the limit of 32" in exc.value.message
    with pytest.raises(ValidationError) as exc:
        rm.infill(PREFIX, stop=[""])
    assert exc.value.param == "stop" and "must not be empty" in exc.value.message
    with pytest.raises(ValidationError) as exc:
        rm.infill(PREFIX, accept_confidence=1.5)  # the SDK sends the search's options as they are
    assert exc.value.status == 422 and exc.value.field == "accept_confidence"
    with pytest.raises(ValidationError) as exc:
        rm.revise(TEXT, spans=[(0, 10_000)])
    assert exc.value.param == "spans" and exc.value.code == "invalid_span"
    with pytest.raises(PayloadTooLargeError) as exc:
        rm.revise("x" * 5000)
    assert exc.value.status == 413 and "over the limit of 4096 bytes" in exc.value.message
    with pytest.raises(NotFoundError) as exc:
        rm.get_job("batch_nope")
    assert exc.value.code == "job_not_found" and exc.value.param == "job_id"


def test_api_key_is_sent_and_checked(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    with Remask(live.url, "wrong", max_retries=0) as bad, pytest.raises(AuthenticationError) as exc:
        bad.infill(PREFIX)
    assert exc.value.status == 401 and exc.value.message == "the API key is not valid"
    monkeypatch.delenv("REMASK_API_KEY", raising=False)
    with Remask(live.url, max_retries=0) as none, pytest.raises(AuthenticationError) as exc:
        none.infill(PREFIX)
    assert exc.value.code == "missing_api_key"
    monkeypatch.setenv("REMASK_URL", live.url)
    monkeypatch.setenv("REMASK_API_KEY", API_KEY)
    with Remask(max_retries=0) as env:  # URL and key from the environment
        assert env.config.base_url == live.url and env.infill(PREFIX, max_tokens=2, mode="ar").text is not None


def test_connection_refused_is_an_api_connection_error() -> None:
    with Remask("http://127.0.0.1:9", max_retries=0, timeout=2) as rm, pytest.raises(APIConnectionError):
        rm.infill(PREFIX)


def test_async_client_end_to_end(live: Live) -> None:
    async def go() -> tuple[str, str, str, str]:
        async with AsyncRemask(live.url, API_KEY, max_retries=0) as arm:
            ins = await arm.infill(PREFIX, SUFFIX, max_tokens=5, mode="ar")
            stream = await arm.stream_infill(PREFIX, SUFFIX, max_tokens=5, mode="ar")
            pieces = "".join([c.text async for c in stream])
            rev = await arm.revise(TEXT, spans=[(4, 12)], steps=4)
            events = [e async for e in await arm.stream_revise(TEXT, spans=[(4, 12)], steps=4)]
            assert events[-1].result is not None
            with pytest.raises(ValidationError):
                await arm.infill(PREFIX, max_tokens=33)
            return ins.text, pieces, rev.text, events[-1].result.text

    ins, pieces, rev, streamed_rev = asyncio.run(go())
    with Remask(live.url, API_KEY) as rm:
        assert ins == pieces == rm.infill(PREFIX, SUFFIX, max_tokens=5, mode="ar").text
        assert rev == streamed_rev == rm.revise(TEXT, spans=[(4, 12)], steps=4).text
