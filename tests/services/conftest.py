"""HTTP API fixtures: tiny models, and the app served by uvicorn on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Self

import httpx
import pytest
import redis
import torch
import uvicorn
from fastapi import FastAPI
from transformers import LlamaConfig, LlamaForCausalLM

from drafter import Drafter
from refiner.text import tiny_text_refiner
from services.api import LocalEngine, Settings, build_app
from services.api.settings import Limits
from tests.conftest import build_tiny_tokenizer
from workflows.queue import EmbeddedValkey

# small limits, so every limit can be crossed with a small request
TEST_LIMITS = Limits(max_body_bytes=4096, max_text_chars=1500, max_spans=4, max_tokens=32, max_steps=16)


class LiveServer:
    """uvicorn in a background thread, on a socket bound before it starts (no port race)."""

    def __init__(self, app: FastAPI) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # log_config=None: leave logging alone, so records reach pytest's caplog
        config = uvicorn.Config(app, log_config=None, lifespan="off", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture(scope="session")
def api_models() -> tuple[Any, Drafter]:
    """(refiner, drafter): random tiny models over the tiny tokenizer; fast, deterministic."""
    tok = build_tiny_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                      initializer_range=0.5, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    drafter = Drafter(LlamaForCausalLM(cfg).eval(), tok, name="tiny-drafter")
    return tiny_text_refiner(tok, seed=0), drafter


def serve(models: tuple[Any, Drafter], settings: Settings, **engine_kw: Any) -> tuple[LiveServer, LocalEngine]:
    engine = LocalEngine(models[0], models[1], **engine_kw)
    return LiveServer(build_app(engine, settings)), engine


@pytest.fixture(scope="session")
def api_url(api_models: tuple[Any, Drafter]) -> Iterator[str]:
    """Base URL of an app without keys and with :data:`TEST_LIMITS`."""
    server, engine = serve(api_models, Settings(api_keys=[], limits=TEST_LIMITS))
    with server:
        yield server.url
    engine.close()


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """One client for all tests: building a client (its TLS context) costs most of a second."""
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def r(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    """A client of a Valkey server of the test module's own (the job routes' queue)."""
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"))
    server.start()
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()
    server.stop()
