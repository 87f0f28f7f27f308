"""Operations: health and readiness, metrics, OpenAPI, API keys and logs, overload, settings."""

from __future__ import annotations

import ast
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

import workflows.engine.pipelines as pipelines_mod
from services.api import EngineClient, LocalEngine, Settings, build_app
from services.api.settings import is_loopback, parse_api_keys
from services.cli import main
from tests.services.conftest import TEST_LIMITS, LiveServer, serve

KEYS = "sk-alpha-123:tenant-a,sk-beta-456:tenant-b"
FIM = {"prompt": "def f():\n    return ", "suffix": "\n", "max_tokens": 4, "mode": "ar"}


@pytest.fixture(scope="module")
def keyed_url(api_models: Any) -> Iterator[str]:
    server, engine = serve(api_models, Settings(api_keys=parse_api_keys(KEYS), limits=TEST_LIMITS))
    with server:
        yield server.url
    engine.close()


def test_health_and_ready(api_url: str, http: httpx.Client, api_models: Any) -> None:
    assert http.get(f"{api_url}/health").json() == {"status": "ok"}
    assert http.get(f"{api_url}/ready").json() == {"status": "ready"}

    class Broken(LocalEngine):
        async def check_health(self) -> None:
            raise RuntimeError("weights are gone")

    with LiveServer(build_app(Broken(*api_models), Settings(api_keys=[]))) as server:
        r = http.get(f"{server.url}/ready")
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready" and r.headers["retry-after"]
        assert http.get(f"{server.url}/health").status_code == 200


