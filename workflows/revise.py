"""Revision of a document or code block: user spans, or doubtful spans found by the models.

With spans selected, exactly those are re-masked and denoised. With none, every token is
scored (the refiner's confidence in the text as it stands, and/or the drafter's
log-probabilities), tokens below a bar become masks, masks are dilated, merged and capped,
and the refiner denoises them. Long documents are scored in chunks cut at paragraph
breaks, each with context across the cut, all chunks in one batch; denoising feeds only a
window around each span, so cost follows the number of spans, not the document's length.
Every offset in the result points into the original text.

Prose found this way is first proofread (see :mod:`workflows.proofread`): misspelled,
swapped and missing words, each fix kept only when the drafter and the refiner both score
its sentence clearly higher. Free-form rewriting of doubtful prose spans is off by default
(``rewrite_prose``): a small refiner's rewrites of prose made it worse, and its own
pseudo-likelihood check approved them. Code is never proofread.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drafter.model import Drafter
from refiner.remasking import Span, doubtful_spans, token_spans, validate_char_spans
from refiner.sampler import SamplerConfig, StepEvent
from refiner.text import RevisedText, TextRefiner
from workflows.audit import AuditRecord
from workflows.edits import Edit, compute_edits, languagetool_matches, relabel, unified_diff
from workflows.infill import MASK_GLYPH
from workflows.limits import check_input
from workflows.options import ReviseParams
from workflows.proofread import ProofreadConfig, looks_like_code, proofread, to_original

_PARAGRAPH = re.compile(r"\n[ \t]*\n")


@dataclass
class ReviseResult:
    text: str
    edits: list[Edit]
    diff: str
    matches: list[dict[str, Any]]
    nfe: int = 0
    spans: list[Span] = field(default_factory=list)  # character ranges that were re-masked
    audit: AuditRecord | None = None


SnapshotFn = Callable[[str], None]


def revise(
    text: str,
    params: ReviseParams,
    refiner: TextRefiner,
    drafter: Drafter | None = None,
    on_snapshot: SnapshotFn | None = None,
    name: str = "text",
    scorer: Any | None = None,
) -> ReviseResult:
    """Revise ``text``; returns the revised text, word-level edits, a diff and an audit record.

    ``drafter`` finds doubtful tokens (``detect``) and checks proofreading's fixes (without
    it, the refiner alone checks them); ``scorer`` stands in for it where only the text's own
    scores are at hand (a Serve replica holding no drafter weights): it finds doubtful tokens only.
    """
    check_input(text, params.max_chars, "text", "revise")
    detector = scorer or drafter
    if params.spans is None and params.detect in ("drafter", "both") and detector is None:
        raise ValueError(f"detect={params.detect!r} needs a drafter")
    audit = AuditRecord.start("revise", params, refiner, detector)
    cfg = SamplerConfig(steps=params.steps, threshold=params.threshold, temperature=params.temperature,
                        seed=params.seed, cache=params.cache, factor=params.factor)

    stage: list[Edit] = []  # proofreading's edits, offsets into ``text``
    source = text
    if params.spans is None and _is_prose(text, params.language):
        text, stage = _proofread_stage(source, params, refiner, drafter, audit, on_snapshot)
        if not params.rewrite_prose:
            return _staged_only(source, text, stage, audit, name)

    with audit.timed("tokenize"):
        ids, offsets = refiner.encode(text)
    if params.spans is not None:
        reason = "user_span"
        spans = token_spans(offsets, validate_char_spans(text, params.spans))
    else:
        reason = "low_confidence"
        with audit.timed("score"):
            probs = doubt_scores(text, ids, offsets, params, refiner, detector)
        spans = doubtful_spans(probs, params.remask_below, params.dilation, params.merge_gap, params.max_fraction)
    if not spans:
        return _staged_only(source, text, stage, audit, name)

    with audit.timed("refine"):
        out = refiner.revise_tokens(text, ids, offsets, spans, cfg, params.window,
                                    on_step=_snapshots(text, offsets, spans, refiner, on_snapshot))
    if params.spans is None and params.only_improvements and out.edits:
        with audit.timed("verify"):
            out = keep_improvements(text, out, refiner, params)
    rewrites = [Edit(to_original(e.start, stage), to_original(e.end, stage, right=True), "", e.after, reason,
                     e.confidence) for e in out.edits]
    edits = compute_edits(source, out.text, reason=reason)
    edits = [_with_confidence(e, rewrites) for e in relabel(edits, stage + rewrites)]
    if on_snapshot is not None:
        on_snapshot(out.text)
    char_spans = [(to_original(offsets[s][0], stage), to_original(offsets[e - 1][1], stage, right=True))
                  for s, e in spans]
    return ReviseResult(out.text, edits, unified_diff(source, out.text, name=name),
                        languagetool_matches(source, edits), nfe=out.nfe, spans=char_spans, audit=audit)


def _proofread_stage(source: str, params: ReviseParams, refiner: TextRefiner, drafter: Drafter | None,
                     audit: AuditRecord, on_snapshot: SnapshotFn | None) -> tuple[str, list[Edit]]:
    """Prose proofread (spelling, word order, missing words) as the revision's first stage: the
    text and its edits. The audit record says which models checked the fixes."""
    if not proofreads(params):
        return source, []
    audit.parameters["proofread_judges"] = ["drafter", "refiner"] if drafter is not None else ["refiner"]
    with audit.timed("proofread"):
        text, stage = proofread(source, refiner, drafter, ProofreadConfig(), spelling=params.spelling,
                                word_order=params.word_order, missing_words=params.missing_words)
    if stage and on_snapshot is not None:
        on_snapshot(text)
    return text, stage


def _staged_only(source: str, text: str, stage: list[Edit], audit: AuditRecord, name: str) -> ReviseResult:
    """The result when nothing is re-masked: the proofreading's edits alone."""
    edits = relabel(compute_edits(source, text, reason="spelling"), stage)
    return ReviseResult(text, edits, unified_diff(source, text, name=name) if edits else "",
                        languagetool_matches(source, edits), audit=audit)


