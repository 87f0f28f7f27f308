"""Banned-phrase findings: candidate rewrites ranked by fluency, applied or returned for review.

Each finding is worked on inside its sentence (:func:`workflows.rewrite.sentence_around`):
its candidates (:mod:`workflows.rewrite`) are whole new sentences, the judge
(:mod:`workflows.fluency`) scores them and the sentence as it stands, and the best one is
applied only when

- no banned phrase is left in what it changed, nor one made where it joins the old text
  (it must have fewer banned phrases than the sentence had), and it leaves placeholders and
  the sentence's other findings untouched; and
- it reads no worse than the sentence it replaces by more than ``fluency_margin`` (an edit of
  the text itself), or better by at least ``rewrite_gain`` (a refiner rewrite, which may
  change what the sentence says: it must clearly help, as a free revision must).

Otherwise the sentence stays as it was and the finding *needs review*: the rule, the span,
the reason and the best suggestion go back to the caller, never into the text.

The edits of the text itself (deletions, the preferred term) come first: the refiner rewrites
only the findings none of them settles, since a small refiner's rewrite is the least
predictable candidate and the one a weak judge is likeliest to mistake for fluent text.

Several findings in one sentence are taken one per round, each against the sentence as the
previous round left it; every round sends the refiner one batch (all sentences' sites) and
the judge each distinct sentence once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from refiner.text import TextRefiner
from workflows.fluency import Fluency, Reading
from workflows.matching import EncodedText
from workflows.options import ComplianceParams
from workflows.rewrite import (
    CONTEXT_CHARS,
    RewriteSettings,
    RewriteSite,
    deletions,
    refiner_rewrites,
    sentence_around,
    substitutions,
)
from workflows.rules import BannedPhrase, RuleHit

MAX_UNIT_FINDINGS = 8  # findings worked on in one sentence; a run-on text is cut between findings past it
ReviewReason = Literal["still_banned", "reads_worse", "over_budget"]
Span = tuple[int, int]


@dataclass(frozen=True)
class Review:
    """A banned phrase left in the text for a person to decide (nothing of it was applied)."""

    rule_id: str
    start: int  # the phrase in the input, code points
    end: int
    phrase: str
    reason: ReviewReason  # every candidate kept a banned phrase; the best read worse; over max_rewrites
    suggestion: str | None  # the sentence as the best candidate writes it (None: no candidate)
    fluency_before: float | None = None  # the judge's mean log-probability per token of the sentence
    fluency_after: float | None = None  # ... of the suggestion


@dataclass(frozen=True)
class Rewrite:
    """A banned phrase rewritten in the text, and how its sentence read before and after."""

    rule_id: str
    start: int  # the phrase in the input, code points
    end: int
    phrase: str
    kind: Literal["edit", "rewrite"]  # an edit of the text itself (deletion, preferred term), or the refiner's
    fluency_before: float
    fluency_after: float


@dataclass
class Resolved:
    """What became of the findings: changes to the staged text (sorted, disjoint), rewrites, reviews."""

    changes: list[tuple[int, int, str]]
    rewrites: list[Rewrite]
    reviews: list[Review]
    nfe: int


@dataclass
class _Finding:
    hit: RuleHit
    start: int  # in its unit's current sentence
    end: int
    phrase: str


@dataclass
class _Unit:
    """A sentence of the staged text with findings: as it was, as it stands, what is left to do."""

    start: int
    end: int
    original: str
    current: str
    pending: list[_Finding] = field(default_factory=list)
    guards: list[list[int]] = field(default_factory=list)  # spans no candidate may touch, kept current


def resolve(staged: str, findings: Sequence[tuple[int, int, RuleHit]], placeholders: Sequence[Span],
            bans: Sequence[BannedPhrase], refiner: TextRefiner, fluency: Fluency,
            params: ComplianceParams) -> Resolved:
    """Decide every finding (``(start, end, hit)`` in ``staged``, sorted); ``placeholders`` stay whole."""
    units = _units(staged, findings, placeholders)
    reviews = _over_budget(units, params.max_rewrites)
    settings = RewriteSettings(params.steps, params.threshold, params.attempts, params.seed, params.window,
                               params.factor)
    rewrites_done: list[Rewrite] = []
    nfe = 0
    while batch := [(u, u.pending.pop(0)) for u in units if u.pending]:
        edits = [_valid(u, f, _candidates(u, f), bans) for u, f in batch]
        rewrites: list[list[str]] = [[] for _ in batch]
        score = _read(fluency, [u.current for u, _ in batch] + [c for opts in edits for c in opts], {})
        hard = [i for i, ((u, _), opts) in enumerate(zip(batch, edits))
                if not _fluent(u, opts, score, -params.fluency_margin)]
        if hard:  # the refiner rewrites the findings that no edit of the text itself settles
            rewritten, n = refiner_rewrites(refiner, [_site(staged, *batch[i]) for i in hard], settings)
            nfe += n
            for i, more in zip(hard, rewritten):
                rewrites[i] = [c for c in _valid(*batch[i], more, bans) if c not in edits[i]]
            score = _read(fluency, [c for i in hard for c in rewrites[i]], score)
        for (u, f), opts, more in zip(batch, edits, rewrites):
            done = _decide(u, f, (opts, more), score, (-params.fluency_margin, params.rewrite_gain))
            if isinstance(done, Rewrite):
                rewrites_done.append(done)
            else:
                reviews.append(done)
    changes = []
    for u in units:
        a, b, new = _diff(u.original, u.current)
        if (a, b, new) != (0, 0, ""):
            changes.append((u.start + a, u.start + b, new))
    return Resolved(changes, sorted(rewrites_done, key=lambda r: (r.start, r.end)),
                    sorted(reviews, key=lambda r: (r.start, r.end)), nfe)


def _units(staged: str, findings: Sequence[tuple[int, int, RuleHit]], placeholders: Sequence[Span]) -> list[_Unit]:
    """The sentences that hold findings (overlapping ones joined), each with its findings and
    the placeholders inside it (relative to the sentence).

    A text without sentence ends would make one sentence of everything, and each finding's
    work would grow with the text: past :data:`MAX_UNIT_FINDINGS` a unit is cut after its last
    finding, so the work per finding stays bounded.
    """
    units: list[_Unit] = []
    bounds: list[list[int]] = []  # start, end, findings, end of the last finding
    for s, e, _ in findings:
        a, b = sentence_around(staged, s, e)
        a, b = min(a, s), max(b, e)
        if bounds and a < bounds[-1][1] and bounds[-1][2] < MAX_UNIT_FINDINGS:
            bounds[-1][1:] = [max(bounds[-1][1], b), bounds[-1][2] + 1, e]
        elif bounds and a < bounds[-1][1]:  # a text without sentence ends: cut between two findings
            bounds[-1][1] = bounds[-1][3]
            bounds.append([bounds[-1][3], b, 1, e])
        else:
            bounds.append([a, b, 1, e])
    units = [_Unit(a, b, staged[a:b], staged[a:b]) for a, b, _, _ in bounds]
    i = 0
    for s, e, hit in findings:
        while units[i].end < e:
            i += 1
        u = units[i]
        u.pending.append(_Finding(hit, s - u.start, e - u.start, staged[s:e]))
    i = 0
    for s, e in placeholders:
        while i < len(units) and units[i].end <= s:
            i += 1
        if i < len(units) and units[i].start < e:
            u = units[i]
            u.guards.append([max(s, u.start) - u.start, min(e, u.end) - u.start])
    return units


def _over_budget(units: list[_Unit], budget: int) -> list[Review]:
    """Findings past the first ``budget`` (in text order) need review, with the plain deletion
    as their suggestion (no model runs for them); their phrases become guards."""
    reviews: list[Review] = []
    seen = 0
    for u in units:
        keep = []
        for f in u.pending:
            seen += 1
            if seen <= budget:
                keep.append(f)
                continue
            reviews.append(_review(u, f, "over_budget", deletions(u.current, f.start, f.end)[0]))
            u.guards.append([f.start, f.end])
        u.pending = keep
    return reviews


def _site(staged: str, u: _Unit, f: _Finding) -> RewriteSite:
    """The refiner's view of a finding: its sentence as it stands, with the staged text around."""
    return RewriteSite(staged[max(0, u.start - CONTEXT_CHARS):u.start], u.current, f.start, f.end,
                       staged[u.end:u.end + CONTEXT_CHARS])


