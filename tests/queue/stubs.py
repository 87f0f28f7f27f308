"""Stub item handlers for the queue tests: no models, behaviour chosen by the item's body.

Items are ``/v1/repair`` lines (the smallest valid body: ``{"code": ...}``); the code text
steers the stub: ``"boom"`` raises a crash (a failed attempt), ``"bad"`` an item error.
Every run of an item is logged in the Redis list ``t:executions`` (``job:custom_id``), so a
test can tell how often an item ran apart from how often its result was written.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from workflows.queue import BatchItem, ItemError

EXECUTIONS = "t:executions"


def jsonl(n: int, code: str = "x = 1", prefix: str = "item") -> str:
    return "".join(json.dumps({"custom_id": f"{prefix}-{i}", "method": "POST", "url": "/v1/repair",
                               "body": {"code": code}}) + "\n" for i in range(n))


class StubHandler:
    """Sleeps ``delay_s`` per item in ``steps`` slices, calling the checkpoint between them."""

    def __init__(self, r: redis.Redis, delay_s: float = 0.0, steps: int = 4) -> None:
        self.r, self.delay_s, self.steps = r, delay_s, steps
        self.calls = 0

    def __call__(self, item: BatchItem, checkpoint: Any) -> dict[str, Any]:
        self.calls += 1
        self.r.rpush(EXECUTIONS, item.custom_id)
        code = item.body["code"]
        if code == "boom":
            raise RuntimeError("the stub crashed")
        if code == "bad":
            raise ItemError("the stub refuses this item")
        for _ in range(self.steps):
            checkpoint()
            time.sleep(self.delay_s / self.steps)
        return {"text": code.upper(), "custom_id": item.custom_id}


def executions(r: redis.Redis) -> list[str]:
    return [x.decode() for x in r.lrange(EXECUTIONS, 0, -1)]
