"""The in-process engine: :class:`~workflows.engine.EngineClient` over models in this process.

The HTTP app (``remask serve-local``) holds one over both models; each Serve replica holds one
over the model it serves. It stays here, beside its hosts, rather than in the seam: it is a
serving concern (threads, locks, admission) and it checks a model's health with a forward pass.

``LocalEngine`` runs each blocking pipeline (:class:`~workflows.engine.Pipelines`) in a worker
thread. The models are not thread-safe, so each model has a lock and a request holds the locks
of the models it uses (drafter before refiner, so two requests never wait on each other
crosswise): a drafter-only request and a refiner-only request run side by side, two refiner
requests one after the other. Admission is bounded: over ``max_pending`` requests in the
engine the next one is refused at once (:class:`QueueFull`), and one that waits longer than
``queue_timeout_s`` for its models gives up (:class:`QueueTimeout`): overload answers, it
never hangs.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import torch

from workflows.audit import AuditRecord
from workflows.compliance import ComplianceParams, ComplianceResult
from workflows.engine import (
    DRAFTER,
    REFINER,
    EngineEvent,
    Finished,
    Outcome,
    Pipelines,
    QueueFull,
    QueueTimeout,
    Snapshot,
    StreamCancelled,
    TokenDelta,
    infill_needs,
    revise_needs,
)
from workflows.engine.pipelines import compliance_needs
from workflows.infill import (
    InfillParams,
    InfillResult,
    InfillToken,
    check_context,
    draft_prompt,
    generation_params,
)
from workflows.repair import RepairParams, RepairResult
from workflows.revise import ReviseParams, ReviseResult
from workflows.rules import RuleSet

R = TypeVar("R")


Emit = Callable[[EngineEvent], None]


def _snapshots(emit: Emit | None) -> Callable[[str], None] | None:
    """A pipeline's ``on_snapshot`` that emits each step as a :class:`Snapshot` (None: not streamed)."""
    return (lambda text: emit(Snapshot(text))) if emit is not None else None


