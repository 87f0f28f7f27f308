"""The worker: takes jobs from the stream and runs their items through a handler.

Delivery is at least once. A job is one stream entry read through the consumer group; it
stays pending (leased to this worker) until it is settled. While it runs, a lease thread
renews the lease every ``heartbeat_s`` (a guarded ``XCLAIM ... JUSTID`` that resets the
entry's idle time) and watches for a cancel. A worker that dies stops renewing; once the
entry has been idle for ``lease_s``, another worker reclaims it with ``XAUTOCLAIM`` and
goes on from the first item without an outcome: every item's outcome is written once
(``scripts.RECORD``), however often the job is delivered, and counts move only with a write.

Failures are charged to the item that was running, never to the job: before an item runs,
the job hash's ``running`` field names it (``"<index> <entry> <run token>"``). An item that
raises (anything but an item error) is charged one failed run and the job is retried after
``backoff_s * 2**(runs-1)`` (capped) through the delayed set; a delivery that reclaims the
entry of a worker that died finds that worker's ``running`` marker and charges its item
(``scripts.CHARGE``: once, however many deliveries see it). An item charged
``max_attempts`` times is spent: its error line goes to the errors file and an entry to the
dead-letter stream, and the job goes on with the next item, so one poison item never sinks
the items after it (the job still completes, ``request_counts.failed`` counting it).

The queue server going away is no one's fault: a lost connection, a timeout, or a server
that is loading its data or busy (:func:`server_unavailable`) charges nothing. The worker
keeps the delivery it was running, waits for the server, and resumes it itself (renewing
its lease first); and right after a server restart, when every entry looks idle because
idle time ran on while the server was down, no worker reclaims anything until the server
has been up for a lease, so the workers that were running jobs renew them first.
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
from workflows.queue.jobs import BatchItem, Job, JobStatus, error_line, findings_for_review, result_line
from workflows.queue.keys import Keys
from workflows.queue.webhook import post_webhook

log = logging.getLogger("remask.queue")

# replies of a server that is up but cannot serve now (a script running too long, a replica
# without its primary, a cluster resharding) and of one that lost its data (no group)
_UNAVAILABLE_REPLIES = ("BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "NOGROUP")
_UNAVAILABLE_ERRORS = (redis.ConnectionError, redis.TimeoutError,  # ConnectionError: LOADING too
                       redis.exceptions.ReadOnlyError, redis.exceptions.OutOfMemoryError)
DIED = "its worker stopped while running it (killed, or the process crashed)"


def server_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the queue server is away, not ready or out of room: nothing the
    job did. Such errors are waited out and retried, and charged to no item."""
    if isinstance(exc, _UNAVAILABLE_ERRORS):
        return True
    return isinstance(exc, redis.ResponseError) and str(exc).split(" ", 1)[0] in _UNAVAILABLE_REPLIES


