"""A 5xx closes its keep-alive connection cleanly (``Connection: close``); a 4xx keeps it open.

Raw HTTP/1.1 (``http.client``) against uvicorn on loopback, so nothing between the test and
the server pools, retries or reconnects on its own.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from services.api import LocalEngine, Settings, build_app
from tests.services.conftest import LiveServer

FIM = {"prompt": "def f():\n    return ", "suffix": "\n", "max_tokens": 2, "mode": "ar"}


class Exploding(LocalEngine):
    """Infill raises what no error handler knows; readiness fails too."""

    async def infill(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the model fell over")

    async def check_health(self) -> None:
        raise RuntimeError("weights are gone")


@pytest.fixture(scope="module")
def port(api_models: Any) -> Iterator[int]:
    engine = Exploding(*api_models)
    with LiveServer(build_app(engine, Settings(api_keys=[]))) as server:
        yield server.port
    engine.close()


def request(conn: http.client.HTTPConnection, method: str, path: str,
            body: dict[str, Any] | None = None) -> http.client.HTTPResponse:
    headers = {"content-type": "application/json"} if body is not None else {}
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    resp = conn.getresponse()
    resp.read()  # the whole body, so the connection is ready for the next request
    return resp


def test_an_unexpected_error_is_a_json_500_that_closes_the_connection(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/v1/completions", body=json.dumps(FIM), headers={"content-type": "application/json"})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 500 and resp.getheader("connection") == "close" and resp.will_close
    assert body["error"]["code"] == "internal_error" and "fell over" not in body["error"]["message"]
    conn.close()
    fresh = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    assert request(fresh, "GET", "/health").status == 200  # the server is fine; a new connection works
    fresh.close()


def test_a_503_closes_the_connection_too(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    resp = request(conn, "GET", "/ready")
    assert resp.status == 503 and resp.getheader("connection") == "close" and resp.getheader("retry-after")
    conn.close()


def test_a_4xx_keeps_the_connection_for_the_next_request(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    first = request(conn, "POST", "/v1/completions", {**FIM, "n": 2})
    assert first.status == 422 and first.getheader("connection") != "close" and not first.will_close
    local = conn.sock.getsockname()
    assert request(conn, "GET", "/health").status == 200
    assert conn.sock.getsockname() == local  # the same connection answered
    conn.close()
