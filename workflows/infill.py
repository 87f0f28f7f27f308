"""Span infill, the editor plugin's call: ``ar``, ``diffusion`` or ``hybrid``.

- ``ar``: the drafter writes the middle from prefix and suffix (fill-in-the-middle).
- ``diffusion``: the refiner fills a masked span between prefix and suffix; the span length
  is unknown, so several lengths go through one batch and the best-scored wins (filler
  tokens let a too-long span shrink).
- ``hybrid``: the drafter writes the middle; its low-confidence tokens are re-masked (capped)
  and the refiner denoises them with both sides as context. The draft's length fixes the
  span's length; predicted fillers shorten it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drafter.fim import FimPrompt
from drafter.model import Drafter
from drafter.outputs import Draft
from drafter.params import GenerationParams
from refiner.editing import EditResult, SpanEdit
from refiner.remasking import doubtful_spans
from refiner.sampler import SamplerConfig, StepEvent
from refiner.text import TextRefiner
from workflows.audit import AuditRecord
from workflows.options import InfillParams


@dataclass
class InfillToken:
    text: str
    confidence: float  # p of the token under the model that chose it
    changed: bool  # the refiner replaced the drafter's token here


@dataclass
class InfillResult:
    text: str  # what to insert
    start: int  # replaced range in prefix + suffix (code points): an insertion at len(prefix)
    end: int
    mode: str
    tokens: list[InfillToken] = field(default_factory=list)
    draft: str | None = None  # the drafter's text before refinement (ar, hybrid)
    nfe: int = 0  # refiner forward passes
    audit: AuditRecord | None = None
    confidence: float | None = None  # the best candidate's joint score as a probability (None: no search)
    syntax_check: str | None = None  # "checked" or "skipped" (no parser for the language); None: no search
    candidates: int = 0  # distinct candidates that kept the file's syntax

    @property
    def changed(self) -> list[int]:
        """Indices of tokens the refiner changed."""
        return [i for i, t in enumerate(self.tokens) if t.changed]


SnapshotFn = Callable[[str], None]


def sampler_config(p: InfillParams) -> SamplerConfig:
    """The refiner's sampler settings of an infill request."""
    return SamplerConfig(steps=p.steps, threshold=p.threshold, temperature=p.temperature,
                         top_p=p.top_p if p.top_p < 1 else None, seed=p.seed, cache=p.cache, factor=p.factor)


def _snapshots(refiner: TextRefiner, on_snapshot: SnapshotFn | None, render: Callable[[list[tuple[int, bool]]], str]
               ) -> Callable[[StepEvent], None] | None:
    """Turn sampler steps into text snapshots of the span (masked positions rendered as MASK_GLYPH)."""
    if on_snapshot is None:
        return None
    return lambda ev: on_snapshot(render(ev.span_state()))


MASK_GLYPH = "\u2591"  # a light shade block: visibly "not yet written"


def check_context(prefix: str, suffix: str) -> None:
    """ValueError when there is nothing around the hole to fill it from."""
    if not prefix and not suffix:
        raise ValueError("prefix and suffix are both empty: there is no context to fill")


def infill(
    prefix: str,
    suffix: str,
    params: InfillParams,
    refiner: TextRefiner,
    drafter: Drafter | None = None,
    on_snapshot: SnapshotFn | None = None,
) -> InfillResult:
    """Fill the middle between ``prefix`` and ``suffix`` in the requested mode."""
    check_context(prefix, suffix)
    if params.mode in ("ar", "hybrid") and drafter is None:
        raise ValueError(f"mode {params.mode!r} needs a drafter")
    audit = AuditRecord.start("infill", params, refiner, drafter)
    if params.candidates:
        from workflows.completion import complete  # the search builds on this module's drafting and refinement

        res = complete(prefix, suffix, params, refiner, drafter, audit)
        res.audit = audit
        if on_snapshot is not None:
            on_snapshot(res.text)
        return res
    at = len(prefix)
    if drafter is None or params.mode == "diffusion":  # the other modes were refused without a drafter
        with audit.timed("refine"):
            res = _diffusion(prefix, suffix, params, refiner, on_snapshot)
    else:
        with audit.timed("draft"):
            draft = draft_many([(prefix, suffix, params)], drafter)[0]
        if params.mode == "ar":
            res = ar_result(at, draft)
        else:
            with audit.timed("refine"):
                res = refine_draft(prefix, suffix, draft, params, refiner, on_snapshot)
    res.audit = audit
    return res


