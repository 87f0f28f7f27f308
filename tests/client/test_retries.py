"""Retries, backoff, Retry-After and error decoding, against httpx.MockTransport (no server)."""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
from collections.abc import Callable

import httpx
import pytest

import client.aio
import client.sync
from client import (
    APIConnectionError,
    AsyncRemask,
    BadRequestError,
    RateLimitError,
    Remask,
    ServiceUnavailableError,
)
from client._core import RetryPolicy, SSEParser, parse_retry_after

COMPLETION = {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "remask",
              "choices": [{"text": "a + b", "index": 0, "logprobs": None, "finish_reason": "stop"}],
              "remask": {"mode": "ar", "start": 3, "end": 3, "nfe": 0,
                         "tokens": [{"text": "a + b", "confidence": 0.5, "changed": False}]}}


def busy(status: int, retry_after: str | None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    code = "queue_full" if status == 429 else "queue_timeout"
    return httpx.Response(status, headers=headers, json={"error": {
        "message": "the engine is busy", "type": "rate_limit_error", "param": None, "code": code}})


class Script:
    """Answers requests from a list (a response, or an exception to raise); records what came."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the clients ask for, recorded instead of slept."""
    waited: list[float] = []

    async def asleep(s: float) -> None:
        waited.append(s)

    monkeypatch.setattr(client.sync, "_sleep", waited.append)
    monkeypatch.setattr(client.aio, "_sleep", asleep)
    return waited


def sync_client(script: Callable[[httpx.Request], httpx.Response], **kw: object) -> Remask:
    return Remask("http://remask.test", "k-1", transport=httpx.MockTransport(script), **kw)  # type: ignore[arg-type]


def test_503_with_retry_after_is_retried_twice_then_succeeds(sleeps: list[float]) -> None:
    script = Script(busy(503, "2"), busy(503, "3"), httpx.Response(200, json=COMPLETION))
    ins = sync_client(script, max_retries=2).infill("x = ", "\n", mode="ar")
    assert ins.text == "a + b" and ins.tokens[0].confidence == 0.5
    assert len(script.requests) == 3 and sleeps == [2.0, 3.0]  # the server's waits, not the client's
    assert all(r.headers["authorization"] == "Bearer k-1" for r in script.requests)
    assert all(json.loads(r.content)["prompt"] == "x = " for r in script.requests)  # the same body each time


def test_429_without_retry_after_backs_off_exponentially_with_jitter(sleeps: list[float]) -> None:
    script = Script(busy(429, None), busy(429, None), busy(429, None), httpx.Response(200, json=COMPLETION))
    sync_client(script, max_retries=3, backoff_s=0.5, max_backoff_s=8.0).infill("x")
    assert len(sleeps) == 3
    for n, s in enumerate(sleeps):  # between half and all of 0.5 * 2**n
        assert 0.25 * 2 ** n <= s <= 0.5 * 2 ** n


def test_retries_run_out_and_the_last_error_is_raised(sleeps: list[float]) -> None:
    script = Script(busy(429, "1"))
    with pytest.raises(RateLimitError) as exc:
        sync_client(script, max_retries=2).infill("x")
    assert len(script.requests) == 3 and sleeps == [1.0, 1.0]
    assert exc.value.status == 429 and exc.value.retry_after == 1.0 and exc.value.code == "queue_full"
    assert exc.value.message == "the engine is busy"


def test_no_retries_when_max_retries_is_zero(sleeps: list[float]) -> None:
    script = Script(busy(503, "5"))
    with pytest.raises(ServiceUnavailableError):
        sync_client(script, max_retries=0).infill("x")
    assert len(script.requests) == 1 and sleeps == []


def test_a_client_error_is_never_retried(sleeps: list[float]) -> None:
    script = Script(httpx.Response(400, json={"error": {"message": "empty context", "type": "invalid_request_error",
                                                        "param": None, "code": "invalid_input"}}))
    with pytest.raises(BadRequestError) as exc:
        sync_client(script, max_retries=5).infill("")
    assert len(script.requests) == 1 and sleeps == [] and exc.value.message == "empty context"


def test_connection_errors_are_retried_then_reported(sleeps: list[float]) -> None:
    ok = Script(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.Response(200, json=COMPLETION))
    assert sync_client(ok, max_retries=2).infill("x").text == "a + b" and len(sleeps) == 2
    down = Script(httpx.ConnectError("refused"))
    with pytest.raises(APIConnectionError):
        sync_client(down, max_retries=1).infill("x")
    assert len(down.requests) == 2


def test_a_retried_job_submission_keeps_its_idempotency_key(sleeps: list[float], tmp_path) -> None:
    job = {"id": "batch_1", "object": "batch", "status": "queued", "progress": 0.0, "created_at": 1,
           "request_counts": {"total": 1, "completed": 0, "failed": 0}}
    script = Script(httpx.ConnectError("refused"), httpx.Response(200, json=job))
    path = tmp_path / "in.jsonl"
    path.write_text('{"custom_id": "a", "url": "/v1/repair", "body": {"code": "x"}}\n')
    assert sync_client(script, max_retries=1).submit_job(path).id == "batch_1"
    keys = {r.headers["idempotency-key"] for r in script.requests}
    assert len(script.requests) == 2 and len(keys) == 1 and keys.pop().startswith("sdk-")
    assert script.requests[1].headers["content-type"] == "application/jsonl"
    assert script.requests[1].content == path.read_bytes()  # sent as it is: the server names its lines


def test_async_client_retries_too(sleeps: list[float]) -> None:
    script = Script(busy(503, "1"), httpx.ConnectError("refused"), httpx.Response(200, json=COMPLETION))

    async def go() -> str:
        async with AsyncRemask("http://remask.test", transport=httpx.MockTransport(script), max_retries=2) as rm:
            return (await rm.infill("x")).text

    assert asyncio.run(go()) == "a + b" and len(script.requests) == 3
    assert sleeps[0] == 1.0 and 0 < sleeps[1] <= 1.0


def test_an_error_event_inside_a_stream_raises_its_typed_error() -> None:
    body = ('data: {"choices": [{"text": "a", "index": 0, "finish_reason": null}], "remask": {"event": "token"}}\n\n'
            'data: {"error": {"message": "waited too long", "type": "service_unavailable_error", '
            '"param": null, "code": "unavailable"}}\n\ndata: [DONE]\n\n')
    script = Script(httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"}))
    stream = sync_client(script).stream_infill("x")
    got = []
    with pytest.raises(ServiceUnavailableError) as exc:
        for chunk in stream:
            got.append(chunk.text)
    assert got == ["a"] and exc.value.message == "waited too long" and exc.value.status == 503


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0 and parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30.0)
    assert parse_retry_after(date, now=2_000_000) == 0.0  # a date in the past: at once


def test_retry_policy_caps_and_honours() -> None:
    p = RetryPolicy(max_retries=10, backoff_s=1.0, max_backoff_s=4.0, rng=random.Random(0))
    assert all(2.0 <= p.delay(n) <= 4.0 for n in range(3, 10))  # capped at max_backoff_s
    assert p.delay(0, retry_after=7.0) == 7.0 and p.delay(0, retry_after=600.0) == 60.0
    assert p.after_response(10, busy(429, "1")) is None  # out of attempts
    assert p.after_response(0, httpx.Response(500)) is None  # only 429 and 503
    assert p.after_error(0, ValueError("not a transport error")) is None


def test_sse_parser_joins_data_lines_and_skips_comments() -> None:
    p = SSEParser()
    assert [p.feed(x) for x in [": keep-alive", "data: {\"a\":", "data: 1}", ""]] == [None, None, None, '{"a":\n1}']
    assert p.feed("event: x") is None and p.feed("data:[DONE]") is None and p.flush() == "[DONE]"
