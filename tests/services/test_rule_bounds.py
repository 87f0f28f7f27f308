"""A request's rules cannot stall the server: bad patterns are 422s, matching is bounded, /health answers."""

from __future__ import annotations

import functools
import threading
import time

import httpx
import pytest

import workflows.compliance
from tests.services.test_api_errors import error_of
from workflows.rules import find_hits

# (a+)+$ over n a's and a '!': 2^n steps on a backtracking engine (20 s at n = 27, doubling per 'a')
CATASTROPHIC = {"text": "a" * 40 + "!",
                "rules": {"rules": [{"id": "r", "type": "redact", "kind": "regex", "pattern": "(a+)+$"}]}}


def _regex(pattern: str) -> dict:
    return {"text": "some text", "rules": {"rules": [
        {"id": "ok", "type": "banned_phrase", "phrases": ["x"]},
        {"id": "bad", "type": "redact", "kind": "regex", "pattern": pattern}]}}


@pytest.mark.parametrize(("pattern", "needle"), [
    ("x*", "matches the empty string"),
    ("(|a)", "matches the empty string"),
    (r"(a)\1", "not a valid RE2 pattern"),
    ("(?<=a)b", "not a valid RE2 pattern"),
])
def test_a_refused_pattern_is_a_422_naming_the_rule(api_url: str, http: httpx.Client, pattern: str,
                                                    needle: str) -> None:
    err = error_of(http.post(f"{api_url}/v1/revise", json=_regex(pattern)), 422)
    assert err["param"] == "rules"
    assert "rule 'bad' (rules[1].pattern)" in err["message"] and needle in err["message"]


def test_too_many_hits_is_a_422_naming_rules(api_url: str, http: httpx.Client,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workflows.compliance, "find_hits", functools.partial(find_hits, max_hits=10))
    body = {"text": "a " * 20, "rules": {"rules": [{"id": "b", "type": "banned_phrase", "phrases": ["a"]}]}}
    err = error_of(http.post(f"{api_url}/v1/revise", json=body), 422)
    assert err["param"] == "rules" and err["code"] == "too_many_hits" and "more than 10 times" in err["message"]


@pytest.mark.timeout(60)
def test_a_catastrophic_regex_neither_hangs_nor_stalls_health(api_url: str) -> None:
    latencies: list[float] = []
    errors: list[Exception] = []
    done = threading.Event()

    def poll() -> None:
        # its own connection, so a stalled event loop shows as a slow /health, not a queued one
        with httpx.Client(timeout=10) as client:
            after = 0
            while after < 3:  # three more polls once the request is answered
                after += done.is_set()
                t0 = time.perf_counter()
                try:
                    assert client.get(f"{api_url}/health").status_code == 200
                except (httpx.HTTPError, AssertionError) as exc:  # a timeout or a wrong status: reported below
                    errors.append(exc)
                    return
                latencies.append(time.perf_counter() - t0)
                time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        t0 = time.perf_counter()
        with httpx.Client(timeout=20) as client:
            resp = client.post(f"{api_url}/v1/revise", json=CATASTROPHIC)
        elapsed = time.perf_counter() - t0
    finally:
        done.set()
        poller.join(30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["text"] == CATASTROPHIC["text"]  # the '!' keeps $ from matching: nothing redacted
    assert elapsed < 10, f"the request took {elapsed:.1f} s"
    assert not errors, errors
    assert len(latencies) >= 3 and max(latencies) < 2.0, latencies
