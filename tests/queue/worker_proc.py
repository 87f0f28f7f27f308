"""A worker process with the stub handler, lethal codes armed (see :mod:`tests.queue.stubs`):
``python -m tests.queue.worker_proc URL LEASE DELAY [MAX_ATTEMPTS]``."""

from __future__ import annotations

import logging
import sys

import redis

from tests.queue.stubs import StubHandler
from workflows.queue import JobQueue, Keys, Worker, WorkerConfig


def main() -> None:
    url, lease, delay = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    max_attempts = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    logging.basicConfig(level=logging.WARNING)
    r = redis.Redis.from_url(url)
    cfg = WorkerConfig(lease_s=lease, poll_s=0.05, backoff_s=0.05, block_s=0.2, max_attempts=max_attempts)
    worker = Worker(r, StubHandler(r, delay_s=delay, lethal=True), cfg, queue=JobQueue(r, Keys("t")))
    print("ready", worker.name, flush=True)
    worker.run(stop_when_empty=False)


if __name__ == "__main__":
    main()
