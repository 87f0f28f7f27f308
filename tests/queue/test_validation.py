"""Submissions are checked line by line; every error names its line and field."""

from __future__ import annotations

import json

import pytest

from workflows.queue.bodies import BODY_MODELS, CompletionBody, ReviseBody
from workflows.queue.jobs import URLS
from workflows.queue.validation import SubmissionError, parse_submission


def line(cid: str, url: str = "/v1/repair", body: object = None, **extra: object) -> str:
    return json.dumps({"custom_id": cid, "method": "POST", "url": url,
                       "body": {"code": "x = 1"} if body is None else body, **extra})


def errors_of(data: str | bytes | list[object], **kw: int) -> list[str]:
    with pytest.raises(SubmissionError) as exc:
        parse_submission(data, **kw)
    return [str(e) for e in exc.value.errors]


def test_every_url_has_a_body_model() -> None:
    assert set(URLS) == set(BODY_MODELS)


def test_valid_lines_become_items_in_order_and_blank_lines_are_skipped() -> None:
    data = "\n".join([line("a"), "", line("b", "/v1/revise", {"text": "Hello.", "spans": [[0, 5]]}),
                      line("c", "/v1/completions", {"prompt": "def f(", "suffix": ")", "max_tokens": 4}),
                      line("d", "/v1/fim/completions", {"prompt": "a", "stop": "\n"}),
                      line("e", "/v1/compliance", {"text": "x", "rules": {"rules": []}})]) + "\n"
    items = parse_submission(data)
    assert [(i.index, i.custom_id, i.url) for i in items] == [
        (0, "a", "/v1/repair"), (1, "b", "/v1/revise"), (2, "c", "/v1/completions"),
        (3, "d", "/v1/fim/completions"), (4, "e", "/v1/compliance")]
    assert items[1].body == {"text": "Hello.", "spans": [[0, 5]]}


def test_errors_name_line_and_field() -> None:
    data = "\n".join([
        line("a"),
        "{not json",
        line("a"),
        line("c", "/v1/nope"),
        line("d", body={"code": "x", "steps": 0}),
        line("e", body={"code": "x", "colour": "red"}),
        line("f", method="GET"),
        json.dumps({"custom_id": "g", "url": "/v1/repair"}),
        line("h", "/v1/revise", {"spans": [[0, 1]]}),
    ])
    errs = errors_of(data)
    assert errs[0].startswith("line 2: not valid JSON")
    assert "line 3, custom_id: 'a' repeats line 1; custom_ids must be unique" in errs
    assert any(e.startswith("line 4, url: '/v1/nope' is not one of") for e in errs)
    assert "line 5, body.steps: Input should be greater than or equal to 1" in errs
    assert "line 6, body.colour: unknown field" in errs
    assert "line 7, method: 'GET': only POST is supported" in errs
    assert "line 8, body: required: a JSON object" in errs
    assert "line 9, body.text: Field required" in errs


def test_bad_rule_set_and_stream_flag_are_named() -> None:
    rules = {"rules": [{"id": "r1", "type": "banned_phrase", "phrases": []}]}
    errs = errors_of(line("a", "/v1/compliance", {"text": "x", "rules": rules}) + "\n"
                     + line("b", "/v1/completions", {"prompt": "a", "stream": True}))
    assert errs[0].startswith("line 1, body.rules:") and "phrases" in errs[0]
    assert errs[1] == "line 2, body.stream: Value error, streaming is not available in batch jobs"


def test_limits_and_empty_submissions() -> None:
    assert errors_of("\n\n") == ["submission: the submission has no items"]
    assert errors_of("".join(line(f"i{i}") + "\n" for i in range(4)), max_lines=3) == [
        "line 4: the submission has 4 items, over the limit of 3"]
    assert errors_of(line("a").encode() + b"\n\xff\xfe") == [f"line 2: not valid UTF-8 (byte {len(line('a')) + 1})"]


def test_a_json_list_is_checked_the_same_way() -> None:
    errs = errors_of([{"custom_id": "a", "url": "/v1/repair", "body": {"code": "x"}}, "oops"])
    assert errs == ["line 2: expected a JSON object, got str"]


def test_body_models_hand_back_the_pipelines_params() -> None:
    c = CompletionBody.model_validate({"prompt": "p", "suffix": "s", "stop": "\n", "mode": "diffusion"})
    assert c.params().stop == ["\n"] and c.params().mode == "diffusion"
    r = ReviseBody.model_validate({"text": "t", "steps": 4, "rules": {"rules": []}})
    rules, params = r.compliance()
    assert params.steps == 4 and rules.rules == []
    assert r.params().steps == 4