class LocalEngine:
    """:class:`EngineClient` over a refiner and an optional drafter in this process.

    A Serve replica holds one too, over the one model it serves (``refiner`` or ``drafter``
    may then be None), and runs its batched calls through :meth:`submit`.
    """

    def __init__(self, refiner: Any | None, drafter: Any | None = None, *, max_pending: int = 16,
                 queue_timeout_s: float = 30.0, retry_after_s: float = 1.0) -> None:
        self.pipelines = Pipelines(refiner, drafter)  # refuses an engine with no model
        self.max_pending = max_pending
        self.queue_timeout_s = queue_timeout_s
        self.retry_after_s = retry_after_s
        self._locks = {DRAFTER: asyncio.Lock(), REFINER: asyncio.Lock()}
        # one thread per model is all the locks ever let run at once
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="remask-engine")
        self._pending = 0
        self._waiting = 0

    def queue_depth(self) -> int:
        return self._waiting

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- admission and locking ------------------------------------------------------------

    async def _run(self, needs: tuple[str, ...], fn: Callable[[], R],
                   cancel: threading.Event) -> tuple[R, float, float]:
        """Run ``fn`` in a worker thread holding the locks of ``needs``; -> (result, queue_ms, run_ms).

        The work is a task of its own, shielded from the caller: a caller that goes away
        sets ``cancel`` (streams stop at the next step) but the locks stay held until the
        thread is really done with the model.
        """
        if self._pending >= self.max_pending:
            raise QueueFull(f"the engine has {self._pending} requests in hand; retry later", self.retry_after_s)
        self._pending += 1
        task = asyncio.ensure_future(self._locked(needs, fn))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # never "exception not retrieved"
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            cancel.set()
            raise

    async def _locked(self, needs: tuple[str, ...], fn: Callable[[], R]) -> tuple[R, float, float]:
        t0 = time.perf_counter()
        try:
            self._waiting += 1
            try:
                await asyncio.wait_for(self._acquire(needs), self.queue_timeout_s)
            except TimeoutError:
                raise QueueTimeout(f"waited {self.queue_timeout_s:g}s for a model; retry later",
                                   self.retry_after_s) from None
            finally:
                self._waiting -= 1
            t1 = time.perf_counter()
            try:
                result = await asyncio.get_running_loop().run_in_executor(self._pool, fn)
            finally:
                for name in reversed(needs):
                    self._locks[name].release()
            return result, 1000 * (t1 - t0), 1000 * (time.perf_counter() - t1)
        finally:
            self._pending -= 1

    async def _acquire(self, needs: tuple[str, ...]) -> None:
        held: list[str] = []
        try:
            for name in needs:
                await self._locks[name].acquire()
                held.append(name)
        except BaseException:
            for name in reversed(held):
                self._locks[name].release()
            raise

    async def submit(self, needs: tuple[str, ...], fn: Callable[[], R]) -> R:
        """Run ``fn`` in a worker thread holding the locks of ``needs`` (admission as for any request)."""
        out, _, _ = await self._run(needs, fn, threading.Event())
        return out

    async def _call(self, needs: tuple[str, ...], fn: Callable[[], Outcome[R]]) -> Outcome[R]:
        out, queue_ms, run_ms = await self._run(needs, fn, threading.Event())
        out.queue_ms, out.run_ms = queue_ms, run_ms
        return out

    async def stream(self, needs: tuple[str, ...], fn: Callable[[Emit], Outcome[Any]]) -> AsyncIterator[EngineEvent]:
        """Run ``fn(emit)`` holding the locks of ``needs``; yield what it emits, then :class:`Finished`."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[EngineEvent] = asyncio.Queue()
        cancel = threading.Event()

        def emit(ev: EngineEvent) -> None:  # called in the worker thread
            if cancel.is_set():
                raise StreamCancelled("the stream's reader went away")
            loop.call_soon_threadsafe(events.put_nowait, ev)

        run = asyncio.ensure_future(self._run(needs, lambda: fn(emit), cancel))
        getter: asyncio.Future[EngineEvent] | None = None
        try:
            while True:
                getter = asyncio.ensure_future(events.get())
                done, _ = await asyncio.wait({getter, run}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                    continue
                getter.cancel()
                while not events.empty():  # events scheduled before the thread returned
                    yield events.get_nowait()
                out, queue_ms, run_ms = run.result()
                out.queue_ms, out.run_ms = queue_ms, run_ms
                yield Finished(out)
                return
        finally:
            cancel.set()
            for fut in (getter, run):
                if fut is not None and not fut.done():
                    fut.cancel()

    # --- infill -----------------------------------------------------------------------------

    def _infill_sync(self, prefix: str, suffix: str, params: InfillParams, emit: Emit | None) -> Outcome[InfillResult]:
        if params.mode == "ar" and emit is not None and not params.candidates:  # candidates: one ranked answer
            res = self._ar_stream(prefix, suffix, params, emit)
            return Outcome(res, self.pipelines.count(prefix, suffix), len(res.tokens))
        return self.pipelines.infill(prefix, suffix, params, on_snapshot=_snapshots(emit))

    def _ar_stream(self, prefix: str, suffix: str, params: InfillParams, emit: Emit) -> InfillResult:
        """The drafter's half of :func:`workflows.infill.infill` in AR mode, token by token.

        Same context trimming, prompt and generation parameters as the pipeline, so the
        streamed tokens add up to exactly the non-streamed answer.
        """
        d = self.pipelines.drafter
        check_context(prefix, suffix)
        if d is None:
            raise ValueError("mode 'ar' needs a drafter")
        at = len(prefix)
        audit = AuditRecord.start("infill", params, self.pipelines.refiner, d)
        prompt = draft_prompt(prefix, suffix, params, d).prompt
        tokens: list[InfillToken] = []
        with audit.timed("draft"):
            stream = d.stream(prompt.ids, generation_params(params), stop_ids=prompt.stop_ids)
            for tok in stream:
                conf = math.exp(tok.logprob) if math.isfinite(tok.logprob) else 0.0
                tokens.append(InfillToken(tok.text, conf, False))
                if tok.text:  # a token holding part of a UTF-8 character adds no text yet
                    emit(TokenDelta(tok.text, conf))
        text = "".join(t.text for t in tokens)
        return InfillResult(text, at, at, "ar", tokens, draft=text, audit=audit)

    async def infill(self, prefix: str, suffix: str, params: InfillParams) -> Outcome[InfillResult]:
        return await self._call(infill_needs(params), lambda: self._infill_sync(prefix, suffix, params, None))

    def stream_infill(self, prefix: str, suffix: str, params: InfillParams) -> AsyncIterator[EngineEvent]:
        return self.stream(infill_needs(params), lambda emit: self._infill_sync(prefix, suffix, params, emit))

    # --- revise, repair, compliance --------------------------------------------------------

    async def revise(self, text: str, params: ReviseParams, scorer: Any | None = None) -> Outcome[ReviseResult]:
        """``scorer``: stands in for the drafter where it scores the text (a Serve replica passes
        the drafter deployment's scores this way)."""
        return await self._call(revise_needs(params, scorer is not None),
                                lambda: self.pipelines.revise(text, params, scorer=scorer))

    def stream_revise(self, text: str, params: ReviseParams, scorer: Any | None = None) -> AsyncIterator[EngineEvent]:
        return self.stream(revise_needs(params, scorer is not None),
                            lambda emit: self.pipelines.revise(text, params, _snapshots(emit), scorer))

    async def repair(self, code: str, params: RepairParams) -> Outcome[RepairResult]:
        return await self._call((REFINER,), lambda: self.pipelines.repair(code, params))

    async def compliance(self, text: str, rules: RuleSet, params: ComplianceParams) -> Outcome[ComplianceResult]:
        needs = compliance_needs(self.pipelines.drafter is not None)
        return await self._call(needs, lambda: self.pipelines.compliance(text, rules, params))

    # --- health -----------------------------------------------------------------------------

    def _health_sync(self) -> Outcome[None]:
        refiner, drafter = self.pipelines.refiner, self.pipelines.drafter
        if refiner is not None:
            ids, _ = refiner.encode("ok")
            x = torch.tensor([ids])
            with torch.inference_mode():
                logits = refiner.predictor(x, torch.ones_like(x))
            if logits.shape[:2] != x.shape or not bool(torch.isfinite(logits).all()):
                raise RuntimeError("the refiner's forward pass gave no finite logits")
        if drafter is not None and not drafter.score("ok").token_ids:
            raise RuntimeError("the drafter scored nothing")
        return Outcome(None, 0, 0)

    async def check_health(self) -> None:
        models = ((DRAFTER, self.pipelines.drafter), (REFINER, self.pipelines.refiner))
        await self._call(tuple(name for name, model in models if model is not None), self._health_sync)
