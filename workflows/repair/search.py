"""The repair search: rounds over a small beam of partly repaired texts.

Each round tries every beam text's minimal fixes (:mod:`workflows.repair.fixes`) within a
budget of parser checks; those that parse, or failing that move the first error past the
old one, are scored by the refiner (:mod:`workflows.repair.scoring`) and ranked by number
of edits, then score. Where no minimal edit helps, the refiner rewrites spans around the
error (:mod:`workflows.repair.fallback`). The code is only ever parsed, never run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from refiner.text import TextRefiner
from workflows.audit import AuditRecord
from workflows.edits import Edit, compute_edits, languagetool_matches, unified_diff
from workflows.limits import check_input
from workflows.options import RepairParams
from workflows.repair.fallback import best_rewrite
from workflows.repair.fixes import Fix, minimal_fixes
from workflows.repair.scoring import score_fixes
from workflows.syntax import SyntaxIssue, check, normalize_language

_MAX_SCORED = 48  # candidates scored by the refiner per round: one batch of 4 rows each


@dataclass
class RepairResult:
    text: str
    parses: bool
    edits: list[Edit]
    diff: str
    matches: list[dict[str, Any]]
    rounds: int
    candidates: int  # candidates checked in all (minimal edits and denoised)
    issues_before: list[SyntaxIssue] = field(default_factory=list)
    issues_after: list[SyntaxIssue] = field(default_factory=list)
    nfe: int = 0
    audit: AuditRecord | None = None
    checks: int = 0  # parser checks in all



@dataclass
class _Node:
    """A partly repaired text, with how it was reached."""

    text: str
    issues: list[SyntaxIssue]
    steps: list[list[Edit]]  # each round's edits, in the coordinates of that round's input
    n_edits: int = 0
    n_hinted: int = 0  # fixes the parser's message named that made the text parse
    score: float = 0.0  # sum of the refiner's score changes of the fixes

    def rank(self) -> tuple[int, int, float]:
        """Fewest edits; then the most the parser asked for; then the refiner's preference."""
        return (self.n_edits, -self.n_hinted, -self.score)

    @property
    def parses(self) -> bool:
        return not self.issues


class _Checker:
    """The parser, counted: a round may spend at most its budget of checks."""

    def __init__(self, lang: str) -> None:
        self.lang, self.count = lang, 0

    def __call__(self, text: str) -> list[SyntaxIssue]:
        self.count += 1
        return check(text, self.lang)


def repair(code: str, params: RepairParams, refiner: TextRefiner, name: str = "code") -> RepairResult:
    """Repair ``code`` so that it parses; code that already parses comes back unchanged."""
    check_input(code if code.strip() else "", params.max_chars, "code", "repair")  # blank code counts as empty
    lang = normalize_language(params.language)
    audit = AuditRecord.start("repair", params, refiner)
    checker = _Checker(lang)
    before = checker(code)
    beam = [_Node(code, before, [])]
    best: _Node | None = None
    rounds = tried = nfe = 0
    while before and rounds < params.rounds:
        rounds += 1
        with audit.timed("round"):
            children, n, t = _minimal_round(beam, lang, params, refiner, checker)
            nfe, tried = nfe + n, tried + t
            if not children:  # no minimal edit helps: the refiner rewrites spans around the error
                children, n, t = _refiner_round(beam[0], lang, params, refiner)
                nfe, tried = nfe + n, tried + t
        done = [c for c in children if c.parses]
        if done:
            best = min(done, key=_Node.rank)
            break
        if not children:
            break
        beam = sorted(children, key=_Node.rank)[: params.beam]
    current, issues = (best.text, []) if best is not None else (code, before)
    edits = _edits_of(code, current, best.steps) if best is not None else []
    return RepairResult(current, not issues, edits, unified_diff(code, current, name=name),
                        languagetool_matches(code, edits), rounds, tried, before, issues, nfe, audit,
                        checker.count)