def test_metrics_after_requests(api_url: str, http: httpx.Client) -> None:
    assert http.post(f"{api_url}/v1/completions", json=FIM).status_code == 200
    assert http.post(f"{api_url}/v1/completions", json={**FIM, "stream": True}).status_code == 200
    http.get(f"{api_url}/no/such/page")
    r = http.get(f"{api_url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(r.text) for s in fam.samples}
    route = (("route", "/v1/completions"),)
    assert samples[("remask:e2e_request_latency_seconds_count", route)] >= 2
    assert samples[("remask:time_to_first_token_seconds_count", route)] >= 2
    assert samples[("remask:http_requests_total", (("route", "/v1/completions"), ("status", "200")))] >= 2
    assert samples[("remask:http_requests_total", (("route", "unmatched"), ("status", "404")))] >= 1
    assert samples[("remask:num_requests_running", (("route", "/metrics"),))] == 1  # this very request
    assert samples[("remask:num_requests_waiting", ())] == 0
    assert samples[("remask:prompt_tokens_total", route)] > 0


def test_openapi_documents_every_field(api_url: str, http: httpx.Client) -> None:
    doc = http.get(f"{api_url}/openapi.json").json()
    assert {"/v1/completions", "/v1/fim/completions", "/v1/revise", "/v1/repair", "/health", "/ready",
            "/metrics"} <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    for name in ("CompletionRequest", "FimRequest", "ReviseRequest", "RepairRequest", "CompletionResponse",
                 "FimResponse", "EditResponse", "RemaskInfo", "ErrorResponse"):
        props = schemas[name]["properties"]
        undocumented = [p for p, spec in props.items() if not spec.get("description")]
        assert not undocumented, f"{name}: {undocumented}"
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    fim = doc["paths"]["/v1/completions"]["post"]
    assert {"401", "413", "422", "429"} <= set(fim["responses"])


def test_api_keys_guard_v1_and_never_reach_the_log(keyed_url: str, http: httpx.Client,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    r = http.post(f"{keyed_url}/v1/completions", json=FIM)
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    assert r.headers["www-authenticate"] == "Bearer"
    r = http.post(f"{keyed_url}/v1/completions", json=FIM, headers={"Authorization": "Bearer sk-wrong-789"})
    assert r.status_code == 401 and "sk-wrong-789" not in r.text
    assert http.post(f"{keyed_url}/v1/revise", json={"text": "x"}, headers={"Authorization": "Basic abc"}
                     ).status_code == 401
    client = OpenAI(base_url=f"{keyed_url}/v1", api_key="sk-alpha-123", max_retries=0)
    assert client.completions.create(model="remask", prompt=FIM["prompt"], suffix="\n", max_tokens=2,
                                     extra_body={"mode": "ar"}).choices[0].finish_reason
    r = http.get(f"{keyed_url}/v1/models", headers={"Authorization": "Bearer sk-beta-456"})
    assert r.status_code == 200
    assert http.get(f"{keyed_url}/health").status_code == 200  # probes need no key
    assert http.get(f"{keyed_url}/metrics").status_code == 200
    time.sleep(0.05)  # the access line is written after the last byte is sent
    logged = caplog.text
    assert "tenant=tenant-a" in logged and "tenant=tenant-b" in logged  # the log was captured
    for secret in ("sk-alpha-123", "sk-beta-456", "sk-wrong-789"):
        assert secret not in logged


def test_settings_refuse_open_non_loopback_binds(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("REMASK_API_KEYS", raising=False)
    with pytest.raises(ValidationError, match="not loopback"):
        Settings(host="0.0.0.0")
    assert Settings(host="::1").api_keys == [] and is_loopback("127.0.0.2") and not is_loopback("example.org")
    assert main(["serve-local", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "not loopback" in capsys.readouterr().err
    monkeypatch.setenv("REMASK_API_KEYS", "k-one:team1, k-two")
    s = Settings(host="0.0.0.0")
    assert s.tenant_of("k-one") == "team1" and s.tenant_of("k-two") == "default" and s.tenant_of("k") is None
    assert "k-one" not in repr(s) and "k-one" not in s.model_dump_json()
    with pytest.raises(ValueError, match="entry 1") as exc:
        parse_api_keys("hush-hush:")
    assert "hush-hush" not in str(exc.value)


def test_overload_answers_429_and_503_with_retry_after(api_models: Any, http: httpx.Client,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    gate, started = threading.Event(), threading.Event()
    real_repair = pipelines_mod.repair

    def held_repair(*args: Any, **kw: Any) -> Any:
        started.set()
        gate.wait(10)
        return real_repair(*args, **kw)

    monkeypatch.setattr(pipelines_mod, "repair", held_repair)
    server, engine = serve(api_models, Settings(api_keys=[]), max_pending=2, queue_timeout_s=1.0, retry_after_s=2)
    body = {"code": "x = 1\n", "rounds": 1}
    with server, ThreadPoolExecutor(2) as pool:
        first = pool.submit(http.post, f"{server.url}/v1/repair", json=body)
        assert started.wait(10)  # holds the refiner
        second = pool.submit(http.post, f"{server.url}/v1/repair", json=body)
        deadline = time.monotonic() + 5
        while engine.queue_depth() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        third = http.post(f"{server.url}/v1/repair", json=body)  # over max_pending: refused at once
        assert third.status_code == 429 and third.headers["retry-after"] == "2"
        assert third.json()["error"]["code"] == "queue_full"
        waited = second.result(10)  # gave up waiting for the refiner
        assert waited.status_code == 503 and waited.headers["retry-after"] == "2"
        assert waited.json()["error"]["code"] == "queue_timeout"
        gate.set()
        assert first.result(10).status_code == 200
        assert http.post(f"{server.url}/v1/repair", json=body).status_code == 200  # recovered
    engine.close()


def test_a_dropped_stream_frees_the_engine(api_url: str, http: httpx.Client) -> None:
    with http.stream("POST", f"{api_url}/v1/completions",
                     json={**FIM, "max_tokens": 32, "stream": True}) as r:
        assert next(r.iter_lines()).startswith("data: ")
    assert http.post(f"{api_url}/v1/completions", json=FIM, timeout=10).status_code == 200


def test_the_api_package_is_ray_free_and_local_engine_fits_the_protocol(api_models: Any) -> None:
    for path in Path("services/api").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "ray" or n.startswith("ray.") for n in names), path
    assert isinstance(LocalEngine(*api_models), EngineClient)
