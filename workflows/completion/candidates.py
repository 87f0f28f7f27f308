"""Where completion candidates come from, in two stages, each stage's calls batched.

First the mode's own answer, which the search accepts without more when it passes the
check confidently enough (:mod:`workflows.completion.search`):

- ``ar``: the drafter's greedy draft; ``hybrid``: that draft refined (weak tokens re-masked
  and denoised), and the draft itself; ``diffusion``: the refiner's fill at each of the
  mode's span lengths (one batch, best first);
- every mode: continuations copied from the document (:mod:`workflows.completion.lookup`).

Then, when the search widens (:func:`more`): ``params.samples`` sampled drafts (one batch),
in hybrid each refined (one batched run) and the refiner's likeliest alternatives for the
greedy draft's weakest tokens (one pass). The models are reached through the two sides of
:mod:`workflows.completion.sides`, in process or across Serve's deployments alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
    plan_hybrid,
    sampler_config,
)
from workflows.options import InfillParams

if TYPE_CHECKING:
    from workflows.completion.sides import DrafterSide, RefinerSide

SAMPLE_TEMPERATURE = 0.8  # sampled drafts: varied enough to differ from the greedy one, rarely nonsense
ALTERNATIVE_POSITIONS = 2  # the greedy draft's weakest tokens given alternatives
ALTERNATIVES = 3  # the refiner's likeliest tokens tried at each


@dataclass
class Candidates:
    """Raw candidates (not yet cut to the scope), the results they came from, and the cost."""

    results: list[InfillResult] = field(default_factory=list)  # model outputs, tokens with confidences
    own: InfillResult | None = None  # the mode's own answer: what ``candidates: false`` returns
    draft: Draft | None = None  # the greedy draft (ar, hybrid)
    copied: list[InfillResult] = field(default_factory=list)  # continuations copied from the document
    nfe: int = 0  # refiner forward passes


async def first(prefix: str, suffix: str, params: InfillParams, scope: Scope, refiner: RefinerSide,
                drafter: DrafterSide | None) -> Candidates:
    """The mode's own answer, and the document's own continuations."""
    at = len(prefix)
    out = Candidates()
    if drafter is None or params.mode == "diffusion":
        fills = await refiner.fills(prefix, suffix, params)
        out.results += fills
        out.nfe += max((f.nfe for f in fills), default=0)  # the lengths share one batched run
    else:
        out.draft = (await drafter.drafts([(prefix, suffix, _line_stopped(params, scope))]))[0]
        out.results.append(ar_result(at, out.draft))
        if params.mode == "hybrid":  # the refined draft is the mode's own answer; the draft stays a candidate
            refined = (await refiner.refined([(prefix, suffix, out.draft, params)]))[0]
            out.results.insert(0, refined)
            out.nfe += refined.nfe
    out.own = out.results[0] if out.results else None
    out.copied = [InfillResult(text, at, at, params.mode, [InfillToken(text, 1.0, False)])
                  for text in lookup_continuations(prefix, suffix)]
    out.results += out.copied
    return out


async def more(prefix: str, suffix: str, params: InfillParams, scope: Scope, refiner: RefinerSide,
               drafter: DrafterSide | None, found: Candidates) -> None:
    """Widen ``found``: sampled drafts, and in hybrid their refinements and the refiner's
    alternatives at the greedy draft's weakest tokens (diffusion has no more to add)."""
    if drafter is None or found.draft is None or params.mode == "diffusion":
        return
    at = len(prefix)
    drafts = await _sampled(prefix, suffix, params, scope, drafter)
    if params.mode == "ar":
        found.results += [ar_result(at, d) for d in drafts]
        return
    refined = await refiner.refined([(prefix, suffix, d, params) for d in drafts]) if drafts else []
    found.results += refined
    found.nfe += max((r.nfe for r in refined), default=0)  # one batched run
    found.results += await refiner.alternatives(prefix, suffix, found.draft, params)
    found.nfe += 1


def _line_stopped(params: InfillParams, scope: Scope) -> InfillParams:
    """The request's settings, a line's drafts stopped at the line's end (all the scope keeps of them)."""
    return params.model_copy(update={"stop": [*params.stop, "\n"]}) if scope.kind == "line" else params


async def _sampled(prefix: str, suffix: str, params: InfillParams, scope: Scope, drafter: DrafterSide
                   ) -> list[Draft]:
    """``params.samples`` sampled drafts, one batch, each row seeded on its own."""
    base = _line_stopped(params, scope)
    seed = params.seed or 0
    rows = [base.model_copy(update={"temperature": SAMPLE_TEMPERATURE, "seed": seed + 1 + i})
            for i in range(params.samples)]
    return await drafter.drafts([(prefix, suffix, p) for p in rows]) if rows else []


def diffusion_fills(prefix: str, suffix: str, params: InfillParams, refiner: TextRefiner) -> list[InfillResult]:
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


def alternatives(prefix: str, suffix: str, draft: Draft, params: InfillParams,
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