def _read(fluency: Fluency, texts: list[str], known: dict[str, Reading]) -> dict[str, Reading]:
    """``known`` with the judge's reading of each of ``texts`` it lacks (each text read once)."""
    new = [t for t in dict.fromkeys(texts) if t not in known]
    return {**known, **dict(zip(new, fluency(new)))}


def _fluent(u: _Unit, options: list[str], score: dict[str, Reading], gain: float) -> list[str]:
    """The options that read at least ``gain`` better per token than the sentence as it stands
    (a negative gain: no worse than that)."""
    before = score[u.current].mean
    return [c for c in options if score[c].mean >= before + gain]


def _candidates(u: _Unit, f: _Finding) -> list[str]:
    """The deletions and, where the rule names one, the preferred term's forms."""
    out = deletions(u.current, f.start, f.end)
    if f.hit.replacement:
        out += substitutions(u.current, f.start, f.end, f.hit.replacement)
    return out


def _valid(u: _Unit, f: _Finding, candidates: list[str], bans: Sequence[BannedPhrase]) -> list[str]:
    """The distinct candidates that clear the finding and touch nothing they must not."""
    before = len(banned_spans(u.current, bans))
    keep: list[Span] = [(g[0], g[1]) for g in u.guards] + [(o.start, o.end) for o in u.pending]
    out = []
    for c in dict.fromkeys(candidates):
        if c == u.current or not c.strip():
            continue
        a, b, new = _diff(u.current, c, (f.start, f.end))
        if any(s < b and e > a for s, e in keep):
            continue  # a placeholder or another finding changed
        found = banned_spans(c, bans)
        if len(found) < before and not any(_touches(s, e, a, a + len(new)) for s, e in found):
            out.append(c)
    return out