PROSE_LANGUAGES = ("prose", "text", "plain", "markdown", "english")


def proofreads(params: ReviseParams) -> bool:
    """Whether a revision with these options proofreads prose it is given (no spans, a check on)."""
    checks = params.spelling or params.word_order or params.missing_words
    prose = params.language is None or params.language.lower() in PROSE_LANGUAGES
    return params.spans is None and checks and prose


def _is_prose(text: str, language: str | None) -> bool:
    if language is not None:
        return language.lower() in PROSE_LANGUAGES
    return not looks_like_code(text)


def _text_logp(text: str, refiner: TextRefiner, params: ReviseParams) -> tuple[list[Span], list[float]]:
    """Each token's log-probability under the refiner, the text as it stands."""
    ids, offsets = refiner.encode(text)
    chunks, context = scoring_chunks(text, offsets, refiner, params)
    return offsets, refiner.token_logprobs(ids, chunks, context, params.verify_stride)


def _mean_over(offsets: list[Span], logp: list[float], start: int, end: int) -> float:
    """Mean log-probability of the tokens overlapping [start, end) (the nearest token if empty)."""
    over = [lp for (s, e), lp in zip(offsets, logp) if s < max(end, start + 1) and start < e]
    return sum(over) / len(over) if over else 0.0


def keep_improvements(text: str, out: RevisedText, refiner: TextRefiner, params: ReviseParams) -> RevisedText:
    """Keep only the rewrites the refiner itself scores higher than the text they replace.

    A weak or unsure model re-masks right text too; scoring old and new text with the same
    single pass (each token given both sides) turns a rewrite into a claim the model must
    back: mean log-probability of the new span above the old one's by ``params.margin``.
    """
    old_off, old_lp = _text_logp(text, refiner, params)
    new_off, new_lp = _text_logp(out.text, refiner, params)
    kept, shift = [], 0
    for e in sorted(out.edits, key=lambda e: e.start):
        ns, ne = e.start + shift, e.start + shift + len(e.after)
        shift += len(e.after) - len(e.before)
        if _mean_over(new_off, new_lp, ns, ne) > _mean_over(old_off, old_lp, e.start, e.end) + params.margin:
            kept.append(e)
    new = text
    for e in sorted(kept, key=lambda e: e.start, reverse=True):
        new = new[: e.start] + e.after + new[e.end :]
    return RevisedText(new, kept, out.nfe)


