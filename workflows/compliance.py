"""Compliance refinement: apply a rule set to a document, with an edit per applied rule.

Deterministic rules go first: personal data is replaced by its placeholder, a banned phrase
with a preferred term is replaced by that term, a missing required clause is appended.
Then the refiner works: a banned phrase without a preferred term becomes a masked span
that it rewrites (candidates that still contain a banned phrase are rejected), and the
tokens next to a preferred term are re-masked so the sentence fits it, while the term
itself stays pinned. Every edit carries the id of the rule that caused it.

Every step is linear in the text and the number of hits (sorted sweeps and bisection, no
pairwise checks, no whole-text diff), and the model's work is bounded: at most
``max_rewrites`` spans go to the refiner. A banned phrase beyond that budget is deleted, as
one the refiner could not rewrite cleanly is, and its rule is reported in ``unresolved``:
the output never keeps a banned phrase, and a compliance officer sees which rules were not
applied by the model (refusing the whole document instead would leave all of it unchecked).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from refiner.editing import SpanEdit
from refiner.remasking import Span
from refiner.sampler import SamplerConfig
from refiner.text import TextRefiner
from workflows.audit import AuditRecord
from workflows.edits import Edit, languagetool_matches
from workflows.limits import check_input
from workflows.matching import any_phrase
from workflows.options import ComplianceParams
from workflows.regions import Region, region_diff, region_edits
from workflows.rules import BannedPhrase, RuleHit, RuleSet, find_hits


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


@dataclass(frozen=True)
class _Staged:
    """Where a hit landed in the staged text (after the deterministic replacements)."""

    hit: RuleHit
    start: int
    end: int


def apply_rules(text: str, rules: RuleSet, refiner: TextRefiner, params: ComplianceParams | None = None,
                name: str = "document") -> ComplianceResult:
    """Apply ``rules`` to ``text``; offsets of every edit point into ``text``."""
    params = params or ComplianceParams()
    check_input(text, params.max_chars, "text", "check")
    audit = AuditRecord.start("compliance", params, refiner, rules=rules.name, version=rules.version)
    with audit.timed("match"):
        hits = find_hits(text, rules)
    unresolved = [h.rule_id for h in hits if h.action == "append" and not h.replacement]
    staged, marks = _stage(text, hits)

    # the refiner rewrites banned phrases and smooths around pinned terms
    banned = [p for r in rules.rules if isinstance(r, BannedPhrase) for p in r.phrases]
    with audit.timed("refine"):
        changes, nfe, failed = _refine(staged, marks, banned, refiner, params)
    unresolved += failed
    final = _splice(staged, changes)
    regions = _regions(marks, changes)
    edits = [_attribute(e, hits) for e in region_edits(text, final, regions, reason="compliance")]
    return ComplianceResult(final, edits, region_diff(text, final, regions, name=name),
                            languagetool_matches(text, edits), hits, sorted(set(unresolved)), nfe, audit)


def _stage(text: str, hits: list[RuleHit]) -> tuple[str, list[_Staged]]:
    """Apply the deterministic actions; a rewrite hit keeps its text for the refiner."""
    pieces: list[str] = []
    marks: list[_Staged] = []
    cursor = pos = 0
    for h in hits:
        pieces.append(text[cursor:h.start])
        pos += h.start - cursor
        if h.action in ("redact", "replace"):
            new = h.replacement or ""
        elif h.action == "rewrite":
            new = text[h.start:h.end]
        else:  # append
            new = ("\n\n" + h.replacement) if h.replacement else ""
        pieces.append(new)
        marks.append(_Staged(h, pos, pos + len(new)))
        pos += len(new)
        cursor = h.end
    pieces.append(text[cursor:])
    return "".join(pieces), marks


def _splice(staged: str, changes: Sequence[tuple[int, int, str]]) -> str:
    """``staged`` with each (start, end, new) change applied; changes sorted and disjoint."""
    pieces, cursor = [], 0
    for s, e, new in changes:
        pieces += [staged[cursor:s], new]
        cursor = e
    pieces.append(staged[cursor:])
    return "".join(pieces)


def _regions(marks: list[_Staged], changes: Sequence[tuple[int, int, str]]) -> list[Region]:
    """Where the final text differs from the original, as (original span, final span) pairs.

    Both kinds of change are spans of the staged text: the hits' replacements and the
    refiner's rewrites. Overlapping ones become one region; one sweep keeps the running
    length differences (original - staged, final - staged) that map a region's ends, which
    never lie inside a change that is not part of the region.
    """
    items = sorted([(m.start, m.end, (m.hit.end - m.hit.start) - (m.end - m.start), 0) for m in marks
                    if m.end > m.start or m.hit.end > m.hit.start] +
                   [(s, e, 0, len(new) - (e - s)) for s, e, new in changes])
    out: list[Region] = []
    to_orig = to_final = 0
    cur: list[int] = []  # start, end, and the length differences inside the region
    for s, e, d_orig, d_final in items:
        if cur and s < cur[1]:
            cur[1], cur[2], cur[3] = max(cur[1], e), cur[2] + d_orig, cur[3] + d_final
            continue
        if cur:
            out.append(Region(cur[0] + to_orig, cur[1] + to_orig + cur[2],
                              cur[0] + to_final, cur[1] + to_final + cur[3]))
            to_orig, to_final = to_orig + cur[2], to_final + cur[3]
        cur = [s, e, d_orig, d_final]
    if cur:
        out.append(Region(cur[0] + to_orig, cur[1] + to_orig + cur[2], cur[0] + to_final, cur[1] + to_final + cur[3]))
    return out


def _attribute(e: Edit, hits: list[RuleHit], reach: int = 24) -> Edit:
    """Give an edit the id of the first rule hit it touches, else of the nearest hit within ``reach``.

    Hits are sorted and disjoint, so their ends rise too: bisection finds the only two
    candidates, the last hit ending before the edit and the first one after it.
    """
    i = bisect.bisect_left(hits, e.start, key=lambda h: h.end)  # first hit with end >= e.start
    best: RuleHit | None = None
    if i < len(hits) and hits[i].start <= e.end:
        best = hits[i]  # touches the edit
    else:
        left = hits[i - 1] if i > 0 else None
        right = hits[i] if i < len(hits) else None
        gap_l = e.start - left.end if left else reach + 1
        gap_r = right.start - e.end if right else reach + 1
        best = left if gap_l <= gap_r else right
        if min(gap_l, gap_r) > reach:
            best = None
    return Edit(e.start, e.end, e.before, e.after, best.rule_id if best else "compliance", e.confidence)


def _refine(staged: str, marks: list[_Staged], banned: list[str], refiner: TextRefiner,
            params: ComplianceParams) -> tuple[list[tuple[int, int, str]], int, list[str]]:
    """Rewrite banned phrases and re-mask around pinned terms; (changes, forward passes, failed rule ids).

    Each change is (start, end, new text) in the staged text, sorted and disjoint.
    """
    pinned = [(m.start, m.end) for m in marks if m.hit.action == "replace"]
    rewrite = [((m.start, m.end), m.hit.rule_id) for m in marks if m.hit.action == "rewrite"]
    if not pinned and not rewrite:
        return [], 0, []
    ids, offsets = refiner.encode(staged)
    starts = [s for s, _ in offsets]
    ends = [e for _, e in offsets]  # both rise with the token index

    def tokens_in(span: Span) -> tuple[int, int]:
        """The tokens that overlap a character span (their offsets rise, so two bisections)."""
        a, b = bisect.bisect_right(ends, span[0]), bisect.bisect_left(starts, span[1])
        return (a, b) if a < b else (0, 0)

    # banned phrases in text order; two hits under one token are one span
    spans: list[tuple[int, int, str]] = []
    for (s, e), rule in ((tokens_in(span), rule) for span, rule in rewrite):
        if e <= s:
            continue
        if spans and s < spans[-1][1]:
            spans[-1] = (spans[-1][0], max(e, spans[-1][1]), spans[-1][2])
        else:
            spans.append((s, e, rule))
    to_model = spans[:params.max_rewrites]
    over_budget = spans[params.max_rewrites:]
    edits: dict[tuple[int, int], str | None] = {(s, e): rule for s, e, rule in to_model}

    # a token is taken when a banned phrase, a pinned term or a placeholder lies under it
    taken = bytearray(len(ids))
    for s, e, _ in spans:
        taken[s:e] = b"\x01" * (e - s)
    for m in marks:
        if m.hit.action != "rewrite" and m.end > m.start:
            s, e = tokens_in((m.start, m.end))
            taken[s:e] = b"\x01" * (e - s)
    budget = params.max_rewrites - len(to_model)
    for s, e in (tokens_in(p) for p in pinned):
        for a, b in ((max(0, s - params.neighbours), s), (e, min(len(ids), e + params.neighbours))):
            # never re-mask whitespace-only neighbours, or a token already taken
            if budget > 0 and b > a and not staged[offsets[a][0]:offsets[b - 1][1]].isspace() and not any(taken[a:b]):
                edits[(a, b)] = None
                taken[a:b] = b"\x01" * (b - a)
                budget -= 1
    return _denoise(staged, ids, offsets, edits, over_budget, banned, refiner, params)


def _denoise(staged: str, ids: list[int], offsets: list[Span], edits: dict[tuple[int, int], str | None],
             over_budget: list[tuple[int, int, str]], banned: list[str], refiner: TextRefiner,
             params: ComplianceParams) -> tuple[list[tuple[int, int, str]], int, list[str]]:
    """Fill the spans of ``edits`` (retrying those that still hold a banned phrase); delete the rest."""
    check = any_phrase(banned)
    nfe = 0
    failed: list[str] = [rule for _, _, rule in over_budget]
    chosen: dict[tuple[int, int], list[int]] = {(s, e): [] for s, e, _ in over_budget}
    pending = sorted(edits)
    for attempt in range(params.attempts):
        if not pending:
            break
        cfg = SamplerConfig(steps=params.steps, threshold=params.threshold,
                            temperature=0.0 if attempt == 0 else 0.8,
                            seed=None if params.seed is None else params.seed + attempt)
        res = refiner.fill([ids], [[SpanEdit.remask(s, e) for s, e in pending]], cfg, params.window)[0]
        nfe += res.nfe
        still = []
        for f in res.spans:
            key = (f.edit.start, f.edit.end)
            if check is not None and check.search(refiner.decode(f.tokens)) is not None:
                still.append(key)
            else:
                chosen[key] = f.tokens
        pending = still
    for key in pending:  # no clean rewrite found: drop the phrase rather than keep it
        chosen[key] = []
        rule = edits[key]
        if rule is not None:
            failed.append(rule)
    changes: list[tuple[int, int, str]] = []
    cursor = 0
    for s, e in sorted(chosen):
        cs = max(cursor, offsets[s][0])  # the tokens of one character share its offsets
        ce = max(cs, offsets[e - 1][1])
        tokens = chosen[(s, e)]
        changes.append((cs, ce, refiner.decode(tokens) if tokens else ""))
        cursor = ce
    return changes, nfe, failed