def _minimal_round(beam: list[_Node], lang: str, params: RepairParams, refiner: TextRefiner,
                   checker: _Checker) -> tuple[list[_Node], int, int]:
    """Every beam text's minimal fixes, checked by the parser within the round's budget.

    Returns the children that parse (or, if none does, that moved the first error past the
    parent's), scored by the refiner; the forward passes; the candidates checked.
    """
    budget = max(1, params.max_checks // len(beam))

    def splits(line: str) -> list[int]:
        return [e for _, e in refiner.encode(line)[1]]

    parsing: list[tuple[_Node, Fix, list[SyntaxIssue]]] = []
    progress: list[tuple[_Node, Fix, list[SyntaxIssue]]] = []
    tried = 0
    for node in beam:
        issue = node.issues[0]
        for fix in minimal_fixes(node.text, issue, lang, params.context_lines, splits, limit=budget):
            text = fix.apply(node.text)
            issues = checker(text)
            tried += 1
            if not issues:
                parsing.append((node, fix, issues))
            elif _progressed(node.text, issue, text, issues[0], fix, lang):
                progress.append((node, fix, issues))
    found = parsing or progress
    if not found:
        return [], 0, tried
    found = found[:_MAX_SCORED]
    deltas = score_fixes(refiner, [(n.text, f) for n, f, _ in found])
    # the confidence of a fix: its share of the probability among the fixes of its text
    norm: dict[int, float] = {}
    for node in beam:
        mine = [d for (n, _, _), d in zip(found, deltas) if n is node]
        if mine:
            top = max(mine)
            norm[id(node)] = top + math.log(sum(math.exp(d - top) for d in mine))
    children = []
    for (node, fix, issues), d in zip(found, deltas):
        conf = math.exp(d - norm[id(node)])
        edit = Edit(fix.start, fix.end, node.text[fix.start : fix.end], fix.after, fix.reason, round(conf, 4))
        children.append(_Node(fix.apply(node.text), issues, [*node.steps, [_trim_edit(edit)]],
                              node.n_edits + 1, node.n_hinted + (fix.hinted and not issues), node.score + d))
    return children, 1, tried



def _refiner_round(node: _Node, lang: str, params: RepairParams,
                   refiner: TextRefiner) -> tuple[list[_Node], int, int]:
    """The refiner rewrites spans around the first error; the best candidate, as one child."""
    best, nfe, tried = best_rewrite(node.text, node.issues[0], lang, params, refiner)
    if best is None:
        return [], nfe, tried
    edits = compute_edits(node.text, best.text, reason="syntax: rewrote span",
                          confidence=round(math.exp(min(0.0, best.score)), 4))
    return [_Node(best.text, best.issues, [*node.steps, edits], node.n_edits + len(edits), node.n_hinted,
                  node.score + best.score)], nfe, tried


def _trim_edit(e: Edit) -> Edit:
    """Drop what before and after share at their ends ("    " -> "  " is two spaces deleted)."""
    b, a, s, t = e.before, e.after, e.start, e.end
    while b and a and b[0] == a[0]:
        b, a, s = b[1:], a[1:], s + 1
    while b and a and b[-1] == a[-1]:
        b, a, t = b[:-1], a[:-1], t - 1
    return Edit(s, t, b, a, e.reason, e.confidence)


def _edits_of(code: str, final: str, steps: list[list[Edit]]) -> list[Edit]:
    """Each round's edits carried back to offsets into ``code``.

    A later edit inside text an earlier one inserted cannot be carried back; then the whole
    change is described once, as computed between ``code`` and ``final``.
    """
    done: list[Edit] = []  # sorted, in the original's coordinates
    for step in steps:
        for e in sorted(step, key=lambda e: e.start, reverse=True):
            shift = 0
            for d in done:
                d_start = d.start + shift
                d_end = d_start + len(d.after)
                if e.end <= d_start and not (e.start == e.end == d_start == d_end):
                    break
                if e.start >= d_end:
                    shift += len(d.after) - len(d.before)
                    continue
                return compute_edits(code, final, reason="syntax: rewrote")
            s, t = e.start - shift, e.end - shift
            done.append(Edit(s, t, code[s:t], e.after, e.reason, e.confidence))
            done.sort(key=lambda d: (d.start, d.end))
    return done


def _progressed(before: str, issue: SyntaxIssue, after: str, new: SyntaxIssue, fix: Fix, lang: str) -> bool:
    """Did ``fix`` clear ``issue``, leaving another error?

    The error left must not be the old one moved along, and either lie past the old error
    and the fix, or more than a line away from both (the parser may report a later error
    first: a bracket mismatch before a missing keyword). In Python the fixed line must also
    parse on its own, so a fix that only trades one error for another is not progress.
    """
    delta = len(fix.after) - (fix.end - fix.start)
    moved = issue.start + (delta if issue.start >= fix.end else 0)
    if new.start == moved and new.message.split(" (line")[0] == issue.message.split(" (line")[0]:
        return False
    if lang == "python" and not _line_parses(after, fix.start):
        return False
    if new.start > max(issue.start, issue.end, fix.start + len(fix.after)):  # past the fix too
        return True
    line = after.count("\n", 0, new.start)
    return all(abs(line - before.count("\n", 0, p)) > 1 for p in (fix.start, issue.start))


def _line_parses(code: str, pos: int) -> bool:
    """Does the Python line at ``pos`` parse by itself? Unknown (True) where one line cannot
    say: an open bracket or string that continues, a clause that needs its statement."""
    s = code.rfind("\n", 0, pos) + 1
    e = code.find("\n", pos)
    line = code[s : len(code) if e < 0 else e].strip()
    if not line or line.startswith(("elif", "else", "except", "finally", "@", "case")):
        return True
    if line.endswith(":"):
        line += " pass"
    issues = check(line, "python")
    return not issues or any(w in issues[0].message for w in ("never closed", "unterminated", "EOF", "unmatched"))