def _with_confidence(e: Edit, spans: list[Edit]) -> Edit:
    over = [s.confidence for s in spans if s.start <= e.end and e.start <= s.end]
    conf = min(over) if over else e.confidence
    return Edit(e.start, e.end, e.before, e.after, e.reason, round(conf, 4))


def paragraph_chunks(text: str, offsets: list[Span], chunk_tokens: int) -> list[Span]:
    """Cut token indices into chunks of at most ``chunk_tokens``, preferring paragraph breaks."""
    breaks = {m.end() for m in _PARAGRAPH.finditer(text)}
    # token index at which a paragraph starts
    starts = [i for i, (s, _) in enumerate(offsets) if s in breaks]
    chunks: list[Span] = []
    lo = 0
    n = len(offsets)
    while lo < n:
        hi = min(n, lo + chunk_tokens)
        if hi < n:
            cut = [s for s in starts if lo < s <= hi]
            if cut and cut[-1] - lo >= chunk_tokens // 4:
                hi = cut[-1]
        chunks.append((lo, hi))
        lo = hi
    return chunks


def refiner_scores(ids: list[int], chunks: list[Span], refiner: TextRefiner, context: int,
                   stride: int | None = None) -> list[float]:
    """p the refiner gives each token, chunk by chunk in one batch (see ``TextRefiner.token_logprobs``)."""
    return [math.exp(lp) for lp in refiner.token_logprobs(ids, chunks, context, stride)]


def scoring_chunks(text: str, offsets: list[Span], refiner: TextRefiner,
                   params: ReviseParams) -> tuple[list[Span], int]:
    """Paragraph chunks that fit the model with room for ``context`` tokens on each side."""
    max_len = refiner.max_length or 4096
    chunk = min(params.chunk_tokens, max_len // 2)
    context = min(64, (max_len - chunk) // 2)
    return paragraph_chunks(text, offsets, chunk), context


def drafter_scores(text: str, offsets: list[Span], drafter: Drafter) -> list[float]:
    """The drafter's p of each refiner token: the weakest drafter token overlapping it."""
    sc = drafter.score(text)
    d = [(s, e, math.exp(lp) if math.isfinite(lp) else 1.0) for (s, e), lp in zip(sc.offsets, sc.logprobs)]
    out = [1.0] * len(offsets)
    j = 0
    for i, (s, e) in enumerate(offsets):
        while j < len(d) and d[j][1] <= s:
            j += 1
        k, worst = j, 1.0
        while k < len(d) and d[k][0] < e:
            worst = min(worst, d[k][2])
            k += 1
        out[i] = worst
    return out


def doubt_scores(text: str, ids: list[int], offsets: list[Span], params: ReviseParams,
                 refiner: TextRefiner, drafter: Drafter | None) -> list[float]:
    """Per-token probability that the token is right; the lower, the more doubtful."""
    scores = [1.0] * len(ids)
    if params.detect in ("refiner", "both"):
        chunks, context = scoring_chunks(text, offsets, refiner, params)
        scores = [min(a, b) for a, b in zip(scores, refiner_scores(ids, chunks, refiner, context))]
    if params.detect in ("drafter", "both") and drafter is not None:
        scores = [min(a, b) for a, b in zip(scores, drafter_scores(text, offsets, drafter))]
    # whitespace-only tokens are never doubtful on their own: re-masking them churns layout
    return [1.0 if text[s:e].isspace() else p for p, (s, e) in zip(scores, offsets)]


def _snapshots(text: str, offsets: list[Span], spans: list[Span], refiner: TextRefiner,
               on_snapshot: SnapshotFn | None) -> Callable[[StepEvent], None] | None:
    if on_snapshot is None:
        return None

    def cb(ev: StepEvent) -> None:
        state = iter(ev.span_state())
        pieces, cursor = [], 0
        for s, e in spans:
            cs = offsets[s][0]
            pieces.append(text[cursor:cs])
            span_state = (next(state) for _ in range(e - s))
            pieces.append("".join(MASK_GLYPH if masked else refiner.decode([t]) for t, masked in span_state))
            cursor = offsets[e - 1][1]
        pieces.append(text[cursor:])
        on_snapshot("".join(pieces))

    return cb
