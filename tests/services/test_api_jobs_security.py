"""/v1/jobs against probes: job ids that are not ids, other tenants' ids with key suffixes,
``after`` naming itself, and webhook URLs aimed inside (422 at submission, nothing sent).

Every connection goes to 127.0.0.1: webhook hosts resolve through a stub DNS, and a guard
fails any test whose code would connect elsewhere.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import redis

from services.api import LocalEngine, Settings, build_app
from services.api.settings import parse_api_keys
from tests.queue.receiver import Receiver, guard_loopback, stub_dns
from tests.services.conftest import LiveServer
from workflows.queue import EchoHandler, JobQueue, Keys, run_worker
from workflows.queue import webhook as wh

A = {"Authorization": "Bearer key-a"}
B = {"Authorization": "Bearer key-b"}
KEYS = Keys("apisec")
ITEM = {"custom_id": "doc-0", "method": "POST", "url": "/v1/repair", "body": {"code": "x = 1\n"}}
UNKNOWN = "batch_0123456789abcdef0123456789abcdef"


def _serve(r: redis.Redis, api_models: Any, allow: list[str]) -> Iterator[str]:
    settings = Settings(api_keys=parse_api_keys("key-a:tenant-a,key-b:tenant-b"), webhook_allow=allow)
    engine = LocalEngine(*api_models)
    with LiveServer(build_app(engine, settings, JobQueue(r, KEYS))) as server:
        yield server.url
    engine.close()


@pytest.fixture(scope="module")
def url(r: redis.Redis, api_models: Any) -> Iterator[str]:
    """An app that allows no internal webhook receiver (the default)."""
    yield from _serve(r, api_models, [])


@pytest.fixture(scope="module")
def allowing_url(r: redis.Redis, api_models: Any) -> Iterator[str]:
    """An app whose operator allows webhooks to 127.0.0.1."""
    yield from _serve(r, api_models, ["127.0.0.1"])


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    monkeypatch.delenv(wh.ALLOW_ENV, raising=False)
    return guard_loopback(monkeypatch)


def submit(http: httpx.Client, base: str, headers: dict[str, str] = A, **options: Any) -> httpx.Response:
    return http.post(f"{base}/v1/jobs", json={"requests": [ITEM], **options}, headers=headers)


def work_off(r: redis.Redis) -> None:
    run_worker(r, EchoHandler(), keys=KEYS, stop_when_empty=True)


def test_ids_that_are_not_ids_answer_exactly_like_an_unknown_job(url: str, http: httpx.Client) -> None:
    mine, theirs = submit(http, url).json()["id"], submit(http, url, B).json()["id"]
    unknown = http.get(f"{url}/v1/jobs/{UNKNOWN}", headers=A)
    assert unknown.status_code == 404
    shape = unknown.json()["error"] | {"message": None}
    probes = [f"{theirs}:items", f"{theirs}:results", f"{theirs}:errors", f"{mine}:items", f"{mine}:results",
              theirs, "batch_" + "0" * 4000, mine.upper(), mine[:-1], "%2A", "a..b", "%00", "%C3%A9", "a%20b",
              "%3A", "%0A" + mine, mine + "%0A", "%27%22%3C%3E", "%7B%7D"]
    for probe in probes:
        text = unquote(probe)
        for method, path in (("GET", ""), ("GET", "/results"), ("GET", "/errors"), ("POST", "/cancel")):
            resp = http.request(method, f"{url}/v1/jobs/{probe}{path}", headers=A)
            assert resp.status_code == 404, (probe, path, resp.text)
            assert resp.json()["error"] == shape | {"message": f"job {text!r} not found"}, (probe, path)
    assert http.get(f"{url}/v1/jobs/{mine}", headers=A).json()["status"] == "queued"  # nothing changed


def test_after_is_named_when_it_is_not_a_job_of_yours(url: str, http: httpx.Client) -> None:
    mine, theirs = submit(http, url).json()["id"], submit(http, url, B).json()["id"]
    for after in ("bogus", UNKNOWN, theirs, f"{mine}:items"):
        resp = http.get(f"{url}/v1/jobs", params={"after": after}, headers=A)
        assert resp.status_code == 404, resp.text
        err = resp.json()["error"]
        assert (err["param"], err["code"], err["message"]) == ("after", "job_not_found", f"job {after!r} not found")
    assert http.get(f"{url}/v1/jobs", params={"after": mine}, headers=A).status_code == 200


INTERNAL = [
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"), ("http://10.0.0.5:6379/", "private"),
    ("http://[::1]:22/", "loopback"), ("http://localhost:16379/", "resolves to a loopback"),
    ("http://127.0.0.1:{port}/hook", "loopback"), ("http://[fe80::1]/", "link-local"),
    ("http://192.168.0.10/", "private"), ("http://[fd00::5]/", "private"), ("http://0.0.0.0:{port}/", "unspecified"),
    ("http://224.0.0.251/", "multicast"), ("http://240.1.2.3/", "reserved"), ("http://100.64.1.1/", "carrier-grade"),
    ("http://[::ffff:127.0.0.1]:{port}/", "IPv6 form of a loopback"), ("http://2130706433:{port}/", "loopback"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata"), ("ftp://example.org/", "http://"),
]


@pytest.mark.parametrize(("hook", "why"), INTERNAL)
def test_webhooks_aimed_inside_are_refused_at_submission(url: str, http: httpx.Client, r: redis.Redis,
                                                         hook: str, why: str) -> None:
    with Receiver() as receiver:
        target = hook.format(port=receiver.port)
        queued = r.xlen(KEYS.stream)
        for resp in (submit(http, url, webhook_url=target),
                     http.post(f"{url}/v1/jobs", params={"webhook_url": target}, content=json.dumps(ITEM) + "\n",
                               headers={**A, "content-type": "application/jsonl"})):
            assert resp.status_code == 422, resp.text
            err = resp.json()["error"]
            assert err["param"] == "webhook_url" and why in err["message"], err
        assert r.xlen(KEYS.stream) == queued  # nothing was queued
    assert receiver.hits == []


def test_a_host_that_does_not_resolve_is_refused(url: str, http: httpx.Client,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(wh, "_getaddrinfo", fail)
    resp = submit(http, url, webhook_url="https://hooks.example/in")
    assert resp.status_code == 422 and resp.json()["error"]["param"] == "webhook_url"
    assert "does not resolve" in resp.json()["error"]["message"]


def test_a_hanging_lookup_is_bounded_and_leaves_the_server_free(url: str, http: httpx.Client,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    monkeypatch.setattr(wh, "_getaddrinfo", lambda host, port: [release.wait(30) and "127.0.0.1"])
    answer: list[httpx.Response] = []
    try:
        start = time.monotonic()
        sender = threading.Thread(target=lambda: answer.append(submit(http, url, webhook_url="http://slow.example/")))
        sender.start()
        for _ in range(5):  # while the lookup hangs, other requests are answered at once
            t0 = time.monotonic()
            assert http.get(f"{url}/health").status_code == 200 and time.monotonic() - t0 < 1.0
        sender.join(10)
        elapsed = time.monotonic() - start
    finally:
        release.set()
    assert answer[0].status_code == 422 and "did not resolve within 2 s" in answer[0].json()["error"]["message"]
    assert wh.RESOLVE_TIMEOUT_S <= elapsed < wh.RESOLVE_TIMEOUT_S + 2


def test_an_answer_that_turns_internal_after_submission_gets_no_post(url: str, http: httpx.Client,
                                                                     r: redis.Redis,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    asked = stub_dns(monkeypatch, ["93.184.216.34"], ["127.0.0.1"])  # public at submission, then loopback
    with Receiver() as receiver:
        job = submit(http, url, webhook_url=receiver.url("hooks.example"))
        assert job.status_code == 200, job.text
        work_off(r)
    assert http.get(f"{url}/v1/jobs/{job.json()['id']}", headers=A).json()["status"] == "completed"
    assert receiver.hits == [] and asked == ["hooks.example", "hooks.example"]


def test_the_allow_list_lets_a_loopback_receiver_get_the_post(url: str, allowing_url: str, http: httpx.Client,
                                                              r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    with Receiver() as receiver:
        assert submit(http, url, webhook_url=receiver.url()).status_code == 422  # not allowed by default
        job = submit(http, allowing_url, webhook_url=receiver.url())
        assert job.status_code == 200, job.text
        monkeypatch.setenv(wh.ALLOW_ENV, "127.0.0.1")  # what the operator sets for the workers too
        work_off(r)
    [hit] = receiver.hits
    assert (hit["body"]["id"], hit["body"]["status"]) == (job.json()["id"], "completed")
