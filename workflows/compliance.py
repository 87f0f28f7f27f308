"""Compliance refinement: apply a rule set to a document, with an edit per applied rule.

Deterministic rules go first: personal data is replaced by its placeholder, a banned phrase
with a preferred term is replaced by that term, a missing required clause is appended.
Then the refiner works: a banned phrase without a preferred term becomes a masked span
that it rewrites (candidates that still contain a banned phrase are rejected), and the
tokens next to a preferred term are re-masked so the sentence fits it, while the term
itself stays pinned. Every edit carries the id of the rule that caused it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from refiner.editing import SpanEdit, fill_spans
from refiner.remasking import Span
from refiner.sampler import SamplerConfig
from refiner.text import TextRefiner
from workflows.audit import AuditRecord, ModelInfo
from workflows.edits import Edit, compute_edits, languagetool_matches, unified_diff
from workflows.rules import BannedPhrase, RuleHit, RuleSet, find_hits


class ComplianceParams(BaseModel):
    """Per-request options of rule application, documented field by field."""

    model_config = ConfigDict(extra="forbid")
    neighbours: int = Field(1, ge=0, le=4, description="tokens re-masked on each side of a pinned preferred term")
    attempts: int = Field(3, ge=1, le=10, description="rewrites tried per banned phrase before it is deleted")
    steps: int = Field(16, ge=1, le=256, description="denoising step budget")
    threshold: float | None = Field(0.9, ge=0.0, le=1.0, description="commit threshold; null = even schedule")
    window: int = Field(64, ge=1, le=4096, description="context tokens on each side of a span")
    seed: int | None = Field(0, description="makes the rewrites reproducible")
    max_chars: int = Field(1_000_000, ge=1, description="longer documents are refused")


@dataclass
class ComplianceResult:
    text: str
    edits: list[Edit]
    diff: str
    matches: list[dict[str, Any]]
    hits: list[RuleHit]
    unresolved: list[str]  # rule ids whose hits could not be fixed (e.g. no clause to append)
    nfe: int = 0
    audit: AuditRecord | None = None


def apply_rules(text: str, rules: RuleSet, refiner: TextRefiner, params: ComplianceParams | None = None,
                name: str = "document") -> ComplianceResult:
    """Apply ``rules`` to ``text``; offsets of every edit point into ``text``."""
    params = params or ComplianceParams()
    if not text:
        raise ValueError("text is empty: there is nothing to check")
    if len(text) > params.max_chars:
        raise ValueError(f"text has {len(text)} characters, over the limit of {params.max_chars}")
    audit = AuditRecord("compliance", [ModelInfo.of(refiner.name, getattr(refiner, "path", None))],
                        {"rules": rules.name, "version": rules.version, **params.model_dump()}, params.seed)
    hits = find_hits(text, rules)
    unresolved = [h.rule_id for h in hits if h.action == "append" and not h.replacement]

    # 1. deterministic replacements; remember where pinned terms and rewrite spans land
    pieces: list[str] = []
    pinned: list[Span] = []
    rewrite: list[tuple[Span, str]] = []
    cursor = pos = 0
    for h in hits:
        pieces.append(text[cursor:h.start])
        pos += h.start - cursor
        if h.action in ("redact", "replace"):
            new = h.replacement or ""
            if h.action == "replace":
                pinned.append((pos, pos + len(new)))
        elif h.action == "rewrite":
            new = text[h.start:h.end]
            rewrite.append(((pos, pos + len(new)), h.rule_id))
        else:  # append
            new = ("\n\n" + h.replacement) if h.replacement else ""
        pieces.append(new)
        pos += len(new)
        cursor = h.end
    pieces.append(text[cursor:])
    staged = "".join(pieces)

    # 2. the refiner rewrites banned phrases and smooths around pinned terms
    banned = [p for r in rules.rules if isinstance(r, BannedPhrase) for p in r.phrases]
    nfe = 0
    with audit.timed("refine"):
        final, nfe, failed = _refine(staged, pinned, rewrite, banned, refiner, params)
    unresolved += failed
    edits = compute_edits(text, final, reason="compliance")
    edits = [_attribute(e, hits) for e in edits]
    return ComplianceResult(final, edits, unified_diff(text, final, name=name), languagetool_matches(text, edits),
                            hits, sorted(set(unresolved)), nfe, audit)


def _attribute(e: Edit, hits: list[RuleHit], reach: int = 24) -> Edit:
    """Give an edit the id of the rule hit it overlaps, else of the nearest hit within ``reach``."""
    def gap(h: RuleHit) -> int:
        if h.start <= e.end and e.start <= h.end:
            return 0
        return min(abs(h.start - e.end), abs(e.start - h.end))

    near = sorted(hits, key=gap)
    rule = near[0].rule_id if near and gap(near[0]) <= reach else "compliance"
    return Edit(e.start, e.end, e.before, e.after, rule, e.confidence)


def _contains_banned(text: str, banned: list[str]) -> bool:
    return any(re.search(rf"(?<!\w){re.escape(p)}(?!\w)", text, re.IGNORECASE) for p in banned)


def _refine(staged: str, pinned: list[Span], rewrite: list[tuple[Span, str]], banned: list[str],
            refiner: TextRefiner, params: ComplianceParams) -> tuple[str, int, list[str]]:
    if not pinned and not rewrite:
        return staged, 0, []
    ids, offsets = refiner.encode(staged)

    def tokens_in(span: Span) -> tuple[int, int]:
        inside = [i for i, (s, e) in enumerate(offsets) if s < span[1] and span[0] < e]
        return (inside[0], inside[-1] + 1) if inside else (0, 0)

    edits: dict[tuple[int, int], str | None] = {}
    pinned_tok = [tokens_in(p) for p in pinned]
    for (s, e), rule in ((tokens_in(span), rule) for span, rule in rewrite):
        if e > s:
            edits[(s, e)] = rule
    for s, e in pinned_tok:
        for a, b in ((max(0, s - params.neighbours), s), (e, min(len(ids), e + params.neighbours))):
            # never re-mask whitespace-only neighbours or another pinned term
            if b > a and not staged[offsets[a][0]:offsets[b - 1][1]].isspace() and \
                    not any(ps < b and a < pe for ps, pe in pinned_tok) and \
                    not any(rs < b and a < re_ for rs, re_ in edits):
                edits[(a, b)] = None
    spans = sorted(edits)
    sp = refiner.special
    nfe = 0
    failed: list[str] = []
    chosen: dict[tuple[int, int], list[int]] = {}
    pending = list(spans)
    for attempt in range(params.attempts):
        if not pending:
            break
        cfg = SamplerConfig(steps=params.steps, threshold=params.threshold,
                            temperature=0.0 if attempt == 0 else 0.8,
                            seed=None if params.seed is None else params.seed + attempt)
        res = fill_spans(refiner.predictor, [ids], [[SpanEdit.remask(s, e) for s, e in pending]],
                         pad_id=int(sp.pad or 0), window=params.window, config=refiner.sampler(cfg),
                         filler_id=sp.filler)[0]
        nfe += res.nfe
        still = []
        for f in res.spans:
            key = (f.edit.start, f.edit.end)
            if _contains_banned(refiner.decode(f.tokens), banned):
                still.append(key)
            else:
                chosen[key] = f.tokens
        pending = still
    for key in pending:  # no clean rewrite found: drop the phrase rather than keep it
        chosen[key] = []
        if edits[key] is not None:
            failed.append(str(edits[key]))
    out = staged
    for s, e in sorted(chosen, reverse=True):
        cs, ce = offsets[s][0], offsets[e - 1][1]
        out = out[:cs] + refiner.decode(chosen[(s, e)]) + out[ce:]
    return out, nfe, failed
