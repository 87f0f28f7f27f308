"""The ingress's engine: :class:`~workflows.engine.EngineClient` over deployment handles.

The HTTP app (:func:`services.api.build_app`) calls this exactly as it calls the in-process
engine. Where the work goes:

- ``ar`` infill: the drafter deployment's batched :meth:`draft`;
- ``hybrid`` infill: a batched draft, then the refiner deployment's batched :meth:`refine`,
  so concurrent editor requests share forward passes on both models;
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

import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from services.serve.replicas import Prescored
from workflows.audit import AuditRecord, ModelInfo
from workflows.compliance import ComplianceParams, ComplianceResult
from workflows.engine import EngineEvent, EngineUnavailable, Finished, Outcome
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


def served_infill(params: InfillParams) -> InfillParams:
    """The options an infill runs with on Serve. The candidate search needs the drafter and the
    refiner in one process; the deployments hold one each, so ar and hybrid answer with the
    models' raw draft here (the response then carries no ``syntax_check``) and diffusion,
    which runs whole on the refiner replica, keeps the search."""
    if params.mode == "diffusion" or not params.candidates:
        return params
    return params.model_copy(update={"candidates": False})


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

    async def _drafted(self, prefix: str, suffix: str, params: InfillParams) -> tuple[AuditRecord, Outcome[Any]]:
        """The drafter deployment's batched draft of one hole, and the infill's audit record with
        the draft timed in it (the replicas name their models once)."""
        drafter = self._need_drafter(params.mode)
        models = [await self._info("refiner", self.refiner), await self._info("drafter", drafter)]
        audit = AuditRecord("infill", models, params.model_dump(), params.seed)
        with audit.timed("draft"):
            drafted = await self._call(drafter.draft.remote((prefix, suffix, params)))
        return audit, drafted

    def _need_drafter(self, mode: str) -> Any:
        if self.drafter is None:
            raise ValueError(f"mode {mode!r} needs a drafter; this service runs without one")
        return self.drafter

    # --- infill -----------------------------------------------------------------------------

    async def infill(self, prefix: str, suffix: str, params: InfillParams) -> Outcome[InfillResult]:
        check_context(prefix, suffix)
        params = served_infill(params)
        if params.mode == "diffusion":
            return await self._call(self.refiner.infill.remote(prefix, suffix, params))
        t0 = time.perf_counter()
        audit, drafted = await self._drafted(prefix, suffix, params)
        if params.mode == "ar":
            out = Outcome(ar_result(len(prefix), drafted.result), drafted.prompt_tokens, drafted.completion_tokens)
        else:
            with audit.timed("refine"):
                out = await self._call(self.refiner.refine.remote((prefix, suffix, drafted.result, params)))
        out.result.audit = audit
        out.run_ms = 1000 * (time.perf_counter() - t0)
        return out

    async def stream_infill(self, prefix: str, suffix: str, params: InfillParams) -> AsyncIterator[EngineEvent]:
        check_context(prefix, suffix)
        params = served_infill(params)
        if params.mode != "hybrid":  # one deployment streams it whole
            handle = self.refiner if params.mode == "diffusion" else self._need_drafter(params.mode)
            async for ev in self._stream(handle.options(stream=True).stream_infill, prefix, suffix, params):
                yield ev
            return
        audit, drafted = await self._drafted(prefix, suffix, params)
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
