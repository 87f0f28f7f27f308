"""The ingress's engine: :class:`~workflows.engine.EngineClient` over deployment handles.

The HTTP app (:func:`services.api.build_app`) calls this exactly as it calls the in-process
engine. Where the work goes:

- ``ar`` and ``hybrid`` infill with candidates (the default): the completion search
  (:func:`workflows.completion.search.search`) runs here, its calls sent to the drafter
  deployment (drafts, scores of candidates) and the refiner deployment (refinements,
  alternatives, scores), so each replica holds one model and the search still sees both;
- ``ar`` infill without candidates: the drafter deployment's batched :meth:`draft`;
- ``hybrid`` without candidates: a batched draft, then the refiner deployment's batched
  :meth:`refine`, so concurrent editor requests share forward passes on both models;
- ``diffusion`` infill, revise, repair, compliance: the refiner deployment; where a revision
  scores the text with the drafter, the drafter deployment scores it first and the refiner
  receives the scores (:class:`~services.serve.replicas.Prescored`).

Errors come back as the app expects them: a replica's ``ValueError`` stays a ``ValueError``
(422/400), and Serve's back-pressure (a deployment's ``max_queued_requests`` reached) or an
engine's own overload becomes :class:`~workflows.engine.EngineUnavailable` (503 with
Retry-After). Nothing here imports Ray at module level, so the logic runs in tests with
stand-in handles.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from drafter.outputs import Draft
from services.serve.replicas import Prescored
from workflows.audit import AuditRecord, ModelInfo
from workflows.completion.search import search
from workflows.completion.sides import DraftedHole, Hole
from workflows.compliance import ComplianceParams, ComplianceResult
from workflows.engine import EngineEvent, EngineUnavailable, Finished, Outcome, Snapshot, TokenDelta
from workflows.infill import InfillParams, InfillResult, ar_result, check_context
from workflows.repair import RepairParams, RepairResult
from workflows.revise import ReviseParams, ReviseResult
from workflows.rules import RuleSet

T = TypeVar("T")


def unwrap(exc: BaseException, retry_after_s: float) -> BaseException:
    """The exception the HTTP layer understands for one raised by a handle call."""
    try:
        from ray.exceptions import RayTaskError
        from ray.serve.exceptions import BackPressureError
    except ImportError:  # pragma: no cover - Ray is a dependency; stand-in handles in tests
        return exc
    if isinstance(exc, BackPressureError):
        return EngineUnavailable("the service is at capacity; retry later", retry_after_s)
    if isinstance(exc, RayTaskError):
        cause = exc.cause
        if isinstance(cause, (ValueError, EngineUnavailable)):
            return cause
    return exc


class DrafterHandles:
    """The drafter deployment as a completion search's drafter side
    (:class:`~workflows.completion.sides.DrafterSide`): drafts go through its batched
    :meth:`draft`, one call per row, so rows of concurrent searches share a batch."""

    def __init__(self, engine: ServeEngine, handle: Any) -> None:
        self.engine, self.handle = engine, handle
        self.prompt_tokens: int | None = None  # the hole's prompt tokens, from the first draft

    async def drafts(self, holes: list[Hole]) -> list[Draft]:
        done = await asyncio.gather(*(self.engine._call(self.handle.draft.remote(h)) for h in holes))
        if done and self.prompt_tokens is None:
            self.prompt_tokens = done[0].prompt_tokens
        return [o.result for o in done]

    async def middle_scores(self, prefix: str, suffix: str, params: InfillParams, texts: list[str]) -> list[float]:
        scores: list[float] = await self.engine._call(self.handle.middle_scores.remote(prefix, suffix, params, texts))
        return scores


class RefinerHandles:
    """The refiner deployment as a completion search's refiner side
    (:class:`~workflows.completion.sides.RefinerSide`)."""

    def __init__(self, engine: ServeEngine, handle: Any) -> None:
        self.engine, self.handle = engine, handle

    async def refined(self, items: list[DraftedHole]) -> list[InfillResult]:
        done = await asyncio.gather(*(self.engine._call(self.handle.refine.remote(item)) for item in items))
        return [o.result for o in done]

    async def fills(self, prefix: str, suffix: str, params: InfillParams) -> list[InfillResult]:
        out: list[InfillResult] = await self.engine._call(self.handle.fills.remote(prefix, suffix, params))
        return out

    async def alternatives(self, prefix: str, suffix: str, draft: Draft, params: InfillParams) -> list[InfillResult]:
        call = self.handle.alternatives.remote(prefix, suffix, draft, params)
        out: list[InfillResult] = await self.engine._call(call)
        return out

    async def scores(self, prefix: str, suffix: str, texts: list[str]) -> list[float]:
        out: list[float] = await self.engine._call(self.handle.scores.remote(prefix, suffix, texts))
        return out


def _answer_events(res: InfillResult) -> list[EngineEvent]:
    """A searched completion as a stream shows it: one ranked answer, so it comes whole. In ar
    it comes as token deltas (the HTTP stream carries an ar completion's text in its deltas),
    otherwise as the span's final snapshot (the last event carries the text)."""
    if res.mode == "ar":
        return [TokenDelta(t.text, t.confidence) for t in res.tokens if t.text]
    return [Snapshot(res.text)]


class ServeEngine:
    """:class:`EngineClient` over a refiner handle and an optional drafter handle."""

    def __init__(self, refiner: Any, drafter: Any | None = None, retry_after_s: float = 1.0) -> None:
        self.refiner = refiner
        self.drafter = drafter
        self.retry_after_s = retry_after_s
        self._in_flight = 0
        self._models: dict[str, ModelInfo] = {}

    def queue_depth(self) -> int:
        return self._in_flight

    async def _call(self, response: Awaitable[T]) -> T:
        self._in_flight += 1
        try:
            return await response
        except Exception as exc:  # noqa: BLE001 - re-raised as what the app maps to a status
            raise unwrap(exc, self.retry_after_s) from None
        finally:
            self._in_flight -= 1

    async def _stream(self, method: Any, *args: Any) -> AsyncIterator[EngineEvent]:
        gen = method.remote(*args)
        self._in_flight += 1
        try:
            async for ev in gen:
                yield ev
        except Exception as exc:  # noqa: BLE001 - as in _call
            raise unwrap(exc, self.retry_after_s) from None
        finally:
            self._in_flight -= 1
            if hasattr(gen, "cancel"):
                gen.cancel()  # the reader went away early: stop the replica's work too

    async def _info(self, name: str, handle: Any) -> ModelInfo:
        if name not in self._models:
            self._models[name] = await self._call(handle.info.remote())
        return self._models[name]

    async def _audit(self, params: InfillParams) -> AuditRecord:
        """An infill's audit record, naming both models (the replicas name theirs once)."""
        drafter = self._need_drafter(params.mode)
        models = [await self._info("refiner", self.refiner), await self._info("drafter", drafter)]
        return AuditRecord("infill", models, params.model_dump(), params.seed)

    def _need_drafter(self, mode: str) -> Any:
        if self.drafter is None:
            raise ValueError(f"mode {mode!r} needs a drafter; this service runs without one")
        return self.drafter

    # --- infill -----------------------------------------------------------------------------

    async def infill(self, prefix: str, suffix: str, params: InfillParams) -> Outcome[InfillResult]:
        check_context(prefix, suffix)
        if params.mode == "diffusion":
            return await self._call(self.refiner.infill.remote(prefix, suffix, params))
        t0 = time.perf_counter()
        if params.candidates:
            out = await self._search(prefix, suffix, params)
        else:
            out = await self._raw(prefix, suffix, params)
        out.run_ms = 1000 * (time.perf_counter() - t0)
        return out

    async def _raw(self, prefix: str, suffix: str, params: InfillParams) -> Outcome[InfillResult]:
        """The models' single answer: a batched draft, in hybrid refined by a batched refine."""
        audit = await self._audit(params)
        with audit.timed("draft"):
            drafted = await self._call(self._need_drafter(params.mode).draft.remote((prefix, suffix, params)))
        if params.mode == "ar":
            out = Outcome(ar_result(len(prefix), drafted.result), drafted.prompt_tokens, drafted.completion_tokens)
        else:
            with audit.timed("refine"):
                out = await self._call(self.refiner.refine.remote((prefix, suffix, drafted.result, params)))
        out.result.audit = audit
        return out

    async def _search(self, prefix: str, suffix: str, params: InfillParams) -> Outcome[InfillResult]:
        """The completion search run here, its model calls sent to the deployments."""
        drafter = DrafterHandles(self, self._need_drafter(params.mode))
        audit = await self._audit(params)
        res = await search(prefix, suffix, params, RefinerHandles(self, self.refiner), drafter, audit)
        res.audit = audit
        return Outcome(res, drafter.prompt_tokens or 0, len(res.tokens))

    async def stream_infill(self, prefix: str, suffix: str, params: InfillParams) -> AsyncIterator[EngineEvent]:
        check_context(prefix, suffix)
        if params.mode != "diffusion" and params.candidates:
            out = await self._search(prefix, suffix, params)
            for ev in _answer_events(out.result):
                yield ev
            yield Finished(out)
            return
        if params.mode != "hybrid":  # one deployment streams it whole
            handle = self.refiner if params.mode == "diffusion" else self._need_drafter(params.mode)
            async for ev in self._stream(handle.options(stream=True).stream_infill, prefix, suffix, params):
                yield ev
            return
        audit = await self._audit(params)
        with audit.timed("draft"):
            drafted = await self._call(self._need_drafter(params.mode).draft.remote((prefix, suffix, params)))
        with audit.timed("refine"):
            async for ev in self._stream(self.refiner.options(stream=True).stream_refine,
                                         prefix, suffix, drafted.result, params):
                if isinstance(ev, Finished):
                    ev.outcome.result.audit = audit
                yield ev

    # --- revise, repair, compliance --------------------------------------------------------

    async def _scorer(self, text: str, params: ReviseParams) -> Prescored | None:
        if params.spans is not None or params.detect == "refiner":
            return None
        drafter = self._need_drafter(f"detect={params.detect}")
        info = await self._info("drafter", drafter)
        scores = await self._call(drafter.score.remote(text))
        return Prescored(info.name, info.path, text, scores)

    async def revise(self, text: str, params: ReviseParams) -> Outcome[ReviseResult]:
        scorer = await self._scorer(text, params)
        return await self._call(self.refiner.revise.remote(text, params, scorer))

    async def stream_revise(self, text: str, params: ReviseParams) -> AsyncIterator[EngineEvent]:
        scorer = await self._scorer(text, params)
        async for ev in self._stream(self.refiner.options(stream=True).stream_revise, text, params, scorer):
            yield ev

    async def repair(self, code: str, params: RepairParams) -> Outcome[RepairResult]:
        return await self._call(self.refiner.repair.remote(code, params))

    async def compliance(self, text: str, rules: RuleSet, params: ComplianceParams) -> Outcome[ComplianceResult]:
        return await self._call(self.refiner.compliance.remote(text, rules, params))

    async def check_health(self) -> None:
        await self._call(self.refiner.check.remote())
        if self.drafter is not None:
            await self._call(self.drafter.check.remote())
