"""A batch line's result is the direct response: same builder, same pipeline, same models.

Each request goes once straight to its route and once as a line of a job, run by a worker
with the model handler on the same tiny models (greedy, fixed seeds); the two answers must
be equal but for what differs from one call to the next (ids, clocks, timings).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import redis

from services.api import LocalEngine, Settings, build_app
from tests.services.conftest import LiveServer
from workflows.queue import JobQueue, Keys, ModelHandler, run_worker

KEYS = Keys("parity")
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/completions", {"prompt": "def add(a, b):\n    return ", "suffix": "\n", "max_tokens": 4, "steps": 2,
                         "seed": 1, "model": "tiny"}),
    ("/v1/completions", {"prompt": "x = ", "suffix": "\n", "max_tokens": 3, "mode": "ar", "seed": 0}),
    ("/v1/fim/completions", {"prompt": "x = ", "suffix": "\n", "max_tokens": 3, "mode": "diffusion", "steps": 2}),
    ("/v1/revise", {"text": "The client may write to us for help.", "spans": [[4, 10]], "steps": 2, "seed": 0}),
    ("/v1/repair", {"code": "def f(:\n    return 1\n", "rounds": 1, "steps": 2}),
]


def steady(answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` without what changes from call to call: ids, clocks and timings."""
    out = {k: v for k, v in answer.items() if k not in ("id", "created")}
    remask = {k: v for k, v in out["remask"].items() if k not in ("queue_ms", "run_ms")}
    remask["audit"] = {k: v for k, v in remask["audit"].items() if k not in ("timings_ms", "created_at")}
    return {**out, "remask": remask}


@pytest.fixture(scope="module")
def app_url(r: redis.Redis, api_models: Any) -> Iterator[str]:
    engine = LocalEngine(*api_models)
    with LiveServer(build_app(engine, Settings(api_keys=[]), JobQueue(r, KEYS))) as server:
        yield server.url
    engine.close()


@pytest.mark.parametrize(("url", "body"), REQUESTS, ids=[f"{u}:{b.get('mode', '')}" for u, b in REQUESTS])
def test_a_batch_line_answers_what_the_route_answers(app_url: str, http: httpx.Client, r: redis.Redis,
                                                     api_models: Any, url: str, body: dict[str, Any]) -> None:
    direct = http.post(f"{app_url}{url}", json=body)
    assert direct.status_code == 200, direct.text
    line = {"custom_id": "one", "method": "POST", "url": url, "body": body}
    job = http.post(f"{app_url}/v1/jobs", json={"requests": [line]})
    assert job.status_code == 200, job.text
    refiner, drafter = api_models
    run_worker(r, ModelHandler(SimpleNamespace(refiner=refiner, drafter=drafter)), keys=KEYS, stop_when_empty=True)
    [result] = [json.loads(x) for x in http.get(f"{app_url}/v1/jobs/{job.json()['id']}/results").text.splitlines()]
    assert result["response"]["status_code"] == 200
    batched = result["response"]["body"]
    assert batched["remask"]["audit"]["parameters"] == direct.json()["remask"]["audit"]["parameters"]
    assert steady(batched) == steady(direct.json())
