"""Every refusal answers in the OpenAI error shape, with its status and the field named."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.services.conftest import TEST_LIMITS

OK_FIM = {"prompt": "def f():\n    return ", "suffix": "\n", "max_tokens": 4, "mode": "ar"}
DOC = "The licensee shall not disclose confidential information.\n"


def error_of(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    return err


@pytest.mark.parametrize(("route", "body", "param"), [
    ("/v1/completions", {**OK_FIM, "n": 2}, "n"),
    ("/v1/completions", {"suffix": "x"}, "prompt"),
    ("/v1/completions", {**OK_FIM, "prompt": ["a", "b"]}, "prompt"),
    ("/v1/completions", {**OK_FIM, "max_tokens": TEST_LIMITS.max_tokens + 1}, "max_tokens"),
    ("/v1/completions", {**OK_FIM, "max_tokens": 5000}, "max_tokens"),
    ("/v1/completions", {**OK_FIM, "steps": TEST_LIMITS.max_steps + 1}, "steps"),
    ("/v1/completions", {**OK_FIM, "prompt": "x" * (TEST_LIMITS.max_text_chars + 1)}, "prompt"),
    ("/v1/completions", {**OK_FIM, "temperature": "hot"}, "temperature"),
    ("/v1/completions", {**OK_FIM, "stop": ["ok", ""]}, "stop"),
    ("/v1/completions", {**OK_FIM, "mode": "beam"}, "mode"),
    ("/v1/completions", {**OK_FIM, "logit_bias": {}}, "logit_bias"),
    ("/v1/fim/completions", {**OK_FIM, "max_tokens": 0}, "max_tokens"),
    ("/v1/fim/completions", {**OK_FIM, "random_seed": "x"}, "random_seed"),
    ("/v1/revise", {"text": ""}, "text"),
    ("/v1/revise", {"text": "y" * (TEST_LIMITS.max_text_chars + 1)}, "text"),
    ("/v1/revise", {"text": DOC, "spans": [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]}, "spans"),
    ("/v1/revise", {"text": DOC, "spans": [[10, 999]]}, "spans"),
    ("/v1/revise", {"text": DOC, "spans": [[5, 2]]}, "spans"),
    ("/v1/revise", {"text": DOC, "spans": [[0, 4], [2, 6]]}, "spans"),
    ("/v1/revise", {"text": DOC, "spans": [[0, 4]], "rules": {"rules": []}}, "rules"),
    ("/v1/revise", {"text": DOC, "steps": TEST_LIMITS.max_steps + 1}, "steps"),
    ("/v1/repair", {"code": "x = (", "language": "cobol"}, "language"),
    ("/v1/repair", {"code": "x = (", "rounds": 99}, "rounds"),
])
def test_invalid_fields_are_422_naming_the_field(api_url: str, http: httpx.Client, route: str,
                                                 body: dict[str, Any], param: str) -> None:
    err = error_of(http.post(f"{api_url}{route}", json=body), 422)
    assert err["param"] == param and err["type"] == "invalid_request_error"


def test_a_bad_rule_set_names_the_rule(api_url: str, http: httpx.Client) -> None:
    rules = {"rules": [{"id": "r1", "type": "redact", "kind": "regex"}]}
    err = error_of(http.post(f"{api_url}/v1/revise", json={"text": DOC, "rules": rules}), 422)
    assert err["param"] == "rules" and "'r1'" in err["message"] and "pattern" in err["message"]


def test_non_utf8_and_non_json_bodies_are_400(api_url: str, http: httpx.Client) -> None:
    latin = '{"prompt": "café", "suffix": ""}'.encode("latin-1")
    err = error_of(http.post(f"{api_url}/v1/completions", content=latin,
                             headers={"content-type": "application/json"}), 400)
    assert err["code"] == "invalid_encoding" and "byte" in err["message"]
    err = error_of(http.post(f"{api_url}/v1/completions", content=b'{"prompt": ',
                             headers={"content-type": "application/json"}), 400)
    assert err["code"] == "invalid_json"


def test_an_empty_prompt_and_suffix_is_422_naming_prompt(api_url: str, http: httpx.Client) -> None:
    for route in ("/v1/completions", "/v1/fim/completions"):
        err = error_of(http.post(f"{api_url}{route}", json={**OK_FIM, "prompt": "", "suffix": ""}), 422)
        assert err["param"] == "prompt" and "no context" in err["message"] and "prefix" not in err["message"]


def test_body_over_the_limit_is_413_by_bytes_read(api_url: str, http: httpx.Client) -> None:
    big = b'{"prompt": "' + b"x" * (TEST_LIMITS.max_body_bytes * 2) + b'"}'

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count
        for i in range(0, len(big), 1024):
            yield big[i:i + 1024]

    err = error_of(http.post(f"{api_url}/v1/completions", content=chunks(),
                             headers={"content-type": "application/json"}), 413)
    assert err["code"] == "request_too_large"


def test_body_over_the_limit_is_413_by_content_length(api_url: str) -> None:
    port = int(api_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000000000\r\n\r\n")  # and not one byte of it
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            data = s.recv(4096)
            if not data:
                break
            reply += data
    assert reply.startswith(b"HTTP/1.1 413") and b"request_too_large" in reply


def test_unknown_routes_and_methods(api_url: str, http: httpx.Client) -> None:
    assert error_of(http.get(f"{api_url}/v1/nothing-here"), 404)["type"] == "not_found_error"
    assert error_of(http.post(f"{api_url}/nope", json={}), 404)["message"] == "no such route"
    error_of(http.get(f"{api_url}/v1/completions"), 405)
