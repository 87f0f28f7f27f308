"""/v1/revise (spans, doubtful spans, rule sets, streaming) and /v1/repair over real HTTP."""

from __future__ import annotations

import ast
import json
from typing import Any

import httpx

DOC = "The licensee shall not disclose confidential information to third parties.\n"
EMAIL_RULES = {"name": "pii", "version": "3", "rules": [
    {"id": "no-email", "type": "redact", "kind": "email", "replacement": "[EMAIL]"}]}


def apply_edits(text: str, edits: list[dict[str, Any]]) -> str:
    for e in sorted(edits, key=lambda e: e["start"], reverse=True):
        assert text[e["start"]:e["end"]] == e["before"]
        text = text[:e["start"]] + e["after"] + text[e["end"]:]
    return text


def frames(resp: httpx.Response) -> list[Any]:
    assert resp.status_code == 200 and resp.text.endswith("data: [DONE]\n\n")
    out = [f.removeprefix("data: ") for f in resp.text.split("\n\n")[:-1]]
    return [json.loads(f) for f in out[:-1]] + [out[-1]]


def test_revise_spans_answers_edits_that_rebuild_the_text(api_url: str, http: httpx.Client) -> None:
    body = {"text": DOC, "spans": [[4, 12], [30, 42]], "seed": 0, "steps": 4}
    r = http.post(f"{api_url}/v1/revise", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "revision" and out["remask"]["audit"]["pipeline"] == "revise"
    assert apply_edits(DOC, out["edits"]) == out["text"]
    assert all(e["reason"] == "user_span" and 0.0 <= e["confidence"] <= 1.0 for e in out["edits"])
    assert (out["diff"] != "") == (out["text"] != DOC)
    assert [m["offset"] for m in out["matches"]] == [e["start"] for e in out["edits"]]
    # the re-masked ranges cover the requested spans (widened to token edges)
    assert all(any(s <= a and b <= e for s, e in out["spans"]) for a, b in body["spans"])
    # outside the re-masked ranges nothing changed
    (a0, a1), (b0, b1) = out["spans"]
    assert out["text"].startswith(DOC[:a0]) and out["text"].endswith(DOC[b1:]) and DOC[a1:b0] in out["text"]


def test_revise_stream_sends_snapshots_then_the_same_result(api_url: str, http: httpx.Client) -> None:
    body = {"text": DOC, "spans": [[4, 12]], "seed": 1, "steps": 4}
    plain = http.post(f"{api_url}/v1/revise", json=body).json()
    events = frames(http.post(f"{api_url}/v1/revise", json={**body, "stream": True}))
    assert events[-1] == "[DONE]"
    snaps, final = events[:-2], events[-2]
    assert snaps and all(s["object"] == "revision.snapshot" for s in snaps)
    assert final["object"] == "revision" and final["text"] == plain["text"] == snaps[-1]["text"]
    assert final["edits"] == plain["edits"]


def test_revise_without_spans_finds_its_own(api_url: str, http: httpx.Client) -> None:
    r = http.post(f"{api_url}/v1/revise", json={"text": DOC, "max_fraction": 0.3, "remask_below": 1.0, "steps": 4,
                                                 "rewrite_prose": True, "spelling": False, "word_order": False,
                                                 "missing_words": False})
    out = r.json()
    assert r.status_code == 200 and out["spans"]  # a random model doubts everything below p=1
    assert apply_edits(DOC, out["edits"]) == out["text"]
    assert all(e["reason"] == "low_confidence" for e in out["edits"])


def test_prose_is_not_rewritten_free_form_by_default(api_url: str, http: httpx.Client) -> None:
    """Without rewrite_prose, found spans in prose are only proofread (fixes both models must favour)."""
    r = http.post(f"{api_url}/v1/revise", json={"text": DOC, "max_fraction": 0.3, "remask_below": 1.0, "steps": 4})
    assert r.status_code == 200, r.text
    assert all(e["reason"] != "low_confidence" for e in r.json()["edits"])
    bad = http.post(f"{api_url}/v1/revise", json={"text": DOC, "rewrite_prose": "maybe"})
    assert bad.status_code == 422 and "rewrite_prose" in bad.text


def test_revise_with_a_rule_set_redacts_and_names_the_rule(api_url: str, http: httpx.Client) -> None:
    text = "Write to jane.doe@example.com for a copy.\n"
    out = http.post(f"{api_url}/v1/revise", json={"text": text, "rules": EMAIL_RULES}).json()
    assert out["object"] == "compliance" and out["text"] == "Write to [EMAIL] for a copy.\n"
    assert [e["reason"] for e in out["edits"]] == ["no-email"] and out["unresolved"] == []
    assert out["remask"]["audit"]["parameters"]["rules"] == "pii"
    events = frames(http.post(f"{api_url}/v1/revise", json={"text": text, "rules": EMAIL_RULES, "stream": True}))
    assert len(events) == 2 and events[0]["text"] == out["text"]


def test_repair_answers_parsing_code_or_the_input(api_url: str, http: httpx.Client) -> None:
    code = "def f(x):\n    return (x + 1\n"
    r = http.post(f"{api_url}/v1/repair", json={"code": code, "rounds": 1, "steps": 4})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "repair" and out["issues_before"] and out["rounds"] == 1
    if out["parses"]:
        ast.parse(out["text"])
        assert out["issues_after"] == [] and apply_edits(code, out["edits"]) == out["text"]
    else:
        assert out["text"] == code and out["edits"] == [] and out["issues_after"]
    events = frames(http.post(f"{api_url}/v1/repair", json={"code": "x = [1, 2]\n", "stream": True}))
    assert events[0]["parses"] is True and events[0]["edits"] == [] and events[-1] == "[DONE]"