def fit_context(prefix: str, suffix: str, tokenizer: Any, budget: int) -> tuple[str, str]:
    """Trim the prefix from the left and the suffix from the right to ``budget`` tokens.

    Editors send whole files; the text next to the cursor matters most, so the prefix keeps
    up to three quarters of the budget and the suffix the rest (or whatever it leaves).
    """
    def offsets(text: str) -> list[tuple[int, int]]:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [tuple(o) for o in enc["offset_mapping"]]

    p_off, s_off = offsets(prefix), offsets(suffix)
    if len(p_off) + len(s_off) <= budget:
        return prefix, suffix
    s_keep = min(len(s_off), max(budget // 4, budget - len(p_off)))
    p_keep = min(len(p_off), budget - s_keep)
    new_prefix = prefix[p_off[len(p_off) - p_keep][0]:] if p_keep else ""
    new_suffix = suffix[: s_off[s_keep - 1][1]] if s_keep else ""
    return new_prefix, new_suffix


# drafter context when its config states none (a model with no position limit)
UNBOUNDED_CONTEXT_TOKENS = 1024


@dataclass(frozen=True)
class FittedPrompt:
    """A hole's FIM prompt and the trimmed prefix and suffix it was built from."""

    prefix: str
    suffix: str
    prompt: FimPrompt


def draft_context(prefix: str, suffix: str, params: InfillParams, drafter: Drafter) -> tuple[str, str]:
    """The prefix and suffix the drafter sees, nearest the hole first (see :func:`draft_prompt`)."""
    prompt = draft_prompt(prefix, suffix, params, drafter)
    return prompt.prefix, prompt.suffix


def draft_prompt(prefix: str, suffix: str, params: InfillParams, drafter: Drafter) -> FittedPrompt:
    """The FIM prompt of a hole, its prefix and suffix trimmed to fit, nearest the hole first.

    The FIM prompt (control tokens, prefix, suffix) leaves room in the drafter's trained
    context for ``max_tokens`` of middle, or half the context if that is less (a longer
    middle stops at the context's end); ``params.context_tokens`` caps the text further
    when given. The default uses the whole context because that is what the model was
    trained on: a 512-token drafter fed 256 tokens sees half of what it could. The prompt is
    built and measured, since trimming counts the tokenizer's tokens and the prompt's
    encoding can differ at the edges; the prompt measured last is the one returned.
    """
    ctx = drafter.context_length
    if not ctx:
        budget = params.context_tokens or UNBOUNDED_CONTEXT_TOKENS
        prefix, suffix = fit_context(prefix, suffix, drafter.tokenizer, budget)
        return FittedPrompt(prefix, suffix, drafter.fim_prompt(prefix, suffix))
    overhead = len(drafter.fim_prompt("", "").ids)
    limit = ctx - min(params.max_tokens, ctx // 2)  # longest prompt that leaves the middle its room
    if overhead >= limit:
        raise ValueError(f"the drafter's context of {ctx} tokens has no room for a FIM prompt "
                         f"({overhead} control tokens) and a middle")
    budget = limit - overhead
    if params.context_tokens is not None:
        budget = min(budget, params.context_tokens)
    while True:
        # a retry trims what the last try kept (the nearest text), not the whole file again
        prefix, suffix = fit_context(prefix, suffix, drafter.tokenizer, budget)
        prompt = drafter.fim_prompt(prefix, suffix)
        used = len(prompt.ids) - overhead  # the text's prompt tokens
        if used <= limit - overhead or budget == 0:
            return FittedPrompt(prefix, suffix, prompt)
        # shrink by the measured ratio: text can take many more prompt tokens than counted ones
        budget = max(0, min(budget - 1, budget * (limit - overhead) // used))


def draft_many(items: list[tuple[str, str, InfillParams]], drafter: Drafter) -> list[Draft]:
    """FIM drafts of several holes (``(prefix, suffix, params)``) in one batched generation.

    Each row keeps its own generation settings (length, temperature, stop strings, seed);
    a serving replica collects concurrent requests into such a list.
    """
    prompts, gps = [], []
    stop_ids: frozenset[int] = frozenset()
    for prefix, suffix, params in items:
        prompt = draft_prompt(prefix, suffix, params, drafter).prompt
        prompts.append(prompt.ids)
        stop_ids = prompt.stop_ids  # the format's: the same for every row
        gps.append(generation_params(params))
    return drafter.generate_batch(prompts, gps, stop_ids=stop_ids) if prompts else []


def generation_params(params: InfillParams) -> GenerationParams:
    """The drafter's settings for a hole: every draft path (batched, streamed) uses these."""
    return GenerationParams(max_new_tokens=params.max_tokens, temperature=params.temperature,
                            top_p=params.top_p, stop=params.stop, seed=params.seed)


def ar_result(at: int, draft: Draft) -> InfillResult:
    """The drafter's answer as an infill result (mode ``ar``); ``at`` = len(prefix)."""
    tokens = [InfillToken(draft.text[s:e], math.exp(lp) if math.isfinite(lp) else 0.0, False)
              for (s, e), lp in zip(draft.offsets, draft.logprobs)]
    return InfillResult(draft.text, at, at, "ar", tokens, draft=draft.text)


def diffusion_lengths(params: InfillParams, refiner: TextRefiner) -> list[int]:
    """The span lengths diffusion mode tries: a quarter, half and all of ``max_tokens``."""
    n = params.max_tokens
    max_len = refiner.max_length
    if max_len is not None:  # the span and its context share the model's context: keep half for context
        n = min(n, max(1, max_len // 2))
    return sorted({max(1, n // 4), max(1, n // 2), n})


def _diffusion(prefix: str, suffix: str, params: InfillParams, refiner: TextRefiner,
               on_snapshot: SnapshotFn | None) -> InfillResult:
    left, _ = refiner.encode(prefix)
    right, _ = refiner.encode(suffix)
    ranked = refiner.fill_lengths(left, right, diffusion_lengths(params, refiner), sampler_config(params),
                                  params.window)
    best = ranked[0]
    tokens = [InfillToken(refiner.decode([t]), c, True) for t, c in zip(best.tokens, best.confidence)]
    at = len(prefix)
    if on_snapshot is not None:  # length search runs as one batch: report the winner
        on_snapshot(refiner.decode(best.tokens))
    return InfillResult(refiner.decode(best.tokens), at, at, "diffusion", tokens, nfe=best.nfe)


@dataclass
class HybridPlan:
    """A draft ready for the refiner: the document in refiner tokens and the spans to re-mask."""

    at: int  # len(prefix): where the middle goes
    left: list[int]
    mid: list[int]
    right: list[int]
    tokens: list[InfillToken]  # the draft in refiner tokens, with the drafter's confidence
    spans: list[tuple[int, int]]  # re-masked token ranges of ``mid``
    draft: str

    @property
    def edits(self) -> list[SpanEdit]:
        return [SpanEdit.remask(len(self.left) + s, len(self.left) + e) for s, e in self.spans]


def plan_hybrid(prefix: str, suffix: str, draft: Draft, params: InfillParams, refiner: TextRefiner) -> HybridPlan:
    """Map the draft onto refiner tokens and choose its weak tokens (below ``remask_below``, capped)."""
    left, _ = refiner.encode(prefix)
    right, _ = refiner.encode(suffix)
    mid, mid_off = refiner.encode(draft.text)
    # the drafter's confidence of each refiner token: the weakest drafter token it overlaps
    d_prob = [math.exp(lp) if math.isfinite(lp) else 0.0 for lp in draft.logprobs]
    conf = []
    for s, e in mid_off:
        over = [p for (ds, de), p in zip(draft.offsets, d_prob) if ds < e and s < de] or [1.0]
        conf.append(min(over))
    spans = doubtful_spans(conf, params.remask_below, dilation=0, merge_gap=1, max_fraction=params.remask_cap)
    tokens = [InfillToken(refiner.decode([t]), c, False) for t, c in zip(mid, conf)]
    return HybridPlan(len(prefix), left, mid, right, tokens, spans, draft.text)


def finish_hybrid(plan: HybridPlan, out: EditResult | None, refiner: TextRefiner) -> InfillResult:
    """The middle rebuilt token by token from the refiner's spans (``None``: nothing was re-masked)."""
    if out is None:
        return InfillResult(plan.draft, plan.at, plan.at, "hybrid", plan.tokens, draft=plan.draft)
    left, mid = plan.left, plan.mid
    new_tokens: list[InfillToken] = []
    new_ids: list[int] = []
    by_start = {f.edit.start - len(left): f for f in out.spans}
    i = 0
    while i < len(mid):
        f = by_start.get(i)
        if f is None:
            new_tokens.append(plan.tokens[i])
            new_ids.append(mid[i])
            i += 1
            continue
        old = mid[f.edit.start - len(left): f.edit.end - len(left)]
        for j, (t, c) in enumerate(zip(f.tokens, f.confidence)):
            new_tokens.append(InfillToken(refiner.decode([t]), c, j >= len(old) or t != old[j]))
            new_ids.append(t)
        i = f.edit.end - len(left)
    text = refiner.decode(new_ids)  # decoded whole: a character may span two byte-level tokens
    return InfillResult(text, plan.at, plan.at, "hybrid", new_tokens, draft=plan.draft, nfe=out.nfe)


def refine_drafts(items: list[tuple[str, str, Draft, InfillParams]], refiner: TextRefiner) -> list[InfillResult]:
    """The hybrid refinement of several drafts (``(prefix, suffix, draft, params)``), batched.

    Drafts whose sampler settings agree go through one :meth:`TextRefiner.fill` run (a serving
    replica collects concurrent requests into such a list); the results equal
    :func:`infill` in hybrid mode given the same drafts, up to sampling noise with a
    temperature above 0. An empty draft falls back to diffusion, as in :func:`infill`.
    """
    results: list[InfillResult | None] = [None] * len(items)
    groups: dict[str, list[tuple[int, HybridPlan]]] = {}
    for i, (prefix, suffix, draft, params) in enumerate(items):
        if not draft.text:
            res = _diffusion(prefix, suffix, params, refiner, None)
            res.mode, res.draft = "hybrid", ""
            results[i] = res
            continue
        plan = plan_hybrid(prefix, suffix, draft, params, refiner)
        if not plan.spans:
            results[i] = finish_hybrid(plan, None, refiner)
            continue
        key = repr((sampler_config(params), params.window))  # only identical settings share a run
        groups.setdefault(key, []).append((i, plan))
    for members in groups.values():
        params = items[members[0][0]][3]
        outs = refiner.fill([p.left + p.mid + p.right for _, p in members], [p.edits for _, p in members],
                            sampler_config(params), params.window)
        for (i, plan), out in zip(members, outs):
            results[i] = finish_hybrid(plan, out, refiner)
    return [r for r in results if r is not None]


def refine_draft(prefix: str, suffix: str, draft: Draft, params: InfillParams, refiner: TextRefiner,
                 on_snapshot: SnapshotFn | None) -> InfillResult:
    """The hybrid step of one draft: re-mask its doubtful tokens and denoise them, reporting
    each step to ``on_snapshot`` (a serving replica streams one draft this way)."""
    if not draft.text:
        res = _diffusion(prefix, suffix, params, refiner, on_snapshot)
        res.mode, res.draft = "hybrid", ""
        return res
    plan = plan_hybrid(prefix, suffix, draft, params, refiner)
    if not plan.spans:
        return finish_hybrid(plan, None, refiner)
    spans, mid = plan.spans, plan.mid

    def render(state: list[tuple[int, bool]]) -> str:
        pieces: list[str] = []
        it = iter(state)
        cursor = 0
        for s, e in spans:
            pieces.append(refiner.decode(mid[cursor:s]))
            for _ in range(e - s):
                t, m = next(it)
                pieces.append(MASK_GLYPH if m else refiner.decode([t]))
            cursor = e
        pieces.append(refiner.decode(mid[cursor:]))
        return "".join(pieces)

    out = refiner.fill([plan.left + mid + plan.right], [plan.edits], sampler_config(params), params.window,
                       on_step=_snapshots(refiner, on_snapshot, render))[0]
    res = finish_hybrid(plan, out, refiner)
    if on_snapshot is not None:
        on_snapshot(res.text)
    return res
