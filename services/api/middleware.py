"""ASGI middleware: API keys, request-body guards, per-request metrics and the access log.

All are plain ASGI (no ``BaseHTTPMiddleware``), so streamed responses pass through
untouched and the body is read exactly once. :class:`Authenticate` runs before the body is
read, so a client without a key cannot make the server buffer anything.

:class:`BodyGuard` refuses a body over the size limit (413) from its ``Content-Length``
before reading anything, and counts the bytes it actually reads too (a chunked body, or one
that lies about its length); it refuses a body that is not UTF-8 (400). The checked body is
handed on to the app as one message.

:class:`Contain` turns an exception that escapes the routes and their error handlers into a
JSON 500 with ``Connection: close``, so nothing unexpected reaches the server (which would
drop the connection without saying so: a keep-alive client's next request would be reset).

:class:`Observe` times every request to its last byte, counts it by route template and
status, keeps the in-flight gauge, and logs one line: method, path, status, time and tenant.
Never a header, a query string or a body, so API keys cannot reach the log.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.errors import error_body
from services.api.metrics import Metrics
from services.api.settings import ANONYMOUS_TENANT, Settings

log = logging.getLogger("remask.api")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def send_error(send: Send, status: int, message: str, code: str,
                     extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(error_body(status, message, None, code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra_headers or [])})
    await send({"type": "http.response.body", "body": body})


class Authenticate:
    """Bearer keys on every ``/v1`` route, checked before the body is read.

    With keys configured, a request without a valid key is answered 401 (the key it sent is
    never echoed or logged); the tenant of a valid key goes into the request state. Without
    keys (loopback only, see :class:`Settings`) every request belongs to ``anonymous``.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        if not self.settings.auth_required:
            state["tenant"] = ANONYMOUS_TENANT
        elif scope["path"] == "/v1" or scope["path"].startswith("/v1/"):
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            scheme, _, token = header.partition(" ")
            challenge = [(b"www-authenticate", b"Bearer")]
            if scheme.lower() != "bearer" or not token.strip():
                await send_error(send, 401, "missing API key: send 'Authorization: Bearer KEY'",
                                 "missing_api_key", challenge)
                return
            tenant = self.settings.tenant_of(token.strip())
            if tenant is None:
                await send_error(send, 401, "the API key is not valid", "invalid_api_key", challenge)
                return
            state["tenant"] = tenant
        await self.app(scope, receive, send)


class BodyGuard:
    """Size and encoding checks on request bodies."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.larger = larger or {}  # exact path -> its own limit (batch submissions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.max_body_bytes)
        close = [(b"connection", b"close")]  # the unread rest of the body makes the connection unusable
        too_big = f"the request body is over the limit of {limit} bytes"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await send_error(send, 400, "Content-Length is not a number", "invalid_content_length", close)
                return
            if declared > limit:
                await send_error(send, 413, too_big, "request_too_large", close)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await send_error(send, 413, too_big, "request_too_large", close)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            await send_error(send, 400, f"the request body is not valid UTF-8 (byte {exc.start})", "invalid_encoding")
            return

        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the client to disconnect

        await self.app(scope, replay, send)


class Contain:
    """Any exception the app lets through becomes a JSON 500 with ``Connection: close``.

    Once an answer has started (a stream), a status can no longer be sent: the exception is
    re-raised so the server closes the connection, which is the only way left to tell the
    client that the answer is cut short.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:  # the last place that can still answer it
            log.error("internal error on %s %s", scope["method"], scope["path"], exc_info=exc)
            if started:
                raise
            await send_error(send, 500, "internal error; see the server log", "internal_error",
                             [(b"connection", b"close")])


class Observe:
    """Latency, status counts, in-flight gauge and the access log line.

    ``templates`` gives the app's route paths (``/v1/jobs/{job_id}`` style); it is read on the
    first request, when every route is in place. A path matching none is labelled ``unmatched``.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, templates: Callable[[], list[str]]) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates
        self._patterns: list[tuple[re.Pattern[str], str]] | None = None

    def route_of(self, path: str) -> str:
        if self._patterns is None:
            self._patterns = [(re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(t)) + "$"), t)
                              for t in sorted(set(self.templates()))]
        for pattern, template in self._patterns:
            if pattern.match(path):
                return template
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        state["t0"] = t0
        route = self.route_of(scope["path"])
        state["route"] = route
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        running = self.metrics.running.labels(route)
        running.inc()
        try:
            await self.app(scope, receive, watch)
        finally:
            running.dec()
            elapsed = time.perf_counter() - t0
            self.metrics.latency.labels(route).observe(elapsed)
            self.metrics.requests.labels(route, str(status)).inc()
            log.info("%s %s -> %d in %.1f ms tenant=%s", scope["method"], scope["path"], status,
                     1000 * elapsed, state.get("tenant", "-"))
