"""The worker: takes jobs from the stream and runs their items through a handler.

Delivery is at least once. A job is one stream entry read through the consumer group; it
stays pending (leased to this worker) until it is settled. While it runs, a lease thread
renews the lease every ``heartbeat_s`` (a guarded ``XCLAIM ... JUSTID`` that resets the
entry's idle time) and watches for a cancel. A worker that dies stops renewing; once the
entry has been idle for ``lease_s``, another worker reclaims it with ``XAUTOCLAIM`` and
goes on from the first item without an outcome: every item's outcome is written once
(``scripts.RECORD``), however often the job is delivered, and counts move only with a write.

A failed attempt (the handler raised something other than an item error) is retried after
``backoff_s * 2**(attempt-1)`` (capped) through the delayed set; a delivery that finds the
job's attempts used up (``max_attempts``, counting workers that died on it) moves it to the
dead-letter stream and marks it failed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from workflows.queue.client import JobQueue, _s
from workflows.queue.handlers import (
    ItemError,
    ItemHandler,
    JobCancelled,
    JobExpired,
    JobInterrupted,
    LeaseLost,
    WorkerStopping,
)
from workflows.queue.jobs import BatchItem, Job, JobStatus, error_line, result_line
from workflows.queue.keys import Keys
from workflows.queue.webhook import post_webhook

log = logging.getLogger("remask.queue")


@dataclass
class WorkerConfig:
    """How a worker leases, retries and waits. Times in seconds."""

    lease_s: float = 30.0  # a job whose worker is silent this long is reclaimed by another
    heartbeat_s: float | None = None  # lease renewal period; None: a third of the lease
    poll_s: float = 0.25  # how often a running job's state is read (cancel latency)
    max_attempts: int = 3  # deliveries that may start a job before it is dead-lettered
    backoff_s: float = 2.0  # delay before the first retry; doubles with each attempt
    backoff_max_s: float = 300.0
    block_s: float = 2.0  # how long one read waits for a new job
    webhook_timeout_s: float = 5.0
    prune_s: float = 60.0  # how often consumers of dead workers are removed from the group

    @property
    def heartbeat(self) -> float:
        return self.heartbeat_s or self.lease_s / 3

    def backoff(self, attempt: int) -> float:
        return float(min(self.backoff_max_s, self.backoff_s * 2 ** max(0, attempt - 1)))


class _Lease(threading.Thread):
    """Keeps one delivery's lease alive and watches the job's state while it runs."""

    def __init__(self, worker: Worker, entry: str, job: Job) -> None:
        super().__init__(name=f"lease-{job.id}", daemon=True)
        self.w, self.entry, self.job = worker, entry, job
        self.done = threading.Event()
        self.lost = self.cancelled = False

    def run(self) -> None:
        w, k = self.w, self.w.keys
        last_renewal = time.monotonic()
        while not self.done.wait(w.config.poll_s):
            try:
                if time.monotonic() - last_renewal >= w.config.heartbeat:
                    if not w.queue.scripts.renew(keys=[k.stream], args=[k.group, w.name, self.entry]):
                        self.lost = True
                        return
                    last_renewal = time.monotonic()
                status = w.r.hget(k.job(self.job.id), "status")
                if status is not None and _s(status) in (JobStatus.CANCELLING.value, JobStatus.CANCELLED.value):
                    self.cancelled = True
            except redis.RedisError as exc:  # the server may come back before the lease ends
                log.warning("lease of job %s: %s", self.job.id, exc)

    def check(self) -> None:
        """The handler's checkpoint: raise if the job must stop now."""
        if self.w.stopping.is_set():
            raise WorkerStopping()
        if self.lost:
            raise LeaseLost()
        if self.cancelled:
            raise JobCancelled()
        if self.job.expires_at is not None and time.time() > self.job.expires_at:
            raise JobExpired()


