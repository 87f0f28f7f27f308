"""/v1/jobs over a real Valkey server: submit, tenants, cancel, results, errors, metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from services.api import LocalEngine, Settings, build_app
from services.api.settings import Limits, parse_api_keys
from tests.services.conftest import LiveServer
from workflows.queue import EchoHandler, JobQueue, Keys, run_worker

A = {"Authorization": "Bearer key-a"}
B = {"Authorization": "Bearer key-b"}
KEYS = Keys("apitest")


def jsonl(n: int, prefix: str = "doc") -> str:
    return "".join(json.dumps({"custom_id": f"{prefix}-{i}", "method": "POST", "url": "/v1/repair",
                               "body": {"code": f"x = {i}\n"}}) + "\n" for i in range(n))


@pytest.fixture(scope="module")
def jobs_url(r: redis.Redis, api_models: Any) -> Iterator[str]:
    settings = Settings(api_keys=parse_api_keys("key-a:tenant-a,key-b:tenant-b"),
                        limits=Limits(max_body_bytes=2048, max_job_bytes=64 << 10))
    engine = LocalEngine(*api_models)
    with LiveServer(build_app(engine, settings, JobQueue(r, KEYS, max_lines=50))) as server:
        yield server.url
    engine.close()


def work_off(r: redis.Redis) -> None:
    run_worker(r, EchoHandler(), keys=KEYS, stop_when_empty=True)


def test_submit_jsonl_run_and_read_results(jobs_url: str, http: httpx.Client, r: redis.Redis) -> None:
    body = jsonl(3)  # over max_body_bytes is fine for a job: it has its own limit
    body += jsonl(30, "pad")
    assert len(body.encode()) > 2048
    resp = http.post(f"{jobs_url}/v1/jobs", content=body, headers={**A, "content-type": "application/jsonl",
                                                                    "Idempotency-Key": "once"})
    assert resp.status_code == 200, resp.text
    job = resp.json()
    assert job["object"] == "batch" and job["status"] == "queued" and job["request_counts"]["total"] == 33
    again = http.post(f"{jobs_url}/v1/jobs", content=body, headers={**A, "content-type": "application/jsonl",
                                                                     "Idempotency-Key": "once"}).json()
    assert again["id"] == job["id"]  # the same key does not queue it twice
    work_off(r)
    done = http.get(f"{jobs_url}/v1/jobs/{job['id']}", headers=A).json()
    assert done["status"] == "completed" and done["progress"] == 1.0
    assert done["request_counts"] == {"total": 33, "completed": 33, "failed": 0}
    assert done["review_counts"] == {"items": 0, "findings": 0}  # no item left findings for review
    res = http.get(f"{jobs_url}/v1/jobs/{job['id']}/results", headers=A)
    assert res.headers["content-type"].startswith("application/jsonl")
    lines = [json.loads(x) for x in res.text.splitlines()]
    assert [x["custom_id"] for x in lines[:3]] == ["doc-0", "doc-1", "doc-2"] and len(lines) == 33
    assert lines[0]["response"]["status_code"] == 200
    assert http.get(f"{jobs_url}/v1/jobs/{job['id']}/errors", headers=A).text == ""


def test_a_tenant_sees_only_its_own_jobs(jobs_url: str, http: httpx.Client) -> None:
    job = http.post(f"{jobs_url}/v1/jobs", json={"requests": [json.loads(jsonl(1))]}, headers=A).json()
    for path in ("", "/results", "/errors"):
        resp = http.get(f"{jobs_url}/v1/jobs/{job['id']}{path}", headers=B)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "job_not_found"
    assert http.post(f"{jobs_url}/v1/jobs/{job['id']}/cancel", headers=B).status_code == 404
    assert job["id"] not in [j["id"] for j in http.get(f"{jobs_url}/v1/jobs", headers=B).json()["data"]]
    mine = http.get(f"{jobs_url}/v1/jobs", params={"limit": 1}, headers=A).json()
    assert mine["data"][0]["id"] == job["id"] and mine["first_id"] == job["id"]
    assert http.get(f"{jobs_url}/v1/jobs").status_code == 401


def test_cancel_a_queued_job(jobs_url: str, http: httpx.Client) -> None:
    job = http.post(f"{jobs_url}/v1/jobs", content=jsonl(2), headers={**A, "content-type": "application/x-ndjson"}
                    ).json()
    out = http.post(f"{jobs_url}/v1/jobs/{job['id']}/cancel", headers=A).json()
    assert out["status"] == "cancelled" and out["cancelled_at"]


@pytest.mark.parametrize(("content", "ctype", "status", "param"), [
    ('{"custom_id": "a", "url": "/v1/repair", "body": {"code": "x", "rounds": 0}}\n', "application/jsonl",
     422, "line 1.body.rounds"),
    ('{"custom_id": "a", "url": "/v1/nope", "body": {}}\n', "application/jsonl", 422, "line 1.url"),
    (jsonl(51), "application/jsonl", 422, "line 51"),  # the first line over max_lines
    ('{"requests": []}', "application/json", 422, "requests"),
    ('{"requests": ', "application/json", 400, None),
])
def test_bad_submissions_name_line_and_field(jobs_url: str, http: httpx.Client, content: str, ctype: str,
                                             status: int, param: str | None) -> None:
    resp = http.post(f"{jobs_url}/v1/jobs", content=content, headers={**A, "content-type": ctype})
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["param"] == param


def test_job_figures_in_metrics(jobs_url: str, http: httpx.Client, r: redis.Redis) -> None:
    job = http.post(f"{jobs_url}/v1/jobs", content=jsonl(1), headers={**A, "content-type": "application/jsonl"})
    work_off(r)
    assert http.get(f"{jobs_url}/v1/jobs/{job.json()['id']}", headers=A).status_code == 200
    text = http.get(f"{jobs_url}/metrics").text
    samples = {(s.name, tuple(s.labels.items())): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("remask:jobs", (("state", "completed"),))] >= 1
    assert samples[("remask:jobs_dead_lettered", ())] == 0 and ("remask:jobs_waiting", ()) in samples
    # job ids never become label values: the route template does
    assert samples[("remask:http_requests_total", (("route", "/v1/jobs/{job_id}"), ("status", "200")))] >= 1


def test_openapi_documents_the_job_routes(jobs_url: str, http: httpx.Client) -> None:
    doc = http.get(f"{jobs_url}/openapi.json").json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel", "/v1/jobs/{job_id}/results",
            "/v1/jobs/{job_id}/errors"} <= set(doc["paths"])
    body = doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/jsonl"} <= set(body)
    schemas = doc["components"]["schemas"]
    for props in (body["application/json"]["schema"]["properties"], schemas["JobOut"]["properties"]):
        assert all(spec.get("description") for spec in props.values())