@dataclass
class WorkerConfig:
    """How a worker leases, retries and waits. Times in seconds."""

    lease_s: float = 30.0  # a job whose worker is silent this long is reclaimed by another
    heartbeat_s: float | None = None  # lease renewal period; None: a third of the lease
    poll_s: float = 0.25  # how often a running job's state is read (cancel latency)
    max_attempts: int = 3  # failed runs of one item (it raised, or its worker died) before it is spent
    backoff_s: float = 2.0  # delay before the first retry; doubles with each failed run
    backoff_max_s: float = 300.0
    reconnect_max_s: float = 1.0  # longest wait between tries while the server is unavailable
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
        failing = False
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
                failing = False
            except redis.RedisError as exc:  # the server may come back: keep trying (said once)
                if not failing:
                    log.warning("lease of job %s: %s", self.job.id, exc)
                failing = True

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
        self.outages = 0  # times the server became unavailable to this worker
        self._last_prune = 0.0
        # the delivery being run (entry, job id, run token); kept when the server cuts it off
        self._held: tuple[str, str, str] | None = None

    def stop(self) -> None:
        """Finish at the next checkpoint; a running job goes back to the queue at once."""
        self.stopping.set()

    def run(self, stop_when_empty: bool = False) -> int:
        """Take and run jobs until :meth:`stop`; with ``stop_when_empty``, also end when no
        job is waiting, retrying or leased to anyone. Returns the deliveries handled."""
        handled = 0
        wait: float | None = None  # the pause before the next try while the server is unavailable
        while not self.stopping.is_set():
            try:
                if self.step(block_s=0.1 if stop_when_empty else self.config.block_s):
                    handled += 1
                elif stop_when_empty and self.empty():
                    break
                else:
                    self._maybe_prune()
            except redis.RedisError as exc:
                if not server_unavailable(exc):
                    raise
                if wait is None:
                    self.outages += 1
                    log.warning("worker %s: redis unavailable (%s); waiting for it", self.name, exc)
                # short pauses: the job this worker holds must be renewed well within a lease
                wait = min(2 * (wait or 0.025), self.config.reconnect_max_s, self.config.lease_s / 4)
                if "NOGROUP" in str(exc):
                    self._ensure_group()  # the server lost its data (or was flushed)
                self.stopping.wait(wait)
                continue
            if wait is not None:
                log.warning("worker %s: redis is back", self.name)
                wait = None
        if wait is None:  # else the server is away: each call would wait out the client's retries
            self._give_back_held()
            self._leave_group()
        return handled

    def step(self, block_s: float = 0.0) -> bool:
        """Handle at most one delivery (one the server cut off first, then a stalled one);
        False if there was none. Raises what the server raised when it is unavailable
        (:meth:`run` waits and calls again: the delivery is resumed then)."""
        if self._held is not None and self._resume():
            return True
        k = self.keys
        self.queue.scripts.release_due(keys=[k.delayed, k.stream], args=[time.time(), 100])
        claimed = self._reclaim()
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
        self._held = (_s(entry), job_id, uuid.uuid4().hex[:12])
        self._deliver(*self._held)
        self._held = None
        return True

    def _reclaim(self) -> Any:
        """The entry of a delivery whose worker has been silent for a lease, if any.

        Idle times run on while the server is down, so right after it (re)starts every
        entry looks stalled, its worker alive or not: nothing is reclaimed until the server
        has been up for a lease, time enough for live workers to renew what they hold."""
        try:
            if int(self.r.info("server")["uptime_in_seconds"]) < self.config.lease_s:
                return []
        except redis.ResponseError:  # INFO refused (some managed servers): reclaim by idle time alone
            pass
        k = self.keys
        reply: Any = self.r.xautoclaim(k.stream, k.group, self.name, int(self.config.lease_s * 1000), "0-0",
                                       count=1)
        return reply[1]

    def _resume(self) -> bool:
        """Go on with the delivery the server cut off, if this worker still holds its entry
        (the server kept its data and no one reclaimed it); True if it did."""
        assert self._held is not None
        entry, job_id, token = self._held
        k = self.keys
        # renewing resets the entry's idle time, which ran on while the server was away
        if self.queue.scripts.renew(keys=[k.stream], args=[k.group, self.name, entry]):
            log.warning("worker %s resumes job %s", self.name, job_id)
            self._deliver(entry, job_id, token, resumed=True)
            self._held = None
            return True
        self._held = None
        return False

    def empty(self) -> bool:
        """No job waits in the stream (new or leased) or in the delayed set."""
        k = self.keys
        return int(self.r.xlen(k.stream)) == 0 and int(self.r.zcard(k.delayed)) == 0

    # -- one delivery -----------------------------------------------------------------

    def _deliver(self, entry: str, job_id: str, token: str, resumed: bool = False) -> None:
        """Run one delivery of a job; ``token`` names this run of it (``resumed``: the same
        delivery again, after the server cut it off: not a new attempt, nothing charged)."""
        q, cfg = self.queue, self.config
        job = q.load(job_id)
        if job is None:
            self._settle(entry, job_id, "ack")
            return
        if self._ended_unrun(entry, job):
            return
        attempt = job.attempts if resumed else int(self.r.hincrby(self.keys.job(job_id), "attempts", 1))
        if q.transition(job_id, JobStatus.IN_PROGRESS, JobStatus.QUEUED, JobStatus.IN_PROGRESS) is None:
            self._settle(entry, job_id, "ack")  # cancelled at once in the meantime
            return
        lease = _Lease(self, entry, job)
        lease.start()
        try:
            self._charge_dead_run(job, entry, token)  # a no-op on resuming: the marker is this run's
            self._run_items(job, lease, f"{entry} {token}")
        except JobCancelled:
            self._end(entry, job, JobStatus.CANCELLED, JobStatus.CANCELLING)
        except JobExpired:
            self._end(entry, job, JobStatus.EXPIRED, JobStatus.IN_PROGRESS, JobStatus.CANCELLING)
        except LeaseLost:
            log.warning("worker %s lost the lease of job %s; another worker has it", self.name, job_id)
        except WorkerStopping:
            self._release(entry, job_id, counted=not resumed)
        except _ItemFailed as exc:
            self._retry_failed(entry, job, lease, exc)
        except Exception as exc:
            if server_unavailable(exc):
                raise  # kept in self._held: run() waits for the server and resumes it
            # outside any item (a bug, a damaged key): no item to charge; the completion
            # window bounds how long such a job keeps coming back
            log.exception("job %s: delivery %d failed outside its items", job_id, attempt)
            self._settle(entry, job_id, "retry", due=time.time() + cfg.backoff(attempt),
                         detail=f"{type(exc).__name__}: {exc}")
        else:
            self._finish(entry, job)
        finally:
            lease.done.set()
        self.jobs_run += 1

    def _ended_unrun(self, entry: str, job: Job) -> bool:
        """End a delivery that has nothing to run (the job is final, being cancelled, finalizing
        or expired); False when the job is to run."""
        if job.status.final:
            self._settle(entry, job.id, "ack")
        elif job.status is JobStatus.CANCELLING:
            self._end(entry, job, JobStatus.CANCELLED, JobStatus.CANCELLING)
        elif job.status is JobStatus.FINALIZING:  # a delivery ran every item, then stopped
            self._end(entry, job, JobStatus.COMPLETED, JobStatus.FINALIZING)
        elif job.expires_at is not None and time.time() > job.expires_at:
            self._end(entry, job, JobStatus.EXPIRED, JobStatus.QUEUED, JobStatus.IN_PROGRESS)
        else:
            return False
        return True

    def _retry_failed(self, entry: str, job: Job, lease: _Lease, exc: _ItemFailed) -> None:
        """An item's run failed: the job comes back after a backoff, unless it was cancelled meanwhile."""
        if lease.cancelled:  # its owner no longer wants it: no point retrying
            self._end(entry, job, JobStatus.CANCELLED, JobStatus.CANCELLING)
        else:
            self._settle(entry, job.id, "retry", due=time.time() + self.config.backoff(exc.runs), detail=exc.error)

    def _finish(self, entry: str, job: Job) -> None:
        """Every item has an outcome: the job completes, or stays cancelled if that came first."""
        if self.queue.transition(job.id, JobStatus.FINALIZING, JobStatus.IN_PROGRESS):
            self._end(entry, job, JobStatus.COMPLETED, JobStatus.FINALIZING)
        elif self.queue.transition(job.id, JobStatus.CANCELLED, JobStatus.CANCELLING):
            self._end(entry, job, None)  # cancelled after its last item: kept as cancelled
        else:
            self._settle(entry, job.id, "ack")  # another delivery of it ended it

    def _run_items(self, job: Job, lease: _Lease, run: str) -> None:
        """Run the items without an outcome, in order; ``run`` is ``"<entry> <token>"``."""
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
            marker = f"{index} {run}"  # a delivery that finds it after this one died charges this item
            self.r.hset(k.job(job.id), mapping={"current_item": item.custom_id, "running": marker})
            review = 0
            try:
                body = self.handler(item, lease.check)
                line, outcome, review = result_line(job.id, item, body), "completed", findings_for_review(body)
            except ItemError as exc:
                line, outcome = error_line(job.id, item, exc.code, str(exc)), "failed"
            except JobInterrupted:
                raise
            except (ValueError, UnicodeError) as exc:  # bad input found by the pipeline
                line, outcome = error_line(job.id, item, "invalid_request", str(exc)), "failed"
            except Exception as exc:
                if server_unavailable(exc):
                    raise  # not the item's fault
                err = f"{type(exc).__name__}: {exc}"
                runs = self._charge(job, item, marker, err)
                if runs == 0:  # the marker is gone: another delivery reclaimed the job
                    raise LeaseLost() from exc
                if runs > 0:
                    log.warning("job %s: item %s failed (%d of %d): %s", job.id, item.custom_id, runs,
                                self.config.max_attempts, err)
                    raise _ItemFailed(runs, err) from exc
                continue  # spent: in the errors file and the dead letters; the rest goes on
            self.queue.scripts.record(keys=[k.results(job.id), k.errors(job.id), k.job(job.id)],
                                      args=[index, outcome, line, time.time(), review])
        self.r.hdel(k.job(job.id), "current_item", "running")

    # -- charging failed runs to items ------------------------------------------------

    def _charge(self, job: Job, item: BatchItem, marker: str, error: str) -> int:
        """Charge a failed run to ``item`` (see ``scripts.CHARGE``): its failed runs so far,
        negated when this one spent it, 0 when the run was already accounted for."""
        k, n = self.keys, self.config.max_attempts
        line = error_line(job.id, item, "item_failed", f"failed {n} times; last: {error}")
        runs = int(self.queue.scripts.charge(keys=[k.job(job.id), k.results(job.id), k.errors(job.id), k.dead],
                                             args=[job.id, item.index, marker, n, line, error, item.custom_id,
                                                   int(time.time())]))
        if runs < 0:
            log.error("job %s: item %s spent after %d failed runs: %s", job.id, item.custom_id, -runs, error)
        return runs

    def _charge_dead_run(self, job: Job, entry: str, token: str) -> None:
        """Charge the item a dead worker was running when this delivery took over its entry.

        Only a marker of this very entry by another run counts: a marker of another entry
        belongs to a duplicate delivery of the job that may still be running."""
        k = self.keys
        marker = self.r.hget(k.job(job.id), "running")
        if marker is None:
            return
        parts = _s(marker).split(" ")
        if len(parts) != 3 or parts[1] != entry or parts[2] == token:
            return
        raw = self.r.lindex(k.items(job.id), int(parts[0]))
        if raw is not None:
            item = BatchItem.from_json(int(parts[0]), raw)
            runs = self._charge(job, item, _s(marker), DIED)
            if runs > 0:
                log.warning("job %s: item %s charged a failed run (%d of %d): %s", job.id, item.custom_id, runs,
                            self.config.max_attempts, DIED)

    # -- settling ---------------------------------------------------------------------

    def _settle(self, entry: str, job_id: str, action: str, due: float = 0.0, detail: str = "") -> None:
        """``scripts.SETTLE``; ``detail``: the error of a retry, "counted" or "" for a release."""
        k = self.keys
        self.queue.scripts.settle(keys=[k.job(job_id), k.states, k.stream, k.delayed],
                                  args=[k.group, entry, job_id, action, due, detail])

    def _end(self, entry: str, job: Job, to: JobStatus | None, *sources: JobStatus) -> None:
        """Move the job to a final state (``to`` None: it already is), acknowledge, notify."""
        # if the state moved meanwhile, a cancel still has to end; anything else is done
        if (to is not None and self.queue.transition(job.id, to, *sources) is None
                and self.queue.transition(job.id, JobStatus.CANCELLED, JobStatus.CANCELLING) is None):
            self._settle(entry, job.id, "ack")
            return
        self.r.hdel(self.keys.job(job.id), "current_item", "running")
        self.queue.expire(job.id)
        self._settle(entry, job.id, "ack")
        self._notify(job.id)

    def _release(self, entry: str, job_id: str, counted: bool = True) -> None:
        """Give a job back on a graceful stop: the delivery does not count as an attempt
        (``counted``: it was counted), the item that was running is not charged, and the job
        goes back to the stream at once for the next worker."""
        self._settle(entry, job_id, "release", detail="counted" if counted else "")

    def _give_back_held(self) -> None:
        """On stopping with a delivery the server cut off: give it back if the server is up
        again (else it is reclaimed after a lease, its item charged as a worker's death)."""
        if self._held is None:
            return
        entry, job_id, _ = self._held
        self._held = None
        try:
            if self.queue.scripts.renew(keys=[self.keys.stream], args=[self.keys.group, self.name, entry]):
                self._release(entry, job_id, counted=True)
        except redis.RedisError as exc:
            log.warning("worker %s could not give job %s back: %s", self.name, job_id, exc)

    def _notify(self, job_id: str) -> None:
        job = self.queue.load(job_id)
        if job is not None and job.webhook_url and self.r.hsetnx(self.keys.job(job_id), "webhook_sent", 1):
            post_webhook(job.webhook_url, job.to_dict(), self.config.webhook_timeout_s)

    # -- housekeeping -----------------------------------------------------------------

    def _ensure_group(self) -> None:
        try:
            self.queue.ensure_group()
        except redis.RedisError:
            pass  # still unavailable: run() tries again

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


class _ItemFailed(Exception):
    """An item raised and was charged a failed run, not its last: retry the job later."""

    def __init__(self, runs: int, error: str) -> None:
        super().__init__(error)
        self.runs, self.error = runs, error


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
