"""What each Serve replica does, without Ray: the deployments in :mod:`services.serve.app`
are thin wrappers around these classes, so their logic is tested in plain pytest.

- :class:`DrafterReplica`: batched FIM drafts, scores of existing text and of a completion
  search's candidates, AR streams.
- :class:`RefinerReplica`: batched hybrid refinement of drafts; fills, alternatives and scores
  for a completion search; diffusion infill, revision, repair and compliance rules, streamed
  or not.
- :class:`JobWorkerReplica`: a queue worker on a thread of its own.

Each model replica runs its model through a :class:`~services.api.engine.LocalEngine`: one
thread per model, bounded admission, streaming with cancellation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from services.api.engine import LocalEngine
from workflows.audit import ModelInfo
from workflows.completion.candidates import alternatives, diffusion_fills
from workflows.completion.rank import middle_scores, refiner_scores
from workflows.compliance import ComplianceParams, ComplianceResult
from workflows.engine import DRAFTER, REFINER, EngineEvent, Outcome, Snapshot
from workflows.infill import InfillParams, InfillResult, draft_many, refine_draft, refine_drafts
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

    async def _batched(self, model: str, items: list[Any], run: Callable[[list[Any]], list[Any]],
                       produced: Callable[[Any], int]) -> list[Outcome[Any]]:
        """``run(items)`` as one call on the model's thread; each result with the tokens of its
        item's prefix and suffix (the first two fields) and the ``produced`` tokens."""
        def call() -> list[Outcome[Any]]:
            return [Outcome(res, self.engine.pipelines.count(item[0], item[1]), produced(res))
                    for item, res in zip(items, run(items), strict=True)]

        return await self.engine.submit((model,), call)

    def stream_infill(self, prefix: str, suffix: str, params: InfillParams) -> AsyncIterator[EngineEvent]:
        """A whole infill request in the mode this replica's model serves alone (ar or diffusion)."""
        return self.engine.stream_infill(prefix, suffix, params)


class DrafterReplica(_ModelReplica):
    """The drafter's side of the service."""

    def __init__(self, drafter: Any, max_pending: int = 64, queue_timeout_s: float = 30.0) -> None:
        super().__init__(drafter, LocalEngine(None, drafter, max_pending=max_pending, queue_timeout_s=queue_timeout_s))

    async def draft(self, items: list[HoleItem]) -> list[Outcome[Any]]:
        """Drafts of several holes in one batched generation, each with its token counts."""
        return await self._batched(DRAFTER, items, lambda holes: draft_many(holes, self.model),
                                   lambda draft: len(draft.token_ids))

    async def score(self, texts: list[str]) -> list[Any]:
        return await self.engine.submit((DRAFTER,), lambda: [self.model.score(t) for t in texts])

    async def middle_scores(self, prefix: str, suffix: str, params: InfillParams, texts: list[str]) -> list[float]:
        """The drafter's scores of a completion search's candidates (one shared prompt)."""
        return await self.engine.submit((DRAFTER,), lambda: middle_scores(self.model, prefix, suffix, params, texts))


class RefinerReplica(_ModelReplica):
    """The refiner's side of the service."""

    def __init__(self, refiner: Any, max_pending: int = 64, queue_timeout_s: float = 30.0) -> None:
        super().__init__(refiner, LocalEngine(refiner, None, max_pending=max_pending, queue_timeout_s=queue_timeout_s))

    async def refine(self, items: list[DraftItem]) -> list[Outcome[InfillResult]]:
        """The hybrid step of several drafts, batched (see :func:`workflows.infill.refine_drafts`)."""
        return await self._batched(REFINER, items, lambda drafts: refine_drafts(drafts, self.model),
                                   lambda res: len(res.tokens))

    def stream_refine(self, prefix: str, suffix: str, draft: Any, params: InfillParams) -> AsyncIterator[EngineEvent]:
        """The hybrid step of one draft, streaming snapshots of the span."""
        def run(emit: Callable[[EngineEvent], None]) -> Outcome[InfillResult]:
            res = refine_draft(prefix, suffix, draft, params, self.model, lambda s: emit(Snapshot(s)))
            return Outcome(res, self.engine.pipelines.count(prefix, suffix), len(res.tokens))

        return self.engine.stream((REFINER,), run)

    async def infill(self, prefix: str, suffix: str, params: InfillParams) -> Outcome[InfillResult]:
        """Mode ``diffusion``."""
        return await self.engine.infill(prefix, suffix, params)

    # --- the refiner's side of a completion search the ingress runs (workflows.completion.sides) ---

    async def fills(self, prefix: str, suffix: str, params: InfillParams) -> list[InfillResult]:
        return await self.engine.submit((REFINER,), lambda: diffusion_fills(prefix, suffix, params, self.model))

    async def alternatives(self, prefix: str, suffix: str, draft: Any, params: InfillParams) -> list[InfillResult]:
        return await self.engine.submit((REFINER,), lambda: alternatives(prefix, suffix, draft, params, self.model))

    async def scores(self, prefix: str, suffix: str, texts: list[str]) -> list[float]:
        return await self.engine.submit((REFINER,), lambda: refiner_scores(self.model, prefix, suffix, texts))

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
