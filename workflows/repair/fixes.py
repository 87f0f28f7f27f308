"""Minimal edits for code that does not parse: one structural token inserted or deleted, one
bracket changed for another, two adjacent brackets swapped, one line re-indented to a
neighbour's level; the parser's own hints ("expected ':'", "'(' was never closed") first.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from workflows.syntax import SyntaxIssue

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
    fixes = [replace(fix, hinted=True) for fix in _hinted(code, issue, lines, starts, err_line)]
    for li in range(lo, hi):
        # a quote opens a string to the end of the line: only where the error is
        inserted = punct + QUOTES if li == err_line else punct
        fixes += _line_fixes(lines[li].rstrip("\r\n"), starts[li], inserted, punct, python, splits)
        if python:
            fixes += _indent_fixes(lines, starts, li, step)

    def nearness(fix: Fix) -> tuple[int, int, int]:
        """Hinted first; then by lines, then by characters from the error (a stable sort)."""
        return (0 if fix.hinted else 1, abs(_line_of(starts, fix.start) - err_line), abs(fix.start - issue.start))

    return _distinct(code, sorted(fixes, key=nearness), limit)


def _line_fixes(body: str, base: int, inserted: str, punct: str, python: bool,
                splits: Callable[[str], Iterable[int]] | None) -> list[Fix]:
    """The one-token fixes inside one line (``body``, starting at ``base`` in the text)."""
    units = list(_UNIT.finditer(body))
    if not units:
        return []
    subwords = set(splits(body)) & set(range(len(body))) if splits else set()
    points = sorted({m.start() for m in units} | {m.end() for m in units} | subwords)
    fixes = [Fix(base + p, base + p, t, f"syntax: inserted {t!r}") for p in points for t in inserted]
    for k, m in enumerate(units):
        fixes += _unit_fixes(body, base, m, units[k + 1] if k + 1 < len(units) else None, punct, python)
    if python:
        fixes += _keyword_insertions(base, units)
    return fixes


def _unit_fixes(body: str, base: int, m: re.Match[str], nxt: re.Match[str] | None, punct: str,
                python: bool) -> list[Fix]:
    """A structural token deleted, a bracket changed for another, two adjacent brackets swapped."""
    tok = m.group()
    fixes = []
    if tok in punct or tok in QUOTES or (python and tok in PY_KEYWORDS):
        space_after = python and tok.isalpha() and body[m.end() : m.end() + 1] == " "
        fixes.append(Fix(base + m.start(), base + m.end() + int(space_after), "", f"syntax: deleted {tok!r}"))
    if tok in OPENERS or tok in CLOSERS:
        group = OPENERS if tok in OPENERS else CLOSERS
        fixes += [Fix(base + m.start(), base + m.end(), other, f"syntax: replaced {tok!r} with {other!r}")
                  for other in group.replace(tok, "")]
        if nxt is not None and nxt.start() == m.end() and nxt.group() in OPENERS + CLOSERS and nxt.group() != tok:
            fixes.append(Fix(base + m.start(), base + nxt.end(), nxt.group() + tok,
                             f"syntax: swapped {tok + nxt.group()!r}"))
    return fixes


def _keyword_insertions(base: int, units: list[re.Match[str]]) -> list[Fix]:
    """Python keywords inserted: one that opens a statement before the line's code, one that
    joins two operands between them ("x y" -> "x in y")."""
    first = base + units[0].start()
    fixes = [Fix(first, first, kw + " ", f"syntax: inserted {kw!r}") for kw in PY_STATEMENT_KEYWORDS]
    for a, b in itertools.pairwise(units):
        if _operand_end(a.group()) and _operand_start(b.group()) and b.start() > a.end():
            at = base + b.start()
            fixes += [Fix(at, at, kw + " ", f"syntax: inserted {kw!r}") for kw in PY_INFIX_KEYWORDS]
    return fixes


def _distinct(code: str, fixes: list[Fix], limit: int | None) -> list[Fix]:
    """The first fix producing each new text, at most ``limit`` of them."""
    seen: set[str] = set()
    out: list[Fix] = []
    for fix in fixes:
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