def _touches(s: int, e: int, a: int, b: int) -> bool:
    """Whether the span ``[s, e)`` overlaps the text ``[a, b)``, or straddles the seam ``a``
    where an empty range stands (text only taken out, or only put in)."""
    return s < b and e > a if b > a else s < a < e


def banned_spans(text: str, bans: Sequence[BannedPhrase]) -> list[Span]:
    """Every match of every banned phrase in ``text``, as each rule matches it."""
    enc = EncodedText(text)
    return [span for ban in bans for p in ban.phrases for span in enc.phrase(p, ban.case_sensitive, ban.whole_word)]


def _decide(u: _Unit, f: _Finding, options: tuple[list[str], list[str]], score: dict[str, Reading],
            gains: tuple[float, float]) -> Rewrite | Review:
    """Apply the best option to ``u`` (the rewrite) or say why not (the review).

    ``options``: the edits of the text itself and the refiner's rewrites; ``gains``: how much
    better per token each kind must read than the sentence (an edit of the text: no worse than
    ``-fluency_margin``; a rewrite: clearly better, by ``rewrite_gain``, as a free revision must
    be). Of the options that read well enough, the likeliest sentence in all wins: ranking by
    the mean alone would reward padding, since an easy token such as " be" after " will" raises
    the mean of "will be deliver" above that of "will deliver" under a small model. Where none
    reads well enough, the one that comes closest is the suggestion.
    """
    before = score[u.current].mean
    everything = options[0] + options[1]
    if not everything:
        u.guards.append([f.start, f.end])
        return _review(u, f, "still_banned", None, before)
    fluent = _fluent(u, options[0], score, gains[0]) + _fluent(u, options[1], score, gains[1])
    if not fluent:
        best = max(everything, key=lambda c: score[c].mean - (gains[1] if c in options[1] else gains[0]))
        u.guards.append([f.start, f.end])
        return _review(u, f, "reads_worse", best, before, score[best].mean)
    best = max(fluent, key=lambda c: score[c].total)
    a, b, new = _diff(u.current, best, (f.start, f.end))
    shift = len(new) - (b - a)
    for span in u.guards:
        if span[0] >= b:
            span[0] += shift
            span[1] += shift
    for o in u.pending:
        if o.start >= b:
            o.start, o.end = o.start + shift, o.end + shift
    u.current = best
    kind: Literal["edit", "rewrite"] = "edit" if best in options[0] else "rewrite"
    return Rewrite(f.hit.rule_id, f.hit.start, f.hit.end, f.phrase, kind, round(before, 4), round(score[best].mean, 4))


def _review(u: _Unit, f: _Finding, reason: ReviewReason, suggestion: str | None,
            before: float | None = None, after: float | None = None) -> Review:
    return Review(f.hit.rule_id, f.hit.start, f.hit.end, f.phrase, reason, suggestion,
                  None if before is None else round(before, 4), None if after is None else round(after, 4))


def _diff(old: str, new: str, within: Span | None = None) -> tuple[int, int, str]:
    """``old[a:b]`` replaced by ``new_part`` gives ``new``: the common ends taken off, but never
    those of ``within`` (the finding: in "thethen" less "the", the first "the" went, not the second)."""
    n = min(len(old), len(new))
    lo, hi = within or (n, len(old) - n)
    p = 0
    while p < min(n, lo) and old[p] == new[p]:
        p += 1
    s = 0
    while s < min(n - p, len(old) - hi) and old[len(old) - 1 - s] == new[len(new) - 1 - s]:
        s += 1
    return p, len(old) - s, new[p:len(new) - s]
