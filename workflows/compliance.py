"""Compliance refinement: apply a rule set to a document, with an edit per applied rule.

Deterministic rules go first: personal data is replaced by its placeholder and a missing
required clause is appended. A banned phrase is a *finding*: it gets candidate rewrites of
its sentence (the phrase deleted and the sentence mended, the rule's preferred term in the
form the slot needs, the refiner's rewrites at several lengths), ranked by how well the
sentence then reads (:mod:`workflows.fluency`). The best is applied only when no banned
phrase is left in what it changed and it reads no worse than the original by more than
``margin``; otherwise nothing is applied and the finding is returned as *needs review*,
with its rule, its span and the best suggestion (see :mod:`workflows.findings`). Every edit
carries the id of the rule that caused it.

Every step is linear in the text and the number of hits (sorted sweeps and bisection, no
pairwise checks, no whole-text diff), and the models' work is bounded: at most
``max_rewrites`` findings get candidates; one beyond that budget needs review, and the
compliance officer sees it (refusing the whole document instead would leave all of it
unchecked).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from refiner.text import TextRefiner
from workflows.audit import AuditRecord
from workflows.edits import Edit, languagetool_matches
from workflows.findings import Review, Rewrite, resolve
from workflows.fluency import judge
from workflows.limits import check_input
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
    unresolved: list[str]  # rule ids with a hit left as it was: needs review, or no clause to append
    needs_review: list[Review] = field(default_factory=list)  # findings not applied, with the best suggestion
    rewrites: list[Rewrite] = field(default_factory=list)  # findings rewritten in the text
    nfe: int = 0
    audit: AuditRecord | None = None

    @property
    def applied(self) -> int:
        """Banned phrases rewritten in the text."""
        return len(self.rewrites)


@dataclass(frozen=True)
class _Staged:
    """Where a hit landed in the staged text (after the deterministic replacements)."""

    hit: RuleHit
    start: int
    end: int


def apply_rules(text: str, rules: RuleSet, refiner: TextRefiner, params: ComplianceParams | None = None,
                name: str = "document", drafter: Any | None = None) -> ComplianceResult:
    """Apply ``rules`` to ``text``; offsets of every edit point into ``text``.

    ``drafter`` judges how well the rewrites read; without one the refiner judges.
    """
    params = params or ComplianceParams()
    check_input(text, params.max_chars, "text", "check")
    fluency = judge(refiner, drafter)
    audit = AuditRecord.start("compliance", params, refiner, drafter, rules=rules.name, version=rules.version,
                              judge=fluency.name)
    with audit.timed("match"):
        hits = find_hits(text, rules)
    unresolved = [h.rule_id for h in hits if h.action == "append" and not h.replacement]
    staged, marks = _stage(text, hits)

    bans = [r for r in rules.rules if isinstance(r, BannedPhrase)]
    findings = [(m.start, m.end, m.hit) for m in marks if m.hit.action in ("rewrite", "replace")]
    placeholders = [(m.start, m.end) for m in marks if m.hit.action == "redact"]
    with audit.timed("rewrite"):
        out = resolve(staged, findings, placeholders, bans, refiner, fluency, params)
    unresolved += [r.rule_id for r in out.reviews]
    final = _splice(staged, out.changes)
    regions = _regions(marks, out.changes)
    edits = [_attribute(e, hits) for e in region_edits(text, final, regions, reason="compliance")]
    audit.outcome = {"findings": len(findings), "applied": len(out.rewrites), "needs_review": len(out.reviews)}
    return ComplianceResult(final, edits, region_diff(text, final, regions, name=name),
                            languagetool_matches(text, edits), hits, sorted(set(unresolved)), out.reviews,
                            out.rewrites, out.nfe, audit)


def _stage(text: str, hits: list[RuleHit]) -> tuple[str, list[_Staged]]:
    """Apply the deterministic actions; a banned phrase keeps its text for the rewrites."""
    pieces: list[str] = []
    marks: list[_Staged] = []
    cursor = pos = 0
    for h in hits:
        pieces.append(text[cursor:h.start])
        pos += h.start - cursor
        if h.action == "redact":
            new = h.replacement or ""
        elif h.action in ("rewrite", "replace"):
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