class Worker:
    """Runs jobs one at a time. ``run()`` loops; ``stop()`` (any thread) ends it gracefully.

    ``handler`` runs one item (:class:`workflows.queue.handlers.ItemHandler`); ``queue``
    may be given to share its settings (retention), else one is built over ``r``.
    """

    def __init__(self, r: redis.Redis, handler: ItemHandler, config: WorkerConfig | None = None,
                 keys: Keys | None = None, name: str | None = None, queue: JobQueue | None = None) -> None:
        self.r = r
        self.handler = handler
        self.config = config or WorkerConfig()
        self.queue = queue or JobQueue(r, keys)
        self.keys = self.queue.keys
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()
        self.jobs_run = 0
        self._last_prune = 0.0

    def stop(self) -> None:
        """Finish at the next checkpoint; a running job goes back to the queue at once."""
        self.stopping.set()

    def run(self, stop_when_empty: bool = False) -> int:
        """Take and run jobs until :meth:`stop`; with ``stop_when_empty``, also end when no
        job is waiting, retrying or leased to anyone. Returns the deliveries handled."""
        handled = 0
        while not self.stopping.is_set():
            try:
                if self.step(block_s=0.1 if stop_when_empty else self.config.block_s):
                    handled += 1
                elif stop_when_empty and self.empty():
                    break
                else:
                    self._maybe_prune()
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self.queue.ensure_group()  # the server lost its data (or was flushed)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("worker %s: redis unavailable (%s); retrying", self.name, exc)
                self.stopping.wait(0.5)
        self._leave_group()
        return handled

    def step(self, block_s: float = 0.0) -> bool:
        """Handle at most one delivery (a stalled one first); False if there was none."""
        k = self.keys
        self.queue.scripts.release_due(keys=[k.delayed, k.stream], args=[time.time(), 100])
        ms = int(self.config.lease_s * 1000)
        reply: Any = self.r.xautoclaim(k.stream, k.group, self.name, ms, "0-0", count=1)
        claimed = reply[1]
        if claimed:
            entry, fields = claimed[0]
            log.info("worker %s reclaimed stalled entry %s", self.name, _s(entry))
        else:
            got: Any = self.r.xreadgroup(k.group, self.name, {k.stream: ">"}, count=1,
                                    block=max(1, int(block_s * 1000)) if block_s else None)
            if not got or not got[0][1]:
                return False
            entry, fields = got[0][1][0]
        job_id = _s(fields.get(b"job", fields.get("job", b"")))
        self._deliver(_s(entry), job_id)
        return True

    def empty(self) -> bool:
        """No job waits in the stream (new or leased) or in the delayed set."""
        k = self.keys
        return int(self.r.xlen(k.stream)) == 0 and int(self.r.zcard(k.delayed)) == 0

    # -- one delivery -----------------------------------------------------------------

    def _deliver(self, entry: str, job_id: str) -> None:
        q, cfg = self.queue, self.config
        job = q.load(job_id)
        if job is None or job.status.final:
            self._settle(entry, job_id, "ack")
            return
        if job.status is JobStatus.CANCELLING:
            self._end(entry, job, JobStatus.CANCELLED, JobStatus.CANCELLING)
            return
        if job.expires_at is not None and time.time() > job.expires_at:
            self._end(entry, job, JobStatus.EXPIRED, JobStatus.QUEUED, JobStatus.IN_PROGRESS)
            return
        if job.attempts >= cfg.max_attempts:
            self._dead(entry, job, f"{job.attempts} attempts did not finish the job"
                                   f"{': ' + job.error if job.error else ''}")
            return
        attempt = int(self.r.hincrby(self.keys.job(job_id), "attempts", 1))
        if q.transition(job_id, JobStatus.IN_PROGRESS, JobStatus.QUEUED, JobStatus.IN_PROGRESS) is None:
            self._settle(entry, job_id, "ack")  # cancelled at once in the meantime
            return
        lease = _Lease(self, entry, job)
        lease.start()
        try:
            self._run_items(job, lease)
        except JobCancelled:
            self._end(entry, job, JobStatus.CANCELLED, JobStatus.CANCELLING)
        except JobExpired:
            self._end(entry, job, JobStatus.EXPIRED, JobStatus.IN_PROGRESS, JobStatus.CANCELLING)
        except LeaseLost:
            log.warning("worker %s lost the lease of job %s; another worker has it", self.name, job_id)
        except WorkerStopping:
            self._release(entry, job_id)
        except (redis.ConnectionError, redis.TimeoutError):
            raise  # the entry stays leased; it is reclaimed once the lease runs out
        except Exception as exc:  # noqa: BLE001 (any crash is a failed attempt: retry, or dead-letter)
            err = f"{type(exc).__name__}: {exc}"
            log.warning("job %s attempt %d failed: %s", job_id, attempt, err)
            if lease.cancelled:  # its owner no longer wants it: no point retrying
                self._end(entry, job, JobStatus.CANCELLED, JobStatus.CANCELLING)
            elif attempt >= cfg.max_attempts:
                self._dead(entry, job, f"{attempt} attempts failed; last: {err}")
            else:
                self._settle(entry, job_id, "retry", due=time.time() + cfg.backoff(attempt), error=err)
        else:
            if q.transition(job_id, JobStatus.FINALIZING, JobStatus.IN_PROGRESS):
                self._end(entry, job, JobStatus.COMPLETED, JobStatus.FINALIZING)
            elif q.transition(job_id, JobStatus.CANCELLED, JobStatus.CANCELLING):
                self._end(entry, job, None)  # cancelled after its last item: kept as cancelled
            else:
                self._settle(entry, job_id, "ack")  # another delivery of it ended it
        finally:
            lease.done.set()
        self.jobs_run += 1

    def _run_items(self, job: Job, lease: _Lease) -> None:
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        pipe.lrange(k.items(job.id), 0, -1)
        pipe.hkeys(k.results(job.id))
        pipe.hkeys(k.errors(job.id))
        raw_items, done_ok, done_err = pipe.execute()
        done = {int(_s(i)) for i in done_ok} | {int(_s(i)) for i in done_err}
        for index, raw in enumerate(raw_items):
            if index in done:
                continue
            lease.check()
            item = BatchItem.from_json(index, raw)
            self.r.hset(k.job(job.id), "current_item", item.custom_id)
            try:
                line, outcome = result_line(job.id, item, self.handler(item, lease.check)), "completed"
            except ItemError as exc:
                line, outcome = error_line(job.id, item, exc.code, str(exc)), "failed"
            except JobInterrupted:
                raise
            except (ValueError, UnicodeError) as exc:  # bad input found by the pipeline
                line, outcome = error_line(job.id, item, "invalid_request", str(exc)), "failed"
            self.queue.scripts.record(keys=[k.results(job.id), k.errors(job.id), k.job(job.id)],
                                      args=[index, outcome, line, time.time()])
        self.r.hdel(k.job(job.id), "current_item")

    # -- settling ---------------------------------------------------------------------

    def _settle(self, entry: str, job_id: str, action: str, due: float = 0.0, error: str = "") -> None:
        k = self.keys
        self.queue.scripts.settle(keys=[k.job(job_id), k.states, k.stream, k.delayed, k.dead],
                                  args=[k.group, entry, job_id, action, int(time.time()), due, error])

    def _end(self, entry: str, job: Job, to: JobStatus | None, *sources: JobStatus) -> None:
        """Move the job to a final state (``to`` None: it already is), acknowledge, notify."""
        # if the state moved meanwhile, a cancel still has to end; anything else is done
        if (to is not None and self.queue.transition(job.id, to, *sources) is None
                and self.queue.transition(job.id, JobStatus.CANCELLED, JobStatus.CANCELLING) is None):
            self._settle(entry, job.id, "ack")
            return
        self.r.hdel(self.keys.job(job.id), "current_item")
        self.queue.expire(job.id)
        self._settle(entry, job.id, "ack")
        self._notify(job.id)

    def _dead(self, entry: str, job: Job, error: str) -> None:
        log.error("job %s dead-lettered: %s", job.id, error)
        self._settle(entry, job.id, "dead", error=error)
        self.queue.expire(job.id)
        self._notify(job.id)

    def _release(self, entry: str, job_id: str) -> None:
        """Give a job back on a graceful stop: the attempt does not count, and the entry is
        made to look stalled so the next worker reclaims it at once."""
        k = self.keys
        self.r.hincrby(k.job(job_id), "attempts", -1)
        self.r.xclaim(k.stream, k.group, self.name, 0, [entry], idle=int(self.config.lease_s * 1000) + 1,
                      justid=True)

    def _notify(self, job_id: str) -> None:
        job = self.queue.load(job_id)
        if job is not None and job.webhook_url and self.r.hsetnx(self.keys.job(job_id), "webhook_sent", 1):
            post_webhook(job.webhook_url, job.to_dict(), self.config.webhook_timeout_s)

    # -- housekeeping -----------------------------------------------------------------

    def _maybe_prune(self) -> None:
        """Remove consumers of dead workers (nothing pending, silent for long) from the group."""
        now = time.monotonic()
        if now - self._last_prune < self.config.prune_s:
            return
        self._last_prune = now
        idle_ms = int(max(10 * self.config.lease_s, self.config.prune_s) * 1000)
        for c in self.r.xinfo_consumers(self.keys.stream, self.keys.group):
            name = _s(c["name"])
            if name != self.name and int(c["pending"]) == 0 and int(c["idle"]) > idle_ms:
                self.r.xgroup_delconsumer(self.keys.stream, self.keys.group, name)

    def _leave_group(self) -> None:
        try:
            pending = self.r.xpending_range(self.keys.stream, self.keys.group, "-", "+", 1, consumername=self.name)
            if not pending:
                self.r.xgroup_delconsumer(self.keys.stream, self.keys.group, self.name)
        except redis.RedisError:
            pass


def run_worker(r: redis.Redis, handler: ItemHandler, config: WorkerConfig | None = None,
               keys: Keys | None = None, stop_when_empty: bool = False, **queue_options: Any) -> int:
    """Build a worker and run it (SIGTERM/SIGINT stop it gracefully when on the main thread)."""
    import signal

    worker = Worker(r, handler, config, queue=JobQueue(r, keys, **queue_options))
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: worker.stop())
    try:
        return worker.run(stop_when_empty=stop_when_empty)
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)
