"""The pipelines over one refiner and drafter, each answer an :class:`Outcome` with its token counts.

The in-process engine runs these calls on its model threads and the batch worker calls them
directly, so a request runs the same pipeline on the same models, and is counted the same
way, whichever way it arrives. Which models a request needs is decided here too
(:func:`infill_needs`, :func:`revise_needs`, :func:`compliance_needs`): the engine takes their
locks, and the pipeline is handed exactly those models.
"""

from __future__ import annotations

from typing import Any

from refiner.text import TextRefiner
from workflows.compliance import ComplianceResult, apply_rules
from workflows.engine.protocol import Outcome
from workflows.infill import InfillResult, SnapshotFn, infill
from workflows.options import ComplianceParams, InfillParams, RepairParams, ReviseParams
from workflows.repair import RepairResult, repair
from workflows.revise import ReviseResult, proofreads, revise
from workflows.rules import RuleSet

DRAFTER, REFINER = "drafter", "refiner"  # model names, locked in this order


def infill_needs(params: InfillParams) -> tuple[str, ...]:
    """The models an infill request runs on."""
    if params.mode == "ar" and params.candidates:
        return DRAFTER, REFINER  # the refiner scores the drafter's candidates
    return {"diffusion": (REFINER,), "ar": (DRAFTER,)}.get(params.mode, (DRAFTER, REFINER))


def revise_needs(params: ReviseParams, prescored: bool = False) -> tuple[str, ...]:
    """The models a revision runs on: the drafter where it scores the text (no spans given,
    ``detect`` not refiner-only) and its scores did not come with the request (``prescored``),
    or where it checks proofreading's fixes of prose."""
    scores_with_drafter = params.spans is None and params.detect != "refiner" and not prescored
    return (DRAFTER, REFINER) if scores_with_drafter or proofreads(params) else (REFINER,)


def compliance_needs(has_drafter: bool) -> tuple[str, ...]:
    """The models rule application runs on: the refiner rewrites, the drafter (when served) ranks."""
    return (DRAFTER, REFINER) if has_drafter else (REFINER,)


class Pipelines:
    """The pipelines over ``refiner`` and ``drafter`` (either may be None where a process
    serves only the other; a request that needs a missing model is a ``ValueError``)."""

    def __init__(self, refiner: TextRefiner | None, drafter: Any | None = None) -> None:
        if refiner is None and drafter is None:
            raise ValueError("the pipelines need a refiner, a drafter or both")
        self.refiner = refiner
        self.drafter = drafter

    def count(self, *texts: str) -> int:
        """Tokens of ``texts`` under the refiner's tokenizer (the drafter's when there is no refiner)."""
        if self.refiner is not None:
            return sum(len(self.refiner.encode(t)[0]) for t in texts if t)
        drafter: Any = self.drafter  # the constructor refuses neither
        return sum(len(drafter.encode(t)) for t in texts if t)

    def need_refiner(self) -> TextRefiner:
        if self.refiner is None:
            raise ValueError("this engine serves no refiner")
        return self.refiner

    def infill(self, prefix: str, suffix: str, params: InfillParams,
               on_snapshot: SnapshotFn | None = None) -> Outcome[InfillResult]:
        drafter = self.drafter if DRAFTER in infill_needs(params) else None
        res = infill(prefix, suffix, params, self.need_refiner(), drafter, on_snapshot=on_snapshot)
        return Outcome(res, self.count(prefix, suffix), len(res.tokens))

    def revise(self, text: str, params: ReviseParams, on_snapshot: SnapshotFn | None = None,
               scorer: Any | None = None) -> Outcome[ReviseResult]:
        """``scorer``: stands in for the drafter where it scores the text (a Serve replica passes
        the drafter deployment's scores this way)."""
        drafter = self.drafter if DRAFTER in revise_needs(params, scorer is not None) else None
        res = revise(text, params, self.need_refiner(), drafter, on_snapshot=on_snapshot, scorer=scorer)
        return Outcome(res, self.count(text), self.count(*(e.after for e in res.edits)))

    def repair(self, code: str, params: RepairParams) -> Outcome[RepairResult]:
        res = repair(code, params, self.need_refiner())
        return Outcome(res, self.count(code), self.count(*(e.after for e in res.edits)))

    def compliance(self, text: str, rules: RuleSet, params: ComplianceParams) -> Outcome[ComplianceResult]:
        """The drafter, where this process serves one, judges how the rewrites read (else the refiner)."""
        res = apply_rules(text, rules, self.need_refiner(), params, drafter=self.drafter)
        return Outcome(res, self.count(text), self.count(*(e.after for e in res.edits)))
