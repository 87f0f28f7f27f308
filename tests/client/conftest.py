"""The SDK against the real app: tiny random models, API keys, and a job queue on a real Valkey.

Reuses the HTTP API fixtures (:mod:`tests.services.conftest`) and the queue's Valkey server
(:mod:`tests.queue.conftest`); adds a worker that runs in a thread of the test process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

import pytest
import redis
import torch

from services.api import LocalEngine, Settings, build_app
from services.api.settings import parse_api_keys
from tests.queue.conftest import valkey  # noqa: F401 - a fixture
from tests.services.conftest import TEST_LIMITS, LiveServer, api_models  # noqa: F401 - api_models is a fixture
from workflows.engines import Engines
from workflows.queue import (
    BatchItem,
    EmbeddedValkey,
    JobQueue,
    Keys,
    ModelHandler,
    Worker,
    WorkerConfig,
)

torch.set_num_threads(1)  # two cores, shared: no thread pools fighting over them

API_KEY = "sdk-key-a"
OTHER_KEY = "sdk-key-b"
KEYS = Keys("sdktest")
SLOW = "slow-"  # items whose custom_id starts with this take SLOW_S seconds (checkpointed), for cancel tests
SLOW_S = 3.0


@dataclass
class Live:
    url: str
    r: redis.Redis
    engine: LocalEngine


class ItemRunner:
    """The real pipelines on the tiny models; ``slow-*`` items first idle, checkpointing."""

    def __init__(self, engines: Engines) -> None:
        self.inner = ModelHandler(engines)

    def __call__(self, item: BatchItem, checkpoint: Any) -> dict[str, Any]:
        if item.custom_id.startswith(SLOW):
            end = time.monotonic() + SLOW_S
            while time.monotonic() < end:
                checkpoint()  # raises once the job is cancelled
                time.sleep(0.02)
        return self.inner(item, checkpoint)


class BackgroundWorker:
    """A queue worker in a thread of this process, stopped (gracefully) on exit."""

    def __init__(self, r: redis.Redis, handler: Any) -> None:
        cfg = WorkerConfig(block_s=0.1, poll_s=0.02, lease_s=10.0)
        self.worker = Worker(r, handler, cfg, queue=JobQueue(r, KEYS))
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()
        self.thread.join(10)


@pytest.fixture(scope="session")
def live(api_models: tuple[Any, Any], valkey: EmbeddedValkey) -> Iterator[Live]:  # noqa: F811
    """The app with two API keys (two tenants), :data:`TEST_LIMITS` and the job routes."""
    r = redis.Redis.from_url(valkey.url)
    settings = Settings(api_keys=parse_api_keys(f"{API_KEY}:tenant-a,{OTHER_KEY}:tenant-b"),
                        limits=TEST_LIMITS.model_copy(update={"max_job_bytes": 1 << 20}))
    engine = LocalEngine(*api_models)
    with LiveServer(build_app(engine, settings, JobQueue(r, KEYS))) as server:
        yield Live(server.url, r, engine)
    engine.close()
    r.close()


@pytest.fixture(scope="session")
def worker(live: Live, api_models: tuple[Any, Any], valkey: EmbeddedValkey  # noqa: F811
           ) -> Iterator[BackgroundWorker]:
    """One worker for the session, running the items through the tiny models."""
    refiner, drafter = api_models
    # not closed here: a lease thread of the last job may still be saying goodbye on it
    r = redis.Redis.from_url(valkey.url)
    with BackgroundWorker(r, ItemRunner(Engines(refiner, drafter))) as w:
        yield w
