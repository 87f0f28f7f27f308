"""What each Serve replica does, without Ray: the deployments in :mod:`services.serve.app`
are thin wrappers around these classes, so their logic is tested in plain pytest.

- :class:`DrafterReplica`: batched FIM drafts, scores of existing text, AR streams.
- :class:`RefinerReplica`: batched hybrid refinement of drafts; diffusion infill, revision,
  repair and compliance rules, streamed or not.
- :class:`JobWorkerReplica`: a queue worker on a thread of its own.

Each model replica runs its model through a :class:`~services.api.engine.LocalEngine`: one
thread per model, bounded admission, streaming with cancellation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from services.api.engine import DRAFTER, REFINER, EngineEvent, LocalEngine, Outcome
from workflows.audit import ModelInfo
from workflows.compliance import ComplianceParams, ComplianceResult
from workflows.infill import InfillParams, InfillResult, draft_many, refine_drafts
from workflows.repair import RepairParams, RepairResult
from workflows.revise import ReviseParams, ReviseResult
from workflows.rules import RuleSet

log = logging.getLogger("remask.serve")

HoleItem = tuple[str, str, InfillParams]  # (prefix, suffix, params)
DraftItem = tuple[str, str, Any, InfillParams]  # (prefix, suffix, draft, params)


@dataclass(frozen=True)
class Prescored:
    """Stands in for the drafter inside the refiner replica where revision scores the text:
    the drafter deployment scored ``text`` already, so no drafter weights live here."""

    name: str
    path: str | None
    text: str
    scores: Any  # drafter.outputs.Score of ``text``

    def score(self, text: str) -> Any:
        if text != self.text:
            raise ValueError("the drafter's scores were computed for another text")
        return self.scores


def model_info(model: Any) -> ModelInfo:
    return ModelInfo.of(model.name, getattr(model, "path", None))


class _ModelReplica:
    """One model behind a :class:`LocalEngine`: what both model replicas share."""

    def __init__(self, model: Any, engine: LocalEngine) -> None:
        self.model = model
        self.engine = engine

    def info(self) -> ModelInfo:
        return model_info(self.model)

    async def check(self) -> None:
        await self.engine.check_health()

    def close(self) -> None:
        self.engine.close()


class DrafterReplica(_ModelReplica):
    """The drafter's side of the service."""

    def __init__(self, drafter: Any, max_pending: int = 64, queue_timeout_s: float = 30.0) -> None:
        super().__init__(drafter, LocalEngine(None, drafter, max_pending=max_pending, queue_timeout_s=queue_timeout_s))
        self.drafter = drafter

    async def draft(self, items: list[HoleItem]) -> list[Outcome[Any]]:
        """Drafts of several holes in one batched generation, each with its token counts."""
        def run() -> list[Outcome[Any]]:
            drafts = draft_many(items, self.drafter)
            return [Outcome(d, self.engine.count(p, s), len(d.token_ids)) for (p, s, _), d in zip(items, drafts)]

        return await self.engine.submit((DRAFTER,), run)

    async def score(self, texts: list[str]) -> list[Any]:
        return await self.engine.submit((DRAFTER,), lambda: [self.drafter.score(t) for t in texts])

    async def infill(self, prefix: str, suffix: str, params: InfillParams) -> Outcome[InfillResult]:
        """Mode ``ar`` alone (a whole request; the hybrid path batches through :meth:`draft`)."""
        return await self.engine.infill(prefix, suffix, params)

    def stream_infill(self, prefix: str, suffix: str, params: InfillParams) -> AsyncIterator[EngineEvent]:
        return self.engine.stream_infill(prefix, suffix, params)


class RefinerReplica(_ModelReplica):
    """The refiner's side of the service."""

    def __init__(self, refiner: Any, max_pending: int = 64, queue_timeout_s: float = 30.0) -> None:
        super().__init__(refiner, LocalEngine(refiner, None, max_pending=max_pending, queue_timeout_s=queue_timeout_s))
        self.refiner = refiner

    async def refine(self, items: list[DraftItem]) -> list[Outcome[InfillResult]]:
        """The hybrid step of several drafts, batched (see :func:`workflows.infill.refine_drafts`)."""
        def run() -> list[Outcome[InfillResult]]:
            results = refine_drafts(items, self.refiner)
            return [Outcome(r, self.engine.count(p, s), len(r.tokens)) for (p, s, _, _), r in zip(items, results)]

        return await self.engine.submit((REFINER,), run)

    def stream_refine(self, prefix: str, suffix: str, draft: Any, params: InfillParams) -> AsyncIterator[EngineEvent]:
        """The hybrid step of one draft, streaming snapshots of the span."""
        from services.api.engine import Snapshot
        from workflows.infill import refine_draft

        def run(emit: Any) -> Outcome[InfillResult]:
            res = refine_draft(prefix, suffix, draft, params, self.refiner, lambda s: emit(Snapshot(s)))
            return Outcome(res, self.engine.count(prefix, suffix), len(res.tokens))

        return self.engine.stream((REFINER,), run)

    async def infill(self, prefix: str, suffix: str, params: InfillParams) -> Outcome[InfillResult]:
        """Mode ``diffusion``."""
        return await self.engine.infill(prefix, suffix, params)

    def stream_infill(self, prefix: str, suffix: str, params: InfillParams) -> AsyncIterator[EngineEvent]:
        return self.engine.stream_infill(prefix, suffix, params)

    async def revise(self, text: str, params: ReviseParams, scorer: Prescored | None = None) -> Outcome[ReviseResult]:
        return await self.engine.revise(text, params, scorer)

    def stream_revise(self, text: str, params: ReviseParams, scorer: Prescored | None = None
                      ) -> AsyncIterator[EngineEvent]:
        return self.engine.stream_revise(text, params, scorer)

    async def repair(self, code: str, params: RepairParams) -> Outcome[RepairResult]:
        return await self.engine.repair(code, params)

    async def compliance(self, text: str, rules: RuleSet, params: ComplianceParams) -> Outcome[ComplianceResult]:
        return await self.engine.compliance(text, rules, params)


class JobWorkerReplica:
    """A queue worker (:class:`workflows.queue.Worker`) on a daemon thread; stops on :meth:`close`."""

    def __init__(self, r: Any, handler: Any, config: Any, keys: Any) -> None:
        from workflows.queue.worker import Worker

        self.worker = Worker(r, handler, config, keys)
        self.thread = threading.Thread(target=self._run, name="remask-job-worker", daemon=True)
        self.error: BaseException | None = None
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # kept for check(): Serve then restarts the replica
            log.exception("job worker stopped")
            self.error = exc

    def check(self) -> None:
        """Raise when the worker thread died (Serve's health check restarts the replica)."""
        if self.error is not None:
            raise RuntimeError(f"the job worker stopped: {self.error!r}")
        if not self.thread.is_alive():
            raise RuntimeError("the job worker is not running")

    def close(self) -> None:
        self.worker.stop()
        self.thread.join(10)
