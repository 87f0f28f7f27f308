"""Where completion candidates come from, each source's candidates made in one batch.

- ``ar``: the drafter's greedy draft and ``samples`` sampled drafts, one batched generation;
- ``hybrid``: those drafts, each refined (weak tokens re-masked and denoised, one batched
  refiner run), and the refiner's likeliest alternatives for the greedy draft's weakest
  tokens (one batched pass);
- ``diffusion``: the refiner's fill at each of the mode's span lengths (one batch);
- every mode: continuations copied from the document (:mod:`workflows.completion.lookup`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drafter.model import Drafter
from drafter.outputs import Draft
from refiner.text import TextRefiner
from workflows.completion.lookup import lookup_continuations
from workflows.completion.rank import side_context
from workflows.completion.scope import Scope
from workflows.infill import (
    InfillResult,
    InfillToken,
    ar_result,
    diffusion_lengths,
    draft_many,
    plan_hybrid,
    refine_drafts,
    sampler_config,
)
from workflows.options import InfillParams

SAMPLE_TEMPERATURE = 0.8  # sampled drafts: varied enough to differ from the greedy one, rarely nonsense
ALTERNATIVE_POSITIONS = 2  # the greedy draft's weakest tokens given alternatives
ALTERNATIVES = 3  # the refiner's likeliest tokens tried at each


@dataclass
class Candidates:
    """Raw candidates (not yet cut to the scope), the results they came from, and the cost."""

    results: list[InfillResult] = field(default_factory=list)  # model outputs, tokens with confidences
    draft: str | None = None  # the greedy draft (ar, hybrid)
    nfe: int = 0  # refiner forward passes


def generate(prefix: str, suffix: str, params: InfillParams, scope: Scope, refiner: TextRefiner,
             drafter: Drafter | None) -> Candidates:
    """Every candidate of the request's mode, and the document's own continuations."""
    at = len(prefix)
    out = Candidates()
    if drafter is None or params.mode == "diffusion":
        fills = _diffusion_fills(prefix, suffix, params, refiner)
        out.results += fills
        out.nfe += max((f.nfe for f in fills), default=0)  # the lengths share one batched run
    else:
        drafts = _drafts(prefix, suffix, params, scope, drafter)
        out.draft = drafts[0].text
        out.results += [ar_result(at, d) for d in drafts]
        if params.mode == "hybrid":
            refined = refine_drafts([(prefix, suffix, d, params) for d in drafts], refiner)
            out.results += refined
            out.nfe += max((r.nfe for r in refined), default=0)  # one batched run
            out.results += _alternatives(prefix, suffix, drafts[0], params, refiner)
            out.nfe += 1
    for text in lookup_continuations(prefix, suffix):
        out.results.append(InfillResult(text, at, at, params.mode, [InfillToken(text, 1.0, False)]))
    return out


def _drafts(prefix: str, suffix: str, params: InfillParams, scope: Scope, drafter: Drafter) -> list[Draft]:
    """The greedy draft (the request's own settings) and ``params.samples`` sampled ones, one batch;
    a line's drafts stop at the line's end, which is all the scope keeps of them."""
    stop = [*params.stop, "\n"] if scope.kind == "line" else list(params.stop)
    base = params.model_copy(update={"stop": stop})
    seed = params.seed or 0
    rows = [base] + [base.model_copy(update={"temperature": SAMPLE_TEMPERATURE, "seed": seed + 1 + i})
                     for i in range(params.samples)]
    return draft_many([(prefix, suffix, p) for p in rows], drafter)


def _diffusion_fills(prefix: str, suffix: str, params: InfillParams, refiner: TextRefiner) -> list[InfillResult]:
    """The refiner's fill at each span length, from one batched run."""
    left, _ = refiner.encode(prefix)
    right, _ = refiner.encode(suffix)
    fills = refiner.fill_lengths(left, right, diffusion_lengths(params, refiner), sampler_config(params),
                                 params.window)
    at = len(prefix)
    return [InfillResult(refiner.decode(f.tokens), at, at, "diffusion",
                         [InfillToken(refiner.decode([t]), c, True) for t, c in zip(f.tokens, f.confidence)],
                         nfe=f.nfe)
            for f in fills]


def _alternatives(prefix: str, suffix: str, draft: Draft, params: InfillParams,
                  refiner: TextRefiner) -> list[InfillResult]:
    """The draft with one of its weakest tokens replaced by each of the refiner's likeliest
    tokens there (the drafter's confidence finds the weak tokens; one batched pass)."""
    if not draft.text:
        return []
    plan = plan_hybrid(prefix, suffix, draft, params, refiner)
    if refiner.max_length is not None and len(plan.mid) >= refiner.max_length:
        return []
    weakest = sorted(range(len(plan.mid)), key=lambda i: plan.tokens[i].confidence)[:ALTERNATIVE_POSITIONS]
    side = side_context(refiner.max_length, len(plan.mid))
    left, right = plan.left[len(plan.left) - min(side, len(plan.left)):], plan.right[:side]
    sides = [(left + plan.mid[:i], plan.mid[i + 1:] + right) for i in weakest]
    at = len(prefix)
    out: list[InfillResult] = []
    for i, tops in zip(weakest, refiner.top_k_between(sides, ALTERNATIVES)):
        for t in tops:
            if t == plan.mid[i]:
                continue
            ids = [*plan.mid[:i], t, *plan.mid[i + 1:]]
            tokens = [*plan.tokens[:i], InfillToken(refiner.decode([t]), 0.0, True), *plan.tokens[i + 1:]]
            out.append(InfillResult(refiner.decode(ids), at, at, "hybrid", tokens, draft=draft.text, nfe=1))
    return out
