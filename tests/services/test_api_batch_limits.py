"""A batch line is bounded exactly like the same request sent directly: same models, same limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from services.api import LocalEngine, Settings, build_app
from tests.services.conftest import TEST_LIMITS, LiveServer
from workflows.limits import Limits
from workflows.options import SEED_MAX
from workflows.queue import EmbeddedValkey, JobQueue, Keys
from workflows.queue.validation import SubmissionError, parse_submission

FIM = {"prompt": "def f():\n    return ", "suffix": "\n", "max_tokens": 4, "mode": "ar"}
TEXT = "The licensee shall not disclose confidential information.\n"


def line(url: str, body: dict[str, Any] | str, cid: str = "a") -> str:
    """One JSONL line; a str body is spliced in as raw JSON (for Infinity and NaN literals)."""
    raw = body if isinstance(body, str) else json.dumps(body)
    return f'{{"custom_id": {json.dumps(cid)}, "method": "POST", "url": "{url}", "body": {raw}}}\n'


def line_errors(data: str, limits: Limits | None = None) -> list[tuple[str, str]]:
    """(field, message) of every problem of a submission; [] when it validates."""
    try:
        parse_submission(data, limits=limits)
    except SubmissionError as exc:
        return [(e.field, e.message) for e in exc.errors]
    return []


@pytest.mark.parametrize(("url", "body", "field"), [
    ("/v1/completions", '{"prompt": "a", "temperature": Infinity}', "body.temperature"),
    ("/v1/completions", '{"prompt": "a", "temperature": NaN}', "body.temperature"),
    ("/v1/completions", '{"prompt": "a", "temperature": 2.5}', "body.temperature"),
    ("/v1/fim/completions", '{"prompt": "a", "top_p": NaN}', "body.top_p"),
    ("/v1/completions", {"prompt": "a", "max_tokens": 1000}, "body.max_tokens"),  # default limit 256
    ("/v1/fim/completions", {"prompt": "a", "max_tokens": 1024}, "body.max_tokens"),
    ("/v1/completions", {"prompt": "a", "steps": 1000}, "body.steps"),  # default limit 128
    ("/v1/revise", {"text": TEXT, "steps": 1000}, "body.steps"),
    ("/v1/compliance", {"text": TEXT, "rules": {"rules": []}, "steps": 200}, "body.steps"),
    ("/v1/revise", {"text": "x" * 200_001}, "body.text"),  # default limit 200,000 characters
    ("/v1/compliance", {"text": "x" * 200_001, "rules": {"rules": []}}, "body.text"),
    ("/v1/repair", {"code": "x" * 200_001}, "body.code"),
    ("/v1/completions", {"prompt": "x" * 150_000, "suffix": "y" * 50_001}, "body.prompt"),
    ("/v1/revise", {"text": TEXT, "spans": [[i, i + 1] for i in range(0, 130, 2)]}, "body.spans"),  # 65 > 64
    ("/v1/completions", {"prompt": "", "suffix": ""}, "body.prompt"),
    ("/v1/completions", {"prompt": "a", "seed": 2**64}, "body.seed"),
    ("/v1/completions", {"prompt": "a", "n": 2}, "body.n"),
    ("/v1/completions", {"prompt": "a \ud800"}, "body.prompt"),
    ("/v1/compliance", {"text": TEXT, "rules": {"rules": [{"id": "r", "type": "banned_phrase",
                                                           "phrases": ["\udfff"]}]}}, "body.rules"),
    ("/v1/completions", {"prompt": "a", "stream": True}, "body.stream"),
    ("/v1/completions", {"prompt": "a", "echo": True}, "body.echo"),
    ("/v1/revise", {"text": TEXT, "max_chars": 10**9}, "body.max_chars"),  # no limit a line could raise itself
    ("/v1/completions", {"prompt": "a", "context_tokens": 1 << 20}, "body.context_tokens"),
])
def test_lines_over_the_http_bounds_are_refused_naming_the_field(url: str, body: dict[str, Any] | str,
                                                                 field: str) -> None:
    errors = line_errors(line(url, body))
    assert [f for f, _ in errors] == [field], errors
    assert "\ud800" not in errors[0][1] and "\udfff" not in errors[0][1]


def test_lines_within_the_bounds_validate() -> None:
    data = "".join([
        line("/v1/completions", {"prompt": "a", "max_tokens": 256, "steps": 128, "temperature": 2.0, "seed": SEED_MAX}),
        line("/v1/fim/completions", {"prompt": "a", "suffix": "b", "random_seed": 0}, "b"),
        line("/v1/revise", {"text": "x" * 200_000, "spans": [[0, 1]], "threshold": None}, "c"),
        line("/v1/repair", {"code": "x = (", "samples": 0, "steps": 2}, "d"),
    ])
    assert line_errors(data) == []


def test_the_operator_limits_bound_lines_like_requests() -> None:
    tight = Limits(max_text_chars=100, max_spans=2, max_tokens=8, max_steps=4)
    data = "".join([
        line("/v1/completions", {"prompt": "a", "max_tokens": 9}, "tokens"),
        line("/v1/fim/completions", {"prompt": "a"}, "fim-default"),  # a null max_tokens means 16, as in infill
        line("/v1/revise", {"text": "x" * 101, "steps": 4}, "chars"),
        line("/v1/revise", {"text": TEXT, "spans": [[0, 1], [2, 3], [4, 5]], "steps": 4}, "spans"),
        line("/v1/repair", {"code": "x = (", "steps": 5}, "steps"),
        line("/v1/completions", {"prompt": "a", "max_tokens": 8, "steps": 4}, "fits"),
    ])
    assert [(f, m.split(",")[0]) for f, m in line_errors(data, tight)] == [
        ("body.max_tokens", "9 is over the limit of 8"), ("body.max_tokens", "16 is over the limit of 8"),
        ("body.text", "101 characters"), ("body.spans", "3 spans"), ("body.steps", "5 is over the limit of 4")]


def test_a_custom_id_that_is_not_unicode_is_refused() -> None:
    assert line_errors(line("/v1/repair", {"code": "x"}, cid="a\ud800")) == [
        ("custom_id", "holds a lone surrogate: send valid Unicode text")]


# --- the same over HTTP: the server's configured limits apply to /v1/jobs -------------------

@pytest.fixture(scope="module")
def jobs_url(tmp_path_factory: pytest.TempPathFactory, api_models: Any) -> Iterator[str]:
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"))
    server.start()
    client = redis.Redis.from_url(server.url)
    engine = LocalEngine(*api_models)
    settings = Settings(api_keys=[], limits=TEST_LIMITS.model_copy(update={"max_job_bytes": 1 << 20}))
    try:
        with LiveServer(build_app(engine, settings, JobQueue(client, Keys("limits")))) as live:
            yield live.url
    finally:
        engine.close()
        client.close()
        server.stop()


@pytest.mark.parametrize(("body", "param"), [
    ({**FIM, "max_tokens": TEST_LIMITS.max_tokens + 1}, "line 1.body.max_tokens"),
    ({**FIM, "steps": TEST_LIMITS.max_steps + 1}, "line 1.body.steps"),
    ({**FIM, "prompt": "x" * TEST_LIMITS.max_text_chars}, "line 1.body.prompt"),  # with the suffix: one over
])
def test_http_submissions_follow_the_configured_limits(jobs_url: str, http: httpx.Client, body: dict[str, Any],
                                                       param: str) -> None:
    direct = http.post(f"{jobs_url}/v1/completions", json=body)
    assert direct.status_code == 422 and f"line 1.body.{direct.json()['error']['param']}" == param
    for resp in (http.post(f"{jobs_url}/v1/jobs", content=line("/v1/completions", body),
                           headers={"content-type": "application/jsonl"}),
                 http.post(f"{jobs_url}/v1/jobs", json={"requests": [json.loads(line("/v1/completions", body))]})):
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["param"] == param


def test_http_submission_of_infinity_is_refused(jobs_url: str, http: httpx.Client) -> None:
    resp = http.post(f"{jobs_url}/v1/jobs", content=line("/v1/completions", '{"prompt": "a", "temperature": Infinity}'),
                     headers={"content-type": "application/jsonl"})
    assert resp.status_code == 422 and resp.json()["error"]["param"] == "line 1.body.temperature"
    ok = http.post(f"{jobs_url}/v1/jobs", content=line("/v1/completions", FIM),
                   headers={"content-type": "application/jsonl"})
    assert ok.status_code == 200 and ok.json()["status"] == "queued"


@pytest.mark.parametrize(("options", "param"), [
    ({"metadata": {"k": "\ud800"}}, "metadata"),
    ({"metadata": {"\ud800": "v"}}, "metadata"),
    ({"idempotency_key": "\udfff"}, "idempotency_key"),
    ({"completion_window_s": 1e400}, "completion_window_s"),  # parses as inf
])
def test_a_json_submission_is_checked_like_every_request(jobs_url: str, http: httpx.Client, options: dict[str, Any],
                                                          param: str) -> None:
    body = {"requests": [json.loads(line("/v1/completions", FIM))], **options}
    resp = http.post(f"{jobs_url}/v1/jobs", content=json.dumps(body), headers={"content-type": "application/json"})
    assert resp.status_code == 422 and resp.json()["error"]["param"] == param, resp.text
    lines = {"requests": [json.loads(line("/v1/completions", {**FIM, "prompt": "\ud800"}))]}
    resp = http.post(f"{jobs_url}/v1/jobs", content=json.dumps(lines), headers={"content-type": "application/json"})
    assert resp.status_code == 422 and resp.json()["error"]["param"] == "line 1.body.prompt"  # the line is named
