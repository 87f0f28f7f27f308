"""/v1/completions through the official openai client, /v1/fim/completions through httpx."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openai import OpenAI

PREFIX = "def add(a, b):\n    return "
SUFFIX = "\n\nprint(add(1, 2))\n"


@pytest.fixture(scope="module")
def client(api_url: str) -> OpenAI:
    return OpenAI(base_url=f"{api_url}/v1", api_key="unused", max_retries=0)


def sse_events(resp: httpx.Response) -> list[Any]:
    """Parse an SSE body strictly: 'data: ' lines each followed by a blank line, [DONE] last."""
    body = resp.text
    assert body.endswith("data: [DONE]\n\n")
    frames = body.split("\n\n")[:-1]
    assert all(f.startswith("data: ") and "\n" not in f for f in frames)
    return [f[len("data: "):] if f == "data: [DONE]" else json.loads(f[len("data: "):]) for f in frames]


@pytest.mark.parametrize("mode", ["ar", "diffusion", "hybrid"])
def test_openai_client_completion_in_every_mode(client: OpenAI, mode: str) -> None:
    resp = client.completions.create(model="remask", prompt=PREFIX, suffix=SUFFIX, max_tokens=8, seed=0,
                                     extra_body={"mode": mode, "steps": 4})
    assert resp.object == "text_completion" and resp.model == "remask" and resp.id.startswith("cmpl-")
    choice = resp.choices[0]
    assert choice.index == 0 and choice.finish_reason in ("stop", "length")
    ext = resp.model_extra["remask"]
    assert ext["mode"] == mode and ext["start"] == ext["end"] == len(PREFIX)
    assert "".join(t["text"] for t in ext["tokens"]) == choice.text or mode != "ar"
    assert all(0.0 <= t["confidence"] <= 1.0 for t in ext["tokens"])
    assert ext["changed"] == [i for i, t in enumerate(ext["tokens"]) if t["changed"]]
    assert ext["audit"]["pipeline"] == "infill" and ext["audit"]["seed"] == 0
    assert resp.usage is not None and resp.usage.completion_tokens == len(ext["tokens"])
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens > 0
    if mode == "ar":
        assert not ext["changed"] and ext["nfe"] == 0 and ext["draft"] is not None
    # the candidate search ran (the default): the answer says how sure it is and whether syntax was checked
    assert 0.0 <= ext["confidence"] <= 1.0 and ext["syntax_check"] in ("checked", "skipped")


def test_seeded_completions_repeat(client: OpenAI) -> None:
    kw: dict[str, Any] = {"model": "m", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 6, "seed": 7,
                          "temperature": 0.8, "extra_body": {"mode": "ar"}}
    assert client.completions.create(**kw).choices[0].text == client.completions.create(**kw).choices[0].text


def test_openai_client_stream_adds_up_to_the_plain_answer(client: OpenAI) -> None:
    kw: dict[str, Any] = {"model": "remask", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 8, "seed": 1,
                          "extra_body": {"mode": "ar"}}
    plain = client.completions.create(**kw)
    chunks = list(client.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(texts) == plain.choices[0].text
    token_chunks = [c for c in chunks if c.choices and c.model_extra.get("remask", {}).get("event") == "token"]
    assert len(token_chunks) == sum(1 for t in plain.model_extra["remask"]["tokens"] if t["text"])
    last_choice = [c for c in chunks if c.choices][-1]
    assert last_choice.choices[0].finish_reason == plain.choices[0].finish_reason
    assert last_choice.model_extra["remask"]["event"] == "done"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


@pytest.mark.parametrize("mode", ["ar", "hybrid", "diffusion"])
def test_a_streamed_candidate_search_adds_up_to_the_plain_answer(client: OpenAI, mode: str) -> None:
    # the search answers with one ranked snapshot, no token deltas (here the document's own continuation):
    # the final chunk must carry the text
    prompt = "items = [1, 2]\nfor item in items:\n    print(item)\nfor item in "
    kw: dict[str, Any] = {"model": "remask", "prompt": prompt, "suffix": ":\n    pass\n", "max_tokens": 8,
                          "seed": 1, "extra_body": {"mode": mode, "candidates": True, "steps": 4}}
    plain = client.completions.create(**kw)
    assert plain.model_extra["remask"]["syntax_check"] == "checked" and plain.choices[0].text
    chunks = list(client.completions.create(stream=True, **kw))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == plain.choices[0].text


def test_diffusion_stream_sends_snapshots_then_the_span(api_url: str, http: httpx.Client) -> None:
    body = {"prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 8, "seed": 0, "mode": "diffusion", "steps": 4}
    plain = http.post(f"{api_url}/v1/completions", json=body).json()
    resp = http.post(f"{api_url}/v1/completions", json={**body, "stream": True})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    snaps = [c for c in chunks if c["remask"]["event"] == "snapshot"]
    assert snaps and all(c["choices"][0]["text"] == "" for c in snaps)
    final = chunks[-1]
    assert final["remask"]["event"] == "done" and final["choices"][0]["finish_reason"] is not None
    assert final["choices"][0]["text"] == plain["choices"][0]["text"] == snaps[-1]["remask"]["snapshot"]
    assert "".join(c["choices"][0]["text"] for c in chunks) == plain["choices"][0]["text"]


def test_echo_and_list_prompt(api_url: str, http: httpx.Client) -> None:
    body = {"prompt": [PREFIX], "suffix": SUFFIX, "max_tokens": 4, "mode": "ar", "echo": True}
    out = http.post(f"{api_url}/v1/completions", json=body).json()
    assert out["choices"][0]["text"].startswith(PREFIX)


def test_fim_route_answers_in_mistral_shape(api_url: str, http: httpx.Client) -> None:
    body = {"model": "codestral-latest", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 8,
            "random_seed": 3, "mode": "hybrid", "steps": 4}
    out = http.post(f"{api_url}/v1/fim/completions", json=body).json()
    assert out["object"] == "chat.completion" and out["model"] == "codestral-latest"
    msg = out["choices"][0]["message"]
    assert msg["role"] == "assistant" and isinstance(msg["content"], str)
    assert out["usage"]["total_tokens"] == out["usage"]["prompt_tokens"] + out["usage"]["completion_tokens"]
    assert out["remask"]["audit"]["seed"] == 3

    resp = http.post(f"{api_url}/v1/fim/completions", json={**body, "stream": True})
    events = sse_events(resp)
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == msg["content"]
    assert chunks[-1]["usage"] == out["usage"] and chunks[-1]["choices"][0]["finish_reason"] is not None


def test_models_list(client: OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["remask"]
