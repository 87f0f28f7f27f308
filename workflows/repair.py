"""Code repair: code that does not parse comes back parsing, with the fewest edits found.

Each round looks at the first syntax issue of every text on a small beam and tries, first,
minimal edits near it: one structural token inserted or deleted (a bracket, ':', ',', a
quote, a keyword that opens a statement), one bracket changed for another, two adjacent
brackets swapped, one line re-indented to a neighbour's level. The parser's own hints
("expected ':'", "'(' was never closed", tree-sitter's MISSING nodes) go first, then the
other edits nearest the error, up to a bounded number of parser checks. Candidates that
parse, or failing that whose first error moved past this one, are scored by the refiner
(pseudo-likelihood of the changed region against the same region before the change, one
batch), and ranked by number of edits, then score. Where no minimal edit helps, the
refiner re-masks spans around the error and denoises candidates in one batch, as a
fallback. Rounds are bounded. The code is only ever parsed, never run.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from rapidfuzz.distance import Levenshtein

from refiner.editing import SpanEdit, fill_spans, pad_batch
from refiner.remasking import Span
from refiner.sampler import SamplerConfig
from refiner.text import TextRefiner
from workflows.audit import AuditRecord, ModelInfo
from workflows.edits import Edit, compute_edits, languagetool_matches, unified_diff
from workflows.options import RepairParams
from workflows.syntax import SyntaxIssue, check, normalize_language


@dataclass
class Candidate:
    text: str
    issues: list[SyntaxIssue]
    distance: int  # character edits from the round's input
    score: float  # the refiner's mean log-probability of the filled tokens

    @property
    def parses(self) -> bool:
        return not self.issues


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


# --- minimal edits -------------------------------------------------------------------------

OPENERS, CLOSERS = "([{", ")]}"
CLOSER_OF = dict(zip(OPENERS, CLOSERS))
OPENER_OF = dict(zip(CLOSERS, OPENERS))
QUOTES = "'\""
# tokens a minimal edit may insert or delete, by language family
PY_PUNCT = "()[]{}:,"
C_PUNCT = "()[]{};,:"
# keywords that begin a statement (inserted with a space at the start of a line's code) and
# keywords that join two operands ("x y" -> "x in y"); both are Python's
PY_STATEMENT_KEYWORDS = ("def", "class", "if", "elif", "for", "while", "with", "return", "import", "from",
                         "raise", "assert", "del", "yield")
PY_INFIX_KEYWORDS = ("in", "import", "as", "and", "or", "is", "if", "else", "for", "not")
PY_KEYWORDS = frozenset(PY_STATEMENT_KEYWORDS + PY_INFIX_KEYWORDS + ("lambda", "pass", "try", "except", "finally"))
_UNIT = re.compile(r"\w+|\S")  # a word or one other non-space character


@dataclass(frozen=True)
class Fix:
    """Replace ``text[start:end]`` with ``after``; ``reason`` names the kind of fix."""

    start: int
    end: int
    after: str
    reason: str
    hinted: bool = False  # named by the parser's message

    def apply(self, text: str) -> str:
        return text[: self.start] + self.after + text[self.end :]


def minimal_fixes(code: str, issue: SyntaxIssue, lang: str, context_lines: int = 2,
                  splits: Callable[[str], Iterable[int]] | None = None, limit: int | None = None) -> list[Fix]:
    """One-edit fixes near ``issue``, the parser's hints first, then nearest the error first.

    Only structural tokens are inserted or deleted, so a fix never comments out or swallows
    code; each fix is distinct by the text it produces. ``splits`` gives more insertion
    points inside a line (offsets into it; the refiner's subword boundaries), for a bracket
    lost between two names ("__init__self" -> "__init__(self"). ``limit``: the first that
    many fixes (only those are applied to tell them apart).
    """
    python = lang == "python"
    lines = code.splitlines(keepends=True)
    starts = [0]
    for ln in lines:
        starts.append(starts[-1] + len(ln))
    err_line = _line_of(starts, issue.start)
    lo = max(0, err_line - context_lines)
    hi = min(len(lines), max(err_line, _line_of(starts, issue.end)) + context_lines + 1)
    punct = PY_PUNCT if python else C_PUNCT
    step = _indent_step(lines) if python else ""

    ranked: list[tuple[int, int, int, Fix]] = []  # (tier, lines from the error, characters from it, fix)

    def add(fix: Fix, tier: int = 1) -> None:
        ranked.append((tier, abs(_line_of(starts, fix.start) - err_line), abs(fix.start - issue.start), fix))

    for fix in _hinted(code, issue, lines, starts, err_line):
        add(replace(fix, hinted=True), tier=0)
    for li in range(lo, hi):
        line, base = lines[li], starts[li]
        body = line.rstrip("\r\n")
        units = list(_UNIT.finditer(body))
        if not units:
            continue
        points = sorted({m.start() for m in units} | {m.end() for m in units}
                        | (set(splits(body)) & set(range(len(body))) if splits else set()))
        # a quote opens a string to the end of the line: only where the error is
        tokens = punct + QUOTES if li == err_line else punct
        for p in points:
            for t in tokens:
                add(Fix(base + p, base + p, t, f"syntax: inserted {t!r}"))
        for k, m in enumerate(units):
            tok = m.group()
            if tok in punct or tok in QUOTES or (python and tok in PY_KEYWORDS):
                end = m.end() + (1 if python and tok.isalpha() and body[m.end() : m.end() + 1] == " " else 0)
                add(Fix(base + m.start(), base + end, "", f"syntax: deleted {tok!r}"))
            if tok in OPENERS or tok in CLOSERS:
                group = OPENERS if tok in OPENERS else CLOSERS
                for other in group.replace(tok, ""):
                    add(Fix(base + m.start(), base + m.end(), other, f"syntax: replaced {tok!r} with {other!r}"))
                nxt = units[k + 1] if k + 1 < len(units) else None
                if nxt is not None and nxt.start() == m.end() and nxt.group() in OPENERS + CLOSERS and nxt.group() != tok:
                    add(Fix(base + m.start(), base + nxt.end(), nxt.group() + tok,
                            f"syntax: swapped {tok + nxt.group()!r}"))
        if python:
            first = units[0]
            for kw in PY_STATEMENT_KEYWORDS:
                add(Fix(base + first.start(), base + first.start(), kw + " ", f"syntax: inserted {kw!r}"))
            for a, b in itertools.pairwise(units):
                if _operand_end(a.group()) and _operand_start(b.group()) and b.start() > a.end():
                    for kw in PY_INFIX_KEYWORDS:
                        add(Fix(base + b.start(), base + b.start(), kw + " ", f"syntax: inserted {kw!r}"))
            for fix in _indent_fixes(lines, starts, li, step):
                add(fix)
    ranked.sort(key=lambda r: r[:3])
    seen: set[str] = set()
    out = []
    for *_, fix in ranked:
        if limit is not None and len(out) >= limit:
            break
        text = fix.apply(code)
        if text != code and text not in seen:
            seen.add(text)
            out.append(fix)
    return out


def _line_of(starts: list[int], pos: int) -> int:
    """The last line whose start is <= pos (``starts`` ends with the text's length)."""
    return max(0, min(bisect.bisect_right(starts, pos), len(starts) - 1) - 1)


def _operand_end(tok: str) -> bool:
    return (tok[0].isalnum() or tok[0] == "_" or tok in CLOSERS or tok in QUOTES) and tok not in PY_KEYWORDS


def _operand_start(tok: str) -> bool:
    return (tok[0].isalnum() or tok[0] == "_" or tok in OPENERS or tok in QUOTES) and tok not in PY_KEYWORDS


def _hinted(code: str, issue: SyntaxIssue, lines: list[str], starts: list[int], err_line: int) -> list[Fix]:
    """Fixes the parser's message names: "expected ':'", "missing ')'", "'(' was never closed"..."""
    msg, at = issue.message, issue.start
    out: list[Fix] = []
    m = re.search(r"(?:expected|missing) '([^']{1,3})'", msg)
    if m:
        out.append(Fix(at, at, m.group(1), f"syntax: inserted {m.group(1)!r}"))
    m = re.search(r"'([(\[{])' was never closed", msg)
    if m:
        closer = CLOSER_OF[m.group(1)]
        for li in range(err_line, min(len(lines), err_line + 3)):
            body = lines[li].rstrip("\r\n")
            p = starts[li] + len(body.rstrip())
            out.append(Fix(p, p, closer, f"syntax: inserted {closer!r}"))
    m = re.search(r"closing parenthesis '(.)' does not match opening parenthesis '(.)'", msg)
    if m and code[at : at + 1] == m.group(1):
        closer = CLOSER_OF.get(m.group(2), m.group(1))
        out.append(Fix(at, at + 1, closer, f"syntax: replaced {m.group(1)!r} with {closer!r}"))
    m = re.search(r"unmatched '(.)'", msg)
    if m and code[at : at + 1] == m.group(1):
        out.append(Fix(at, at + 1, "", f"syntax: deleted {m.group(1)!r}"))
    return out


def _indent_fixes(lines: list[str], starts: list[int], li: int, step: str) -> list[Fix]:
    """Re-indent line ``li`` to a level its neighbours suggest (``step``: the file's unit).

    The levels: the previous code line's, one step deeper when that line opens a block, every
    enclosing level above it, and the next code line's.
    """
    def indent(s: str) -> str:
        return s[: len(s) - len(s.lstrip(" \t"))]

    line = lines[li]
    if not line.strip():
        return []
    own = indent(line)
    prev = [ln for ln in lines[:li] if ln.strip() and not ln.lstrip().startswith("#")]
    nxt = next((ln for ln in lines[li + 1 :] if ln.strip() and not ln.lstrip().startswith("#")), None)
    levels: list[str] = []
    if prev:
        p = indent(prev[-1])
        levels.append(p)
        if prev[-1].rstrip().endswith(":"):
            levels.append(p + step)
        width = len(p)
        for ln in reversed(prev):  # the enclosing levels, innermost first
            w = indent(ln)
            if len(w) < width:
                levels.append(w)
                width = len(w)
    if nxt is not None:
        levels.append(indent(nxt))
    out = []
    for lvl in dict.fromkeys(levels):
        if lvl != own:
            how = "indented" if len(lvl) > len(own) else "dedented"
            out.append(Fix(starts[li], starts[li] + len(own), lvl, f"syntax: {how} line {li + 1}"))
    return out


def _indent_step(lines: list[str]) -> str:
    """The file's indentation unit: a tab, or the smallest positive run of spaces (default 4)."""
    widths = {len(ln) - len(ln.lstrip(" ")) for ln in lines if ln.strip() and ln.startswith(" ")}
    if any(ln.startswith("\t") for ln in lines):
        return "\t"
    return " " * min(widths) if widths and min(widths) <= 8 else "    "


# --- the search ----------------------------------------------------------------------------

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
    if not code.strip():
        raise ValueError("code is empty: there is nothing to repair")
    if len(code) > params.max_chars:
        raise ValueError(f"code has {len(code)} characters, over the limit of {params.max_chars}")
    lang = normalize_language(params.language)
    audit = AuditRecord("repair", [ModelInfo.of(refiner.name, getattr(refiner, "path", None))],
                        params.model_dump(), params.seed)
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
    deltas = _score_fixes(refiner, [(n.text, f) for n, f, _ in found])
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


_MAX_SCORED = 48  # candidates scored by the refiner per round: one batch of 4 rows each
_SCORE_CONTEXT = 32  # context tokens either side of a scored region


def _score_fixes(refiner: TextRefiner, fixes: list[tuple[str, Fix]]) -> list[float]:
    """How much each fix raises the refiner's pseudo-likelihood of the text around it.

    The region is the tokens the fix touches and one token either side, before and after
    the fix; each region is scored in two rows (alternate tokens masked), so no token vouches
    for itself. The score is the region's log-probability after minus before: comparable
    across fixes at different places.
    """
    import torch

    rows: list[list[int]] = []
    targets: list[list[tuple[int, int]]] = []  # per row: (position, true token)
    owner: list[tuple[int, int]] = []  # per row: (fix index, +1 after / -1 before)
    mask = refiner.predictor.mask_token_id
    for i, (text, fix) in enumerate(fixes):
        after = fix.apply(text)
        for sign, t, s, e in ((-1, text, fix.start, fix.end), (1, after, fix.start, fix.start + len(fix.after))):
            for row, tgt in _region_rows(refiner, t, s, e, mask):
                rows.append(row)
                targets.append(tgt)
                owner.append((i, sign))
    if not rows:
        return [0.0] * len(fixes)
    x, attn = pad_batch(rows, int(refiner.special.pad or 0))
    device = getattr(refiner.predictor, "device", torch.device("cpu"))
    with torch.inference_mode():
        logp = torch.log_softmax(refiner.predictor(x.to(device), attn.to(device)).float().cpu(), -1)  # (N, W, V)
    out = [0.0] * len(fixes)
    for r, ((i, sign), tgt) in enumerate(zip(owner, targets)):
        out[i] += sign * sum(float(logp[r, p, tok]) for p, tok in tgt)
    return out


def _region_rows(refiner: TextRefiner, text: str, start: int, end: int,
                 mask: int) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """Two rows scoring the tokens over text[start:end] and one token either side."""
    lo, hi = max(0, start - 400), min(len(text), end + 400)
    ids, offs = refiner.encode(text[lo:hi])
    if not ids:
        return []
    a, b = start - lo, max(end - lo, start - lo + 1)
    touched = [k for k, (s, e) in enumerate(offs) if e > a and s < b] or \
        [min(range(len(offs)), key=lambda k: abs(offs[k][0] - a))]
    r0, r1 = max(0, touched[0] - 1), min(len(ids), touched[-1] + 2)
    c0, c1 = max(0, r0 - _SCORE_CONTEXT), min(len(ids), r1 + _SCORE_CONTEXT)
    out = []
    for parity in (0, 1):
        pos = [k for k in range(r0, r1) if (k - r0) % 2 == parity]
        if not pos:
            continue
        row = ids[c0:c1]
        for k in pos:
            row[k - c0] = mask
        out.append((row, [(k - c0, ids[k]) for k in pos]))
    return out


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


def _refiner_round(node: _Node, lang: str, params: RepairParams,
                   refiner: TextRefiner) -> tuple[list[_Node], int, int]:
    """The refiner rewrites spans around the first error; the best candidate, as one child."""
    issue = node.issues[0]
    cands, nfe = _round(node.text, issue, lang, params, refiner)
    best = _pick(cands, issue)
    if best is None:
        return [], nfe, len(cands)
    edits = compute_edits(node.text, best.text, reason="syntax: rewrote span",
                          confidence=round(math.exp(min(0.0, best.score)), 4))
    return [_Node(best.text, best.issues, [*node.steps, edits], node.n_edits + len(edits), node.n_hinted,
                  node.score + best.score)], nfe, len(cands)


def _pick(cands: list[Candidate], issue: SyntaxIssue) -> Candidate | None:
    ok = [c for c in cands if c.parses]
    if ok:
        return min(ok, key=lambda c: (c.distance, -c.score))
    # no candidate parses: accept one whose first error moved past this one (progress)
    progress = [c for c in cands if c.issues and c.issues[0].start > issue.end]
    return min(progress, key=lambda c: (c.distance, -c.issues[0].start, -c.score)) if progress else None


def edit_sites(code: str, issue: SyntaxIssue, offsets: list[Span]) -> list[tuple[int, int, list[int]]]:
    """Token-level (start, end, lengths) edit sites around an issue.

    Insertions (start == end) get lengths 1-2; replacements the old length -1..+1 (at least 1).
    """
    def tok_at(char: int) -> int:
        for i, (s, e) in enumerate(offsets):
            if e > char:
                return i
        return len(offsets)

    line_start = code.rfind("\n", 0, issue.start) + 1
    line_end = code.find("\n", issue.start)
    line_end = len(code) if line_end < 0 else line_end
    prev_end = max(0, line_start - 1)
    content_start = line_start + (len(code[line_start:line_end]) - len(code[line_start:line_end].lstrip()))
    t_err = tok_at(issue.start)
    sites: set[tuple[int, int]] = {
        (t_err, t_err),  # insert at the error
        (tok_at(line_end), tok_at(line_end)),  # insert at the end of the line
        (tok_at(prev_end), tok_at(prev_end)),  # insert at the end of the previous line
        (tok_at(content_start), tok_at(content_start)),  # insert at the start of the line's code
    }
    if t_err < len(offsets):
        sites.add((t_err, t_err + 1))  # the token at the error
        sites.add((max(0, t_err - 1), min(len(offsets), t_err + 2)))  # with its neighbours
    a, b = tok_at(content_start), tok_at(line_end)
    if b > a:
        sites.add((a, b))  # the whole line's code
    if content_start > line_start:
        sites.add((tok_at(line_start), tok_at(content_start)))  # the indentation
    out = []
    for s, e in sorted(sites):
        n = e - s
        lengths = [1, 2] if n == 0 else sorted({max(1, n - 1), n, n + 1})
        out.append((s, e, lengths))
    return out


def _round(code: str, issue: SyntaxIssue, lang: str, params: RepairParams,
           refiner: TextRefiner) -> tuple[list[Candidate], int]:
    # tokenise the two sides of the error separately, so the error offset is a token boundary
    # (")\n" is often one token: an insertion could not land between the two characters)
    left_ids, left_off = refiner.encode(code[: issue.start])
    right_ids, right_off = refiner.encode(code[issue.start :])
    ids = left_ids + right_ids
    offsets = left_off + [(s + issue.start, e + issue.start) for s, e in right_off]
    sites = edit_sites(code, issue, offsets)
    edits = [SpanEdit(s, e, n) for s, e, lengths in sites for n in lengths]
    sp = refiner.special
    configs = [SamplerConfig(steps=params.steps, threshold=params.threshold, seed=params.seed)]
    configs += [SamplerConfig(steps=params.steps, threshold=params.threshold, temperature=params.temperature,
                              seed=None if params.seed is None else params.seed + k + 1)
                for k in range(params.samples)]
    cands: list[Candidate] = []
    seen: set[str] = set()
    nfe = 0
    if params.top_k:
        for e, token in _top_k_single(ids, [e for e in edits if e.length == 1], refiner, params):
            text = _splice(code, offsets, e, refiner.decode([token]))
            if text not in seen and text != code:
                seen.add(text)
                cands.append(Candidate(text, check(text, lang), Levenshtein.distance(code, text), 0.0))
        nfe += 1
    for cfg in configs:
        results = fill_spans(refiner.predictor, [ids] * len(edits), [[e] for e in edits], pad_id=int(sp.pad or 0),
                             window=params.window, config=refiner.sampler(cfg), filler_id=sp.filler)
        nfe += results[0].nfe if results else 0
        for e, r in zip(edits, results):
            text = _splice(code, offsets, e, refiner.decode(r.spans[0].tokens))
            if text in seen or text == code:
                continue
            seen.add(text)
            cands.append(Candidate(text, check(text, lang), Levenshtein.distance(code, text), r.spans[0].score))
    return cands, nfe


def _top_k_single(ids: list[int], edits: list[SpanEdit], refiner: TextRefiner,
                  params: RepairParams) -> list[tuple[SpanEdit, int]]:
    """The k most likely tokens at every one-token site, from one batched forward pass.

    A missing ':' or ')' is one token; the greedy fill may miss it where the second or
    third guess has it, so the search looks a little wider than the argmax.
    """
    import torch

    if not edits:
        return []
    w = params.window
    mask = refiner.predictor.mask_token_id
    rows, where = [], []
    for e in edits:
        left = ids[max(0, e.start - w) : e.start]
        rows.append([*left, mask, *ids[e.end:e.end + w]])
        where.append(len(left))
    x, attn = pad_batch(rows, int(refiner.special.pad or 0))
    with torch.inference_mode():
        logits = refiner.predictor(x, attn)[torch.arange(len(rows)), torch.tensor(where)].float()  # (N, V)
    banned = torch.tensor(sorted(refiner.sampler(None).suppress_ids), dtype=torch.long)
    logits = logits.index_fill(-1, banned, float("-inf"))
    top = logits.topk(params.top_k, dim=-1).indices.tolist()
    return [(e, t) for e, toks in zip(edits, top) for t in toks]


def _splice(code: str, offsets: list[Span], e: SpanEdit, new: str) -> str:
    """Replace the characters of tokens [e.start, e.end) (or insert at e.start) with ``new``."""
    if e.start < len(offsets):
        cs = offsets[e.start][0]
    else:
        cs = len(code)
    ce = offsets[e.end - 1][1] if e.end > e.start else cs
    return code[:cs] + new + code[ce:]
