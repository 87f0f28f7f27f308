"""A real Valkey server for the queue tests: started once per session, flushed per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from workflows.queue import EmbeddedValkey, JobQueue, Keys


@pytest.fixture(scope="session")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedValkey]:
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def r(valkey: EmbeddedValkey) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(valkey.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def queue(r: redis.Redis) -> JobQueue:
    return JobQueue(r, Keys("t"))
