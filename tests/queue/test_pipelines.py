"""One job through the real pipelines, with tiny models: every endpoint, and a cancel inside an item."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from tests.workflows.conftest import shared_tokenizer, tiny_drafter, tiny_refiner  # noqa: F401 (fixtures)
from workflows.queue import BatchItem, JobQueue, JobStatus, ModelHandler, Worker, WorkerConfig
from workflows.queue.handlers import JobCancelled

RULES = {"name": "house", "rules": [
    {"id": "no-email", "type": "redact", "kind": "email"},
    {"id": "say-customer", "type": "banned_phrase", "phrases": ["client"], "preferred": "customer"},
]}
TEXT = "The client may write to ops@example.org for help."


def lines() -> str:
    rows: list[tuple[str, str, dict[str, Any]]] = [
        ("revise", "/v1/revise", {"text": TEXT, "spans": [[4, 10]], "steps": 2, "seed": 0}),
        ("revise-rules", "/v1/revise", {"text": TEXT, "rules": RULES, "steps": 2}),
        ("repair", "/v1/repair", {"code": "def f(:\n    return 1\n", "rounds": 1, "samples": 0, "steps": 2}),
        ("complete", "/v1/completions", {"prompt": "def add(a, b):\n    return ", "suffix": "\n",
                                         "max_tokens": 4, "steps": 2, "seed": 1, "stop": "\n"}),
        ("fim", "/v1/fim/completions", {"prompt": "x = ", "suffix": "\n", "max_tokens": 3,
                                        "mode": "diffusion", "steps": 2}),
        ("comply", "/v1/compliance", {"text": TEXT, "rules": RULES, "steps": 2}),
        ("bad-span", "/v1/revise", {"text": "short", "spans": [[0, 99]]}),
    ]
    return "".join(json.dumps({"custom_id": c, "method": "POST", "url": u, "body": b}) + "\n" for c, u, b in rows)


@pytest.fixture
def engines(tiny_refiner: Any, tiny_drafter: Any) -> SimpleNamespace:  # noqa: F811
    return SimpleNamespace(refiner=tiny_refiner, drafter=tiny_drafter)


def test_every_endpoint_runs_through_its_pipeline(queue: JobQueue, r: redis.Redis, engines: SimpleNamespace) -> None:
    job = queue.submit(lines(), tenant="acme")
    Worker(r, ModelHandler(engines), WorkerConfig(lease_s=10), queue=queue).run(stop_when_empty=True)
    done = queue.get(job.id, "acme")
    assert done.status is JobStatus.COMPLETED
    assert (done.request_counts.completed, done.request_counts.failed) == (6, 1)
    out = {x["custom_id"]: x["response"]["body"] for x in map(json.loads, queue.results(job.id, "acme"))}
    assert list(out) == ["revise", "revise-rules", "repair", "complete", "fim", "comply"]
    revised = out["revise"]["text"]
    assert revised.startswith("The") and revised.endswith(" write to ops@example.org for help.")
    assert out["revise"]["object"] == "revision" and out["revise"]["remask"]["audit"]["pipeline"] == "revise"
    for cid in ("revise-rules", "comply"):
        # the banned word is rewritten (preferred term or deletion, as the drafter judges) or left for review
        reviewed = [v["phrase"] for v in out[cid]["remask"].get("needs_review") or []]
        assert "ops@example.org" not in out[cid]["text"] and ("client" not in out[cid]["text"] or "client" in reviewed)
        assert {e["reason"] for e in out[cid]["edits"]} >= {"no-email", "say-customer"}
    assert out["comply"]["object"] == "compliance" and out["comply"]["unresolved"] == []
    held = [len(b["remask"].get("needs_review") or []) for b in out.values() if "remask" in b]
    assert (done.review_counts.items, done.review_counts.findings) == (sum(n > 0 for n in held), sum(held))
    assert out["repair"]["remask"]["audit"]["pipeline"] == "repair" and "parses" in out["repair"]
    c = out["complete"]
    assert c["object"] == "text_completion" and c["usage"]["completion_tokens"] == len(c["remask"]["tokens"])
    assert "\n" not in c["choices"][0]["text"] and c["remask"]["mode"] == "hybrid"
    f = out["fim"]
    assert f["object"] == "chat.completion" and f["remask"]["mode"] == "diffusion"
    [err] = [json.loads(x) for x in queue.errors(job.id, "acme")]
    assert err["custom_id"] == "bad-span" and "outside the text" in err["error"]["message"]


def test_a_cancel_reaches_inside_an_item_between_denoising_steps(engines: SimpleNamespace) -> None:
    calls = []

    def checkpoint() -> None:
        calls.append(1)
        if len(calls) == 2:  # the first call is before the pipeline; the second is its first step
            raise JobCancelled()

    item = BatchItem(0, "a", "/v1/revise", {"text": TEXT, "spans": [[4, 10]], "steps": 8, "threshold": None})
    with pytest.raises(JobCancelled):
        ModelHandler(engines)(item, checkpoint)
    assert len(calls) == 2
