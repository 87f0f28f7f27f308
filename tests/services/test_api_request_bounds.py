"""Inputs that used to crash or slip through: lone surrogates, non-finite numbers, huge seeds,
tiny temperatures. Each is a 422 naming its field, or (tiny temperatures) a greedy answer."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from workflows.options import SEED_MAX

FIM = {"prompt": "def f():\n    return ", "suffix": "\n", "max_tokens": 4, "mode": "ar"}
TEXT = "The licensee shall not disclose confidential information.\n"
RULES = {"rules": [{"id": "say-customer", "type": "banned_phrase", "phrases": ["client"], "preferred": "customer"}]}
BAD = "ok \ud800 ok"  # a lone surrogate: valid JSON (an escape), not valid Unicode text


def post(http: httpx.Client, url: str, body: dict[str, Any]) -> httpx.Response:
    """POST ``body`` as ASCII JSON: surrogates and Infinity travel as JSON escapes and literals."""
    return http.post(url, content=json.dumps(body), headers={"content-type": "application/json"})


def refused(resp: httpx.Response, param: str, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error", err
    assert code is None or err["code"] == code, err
    return err


@pytest.mark.parametrize(("route", "body", "param"), [
    ("/v1/completions", {**FIM, "prompt": BAD}, "prompt"),
    ("/v1/completions", {**FIM, "suffix": BAD}, "suffix"),
    ("/v1/completions", {**FIM, "prompt": [BAD]}, "prompt"),
    ("/v1/completions", {**FIM, "stop": [BAD]}, "stop"),
    ("/v1/completions", {**FIM, "stop": BAD}, "stop"),
    ("/v1/completions", {**FIM, "model": BAD}, "model"),
    ("/v1/completions", {**FIM, "user": BAD}, "user"),
    ("/v1/fim/completions", {**FIM, "prompt": BAD}, "prompt"),
    ("/v1/fim/completions", {**FIM, "suffix": BAD}, "suffix"),
    ("/v1/fim/completions", {**FIM, "stop": ["x", BAD]}, "stop"),
    ("/v1/revise", {"text": BAD}, "text"),
    ("/v1/revise", {"text": TEXT, "language": BAD}, "language"),
    ("/v1/revise", {"text": TEXT, "rules": {"rules": [{**RULES["rules"][0], "phrases": [BAD]}]}}, "rules"),
    ("/v1/revise", {"text": TEXT, "rules": {"rules": [{**RULES["rules"][0], "preferred": BAD}]}}, "rules"),
    ("/v1/revise", {"text": TEXT, "rules": {"name": BAD, "rules": []}}, "rules"),
    ("/v1/repair", {"code": BAD}, "code"),
    ("/v1/repair", {"code": "x = (", "language": BAD}, "language"),
])
def test_a_lone_surrogate_in_any_string_is_422_naming_the_field(api_url: str, http: httpx.Client, route: str,
                                                                body: dict[str, Any], param: str) -> None:
    err = refused(post(http, f"{api_url}{route}", body), param, "invalid_unicode")
    assert "lone surrogate" in err["message"] and "\ud800" not in err["message"]


def test_a_field_name_that_is_not_unicode_is_422(api_url: str, http: httpx.Client) -> None:
    for body in ({**FIM, "x\ud800": 1}, {"text": TEXT, "rules": {"rules": [], "\udc00": 1}}):
        resp = post(http, f"{api_url}/v1/completions" if "prompt" in body else f"{api_url}/v1/revise", body)
        assert resp.status_code == 422 and "\ud800" not in resp.text and resp.json()["error"]["message"]


@pytest.mark.parametrize(("route", "field", "literal"), [
    ("/v1/completions", "temperature", "Infinity"),
    ("/v1/completions", "temperature", "NaN"),
    ("/v1/completions", "top_p", "NaN"),
    ("/v1/completions", "temperature", "1e400"),  # parses as inf
    ("/v1/fim/completions", "top_p", "-Infinity"),
    ("/v1/revise", "remask_below", "NaN"),
    ("/v1/revise", "max_fraction", "Infinity"),
    ("/v1/revise", "threshold", "NaN"),
])
def test_non_finite_numbers_are_422_naming_the_field(api_url: str, http: httpx.Client, route: str, field: str,
                                                     literal: str) -> None:
    base = json.dumps({"text": TEXT} if route == "/v1/revise" else FIM)
    body = base[:-1] + f', "{field}": {literal}}}'
    resp = http.post(f"{api_url}{route}", content=body, headers={"content-type": "application/json"})
    refused(resp, field)


def test_a_non_finite_number_inside_a_rule_set_is_refused(api_url: str, http: httpx.Client) -> None:
    body = '{"text": "x", "rules": {"version": NaN, "rules": []}}'
    resp = http.post(f"{api_url}/v1/revise", content=body, headers={"content-type": "application/json"})
    err = refused(resp, "rules", "finite_number")
    assert "version" in err["message"]


@pytest.mark.parametrize(("route", "field"), [
    ("/v1/completions", "seed"), ("/v1/fim/completions", "random_seed"), ("/v1/revise", "seed"),
    ("/v1/repair", "seed"),
])
@pytest.mark.parametrize("seed", [2**64, 2**63, SEED_MAX + 1, -1])
def test_seeds_outside_64_bits_are_422_naming_the_field(api_url: str, http: httpx.Client, route: str, field: str,
                                                        seed: int) -> None:
    base: dict[str, Any] = {"/v1/revise": {"text": TEXT}, "/v1/repair": {"code": "x = ("}}.get(route, FIM)
    refused(post(http, f"{api_url}{route}", {**base, field: seed}), field)


def test_the_largest_seed_is_accepted(api_url: str, http: httpx.Client) -> None:
    resp = post(http, f"{api_url}/v1/completions", {**FIM, "seed": SEED_MAX, "temperature": 0.7})
    assert resp.status_code == 200, resp.text


def test_n_other_than_one_is_refused_by_its_bounds(api_url: str, http: httpx.Client) -> None:
    for n in (0, 2):
        refused(post(http, f"{api_url}/v1/completions", {**FIM, "n": n}), "n")
    assert post(http, f"{api_url}/v1/completions", {**FIM, "n": 1}).status_code == 200


@pytest.mark.parametrize("mode", ["ar", "hybrid"])
@pytest.mark.parametrize("temperature", [1e-40, 5e-324, 1e-5])
def test_a_tiny_temperature_answers_the_greedy_text(api_url: str, http: httpx.Client, mode: str,
                                                    temperature: float) -> None:
    body = {**FIM, "mode": mode, "seed": 3, "max_tokens": 6}
    greedy = post(http, f"{api_url}/v1/completions", {**body, "temperature": 0.0})
    tiny = post(http, f"{api_url}/v1/completions", {**body, "temperature": temperature})
    assert greedy.status_code == tiny.status_code == 200, tiny.text
    assert tiny.json()["choices"][0]["text"] == greedy.json()["choices"][0]["text"]
    streamed = post(http, f"{api_url}/v1/completions", {**body, "temperature": temperature, "stream": True})
    assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
    chunks = [json.loads(f[len("data: "):]) for f in streamed.text.split("\n\n")[:-2]]
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == greedy.json()["choices"][0]["text"]
    fim_body = {**FIM, "mode": mode, "random_seed": 3, "max_tokens": 6, "temperature": temperature}
    fim = post(http, f"{api_url}/v1/fim/completions", fim_body)
    assert fim.status_code == 200
    assert fim.json()["choices"][0]["message"]["content"] == tiny.json()["choices"][0]["text"]
