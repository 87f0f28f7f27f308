"""Stub item handlers for the queue tests: no models, behaviour chosen by the item's body.

Items are ``/v1/repair`` lines (the smallest valid body: ``{"code": ...}``); the code text
steers the stub: ``"boom"`` raises a crash (a failed run of the item), ``"bad"`` an item
error. Two codes only act in a worker process of its own (``lethal=True``, see
:mod:`tests.queue.worker_proc`): ``"die"`` SIGKILLs the process, ``"hang"`` never returns
(until the process is killed); in the test process ``"die"`` raises and ``"hang"`` is plain.
Every run of an item is logged in the Redis list ``t:executions`` (``custom_id``), so a test
can tell how often an item ran apart from how often its result was written.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import redis

from workflows.queue import BatchItem, ItemError, JobQueue

EXECUTIONS = "t:executions"


def jsonl(n: int, code: str = "x = 1", prefix: str = "item") -> str:
    return "".join(json.dumps({"custom_id": f"{prefix}-{i}", "method": "POST", "url": "/v1/repair",
                               "body": {"code": code}}) + "\n" for i in range(n))


class StubHandler:
    """Sleeps ``delay_s`` per item in ``steps`` slices, calling the checkpoint between them."""

    def __init__(self, r: redis.Redis, delay_s: float = 0.0, steps: int = 4, lethal: bool = False) -> None:
        self.r, self.delay_s, self.steps, self.lethal = r, delay_s, steps, lethal
        self.calls = 0

    def __call__(self, item: BatchItem, checkpoint: Any) -> dict[str, Any]:
        self.calls += 1
        self.r.rpush(EXECUTIONS, item.custom_id)
        code = item.body["code"]
        if code == "boom":
            raise RuntimeError("the stub crashed")
        if code == "bad":
            raise ItemError("the stub refuses this item")
        if code == "die":
            if not self.lethal:
                raise RuntimeError("the stub would have killed its process")
            os.kill(os.getpid(), signal.SIGKILL)
        while code == "hang" and self.lethal:  # until the test kills this process
            checkpoint()
            time.sleep(0.02)
        for _ in range(self.steps):
            checkpoint()
            time.sleep(self.delay_s / self.steps)
        out: dict[str, Any] = {"text": code.upper(), "custom_id": item.custom_id}
        if code.startswith("review "):  # a result with findings left for review, as compliance's are
            out["needs_review"] = [{"phrase": code}] * int(code.removeprefix("review "))
        return out


def executions(r: redis.Redis) -> list[str]:
    return [x.decode() for x in r.lrange(EXECUTIONS, 0, -1)]


def failed_runs(r: redis.Redis, queue: JobQueue, job_id: str) -> dict[int, int]:
    """Failed runs charged to a job's items, by item index (items never charged left out)."""
    h = r.hgetall(queue.keys.job(job_id))
    return {int(a[len(b"failures:"):]): int(b) for a, b in h.items() if a.startswith(b"failures:")}
