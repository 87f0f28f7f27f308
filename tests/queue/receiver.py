"""Webhook test helpers: a receiver on 127.0.0.1 that counts what reaches it, a stub DNS,
and a guard that fails a test whose code would connect anywhere but loopback."""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import pytest

from workflows.queue import webhook as wh


class Receiver:
    """Serves on a free loopback port; every request is recorded in :attr:`hits`.

    ``status`` and ``headers`` are what it answers; ``tls`` (a server context) serves https,
    recording the SNI name each client sent in :attr:`sni`.
    """

    def __init__(self, status: int = 204, headers: dict[str, str] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.hits: list[dict[str, Any]] = []
        self.sni: list[str | None] = []
        answer, extra, hits = status, headers or {}, self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hits.append({"path": self.path, "host": self.headers["Host"], "body": json.loads(body or b"null")})
                self.send_response(answer)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.scheme = "http"
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)  # type: ignore[assignment,misc]
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def url(self, host: str = "127.0.0.1", path: str = "/hook") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def stub_dns(monkeypatch: pytest.MonkeyPatch, *answers: list[str]) -> list[str]:
    """Resolve webhook hosts other than localhost to ``answers`` in turn (the last repeats);
    returns the names asked, in order."""
    asked: list[str] = []
    real = wh._getaddrinfo

    def lookup(host: str, port: int) -> list[str]:
        if host == "localhost":
            return real(host, port)
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    monkeypatch.setattr(wh, "_getaddrinfo", lookup)
    return asked


def guard_loopback(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record every ``socket.create_connection``; one to anything but loopback fails the test."""
    tried: list[tuple[str, int]] = []
    real = socket.create_connection

    def guarded(address: tuple[str, int], *args: Any, **kw: Any) -> socket.socket:
        tried.append(address)
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise AssertionError(f"a test tried to connect to {address}")
        return real(address, *args, **kw)

    monkeypatch.setattr(socket, "create_connection", guarded)
    return tried
