"""The syntax check of a completion: it must not add a syntax error to the file.

The file with the candidate is compared against the file with the hole left empty. An
editor sends the whole file, which usually parses; then a candidate passes when the file
still parses. Where it does not (a file mid-edit, or context trimmed to the nearest text),
the check moves to the code around the hole: the smallest enclosing block (Python: the
lines from a line indented less than the hole to where that indentation returns) that
parses with the hole empty. Where no block does, a candidate passes when the first error
stays where it was, after the candidate. A language remask has no parser for gets no
check, and the result says so.

Two things come before the blocks, both read from the code's tokens rather than its lines.
A hole inside a triple-quoted string (a docstring line) keeps the syntax with any text that
does not end the string; its lines are never taken for code. And where the hole itself is
what breaks the code (a header whose body follows, an opener whose rest is in the suffix, a
block's only statement), the region is the one that parses with the hole filled by a
statement of the shape the cursor asks for (:func:`workflows.completion.scope.shape_of`):
a candidate passes there only when the region parses with it.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Sequence
from dataclasses import dataclass

from workflows.completion.scope import scope_at, shape_of
from workflows.syntax import ALIASES, LANGUAGES, TREE_SITTER_GRAMMARS, check

BLOCK_TRIES = 6  # enclosing blocks tried, innermost first, before falling back to the first error
WRAPPER = "if True:\n"  # makes an indented block parse on its own, candidate lines kept as they are
WORD_PAIR = re.compile(r"\b([A-Za-z_]\w*)[ \t]+([A-Za-z_]\w*)\b")
CONTINUES = re.compile(r"[)\]}]|(except|finally|else|elif)\b")  # lines that continue the statement above them
KEYWORDS = frozenset([*keyword.kwlist, *keyword.softkwlist])


@dataclass(frozen=True)
class Region:
    """The code the check parses: ``before`` + candidate + ``after``; ``baseline`` is the
    offset of the first error with the hole empty (None: it parses)."""

    before: str
    after: str
    baseline: int | None


@dataclass(frozen=True)
class SyntaxJudge:
    """Decides, for one hole, which candidates keep the file's syntax."""

    language: str | None  # None: no parser for the file's language, so no check
    region: Region | None = None
    tentative: bool = False  # Python guessed though no block around the hole parses: only a candidate that
    # makes one parse proves it (see :meth:`confirmed`)
    in_string: str | None = None  # the hole is inside a triple-quoted string closed by these quotes


    @property
    def checked(self) -> bool:
        return self.language is not None

    def accepts(self, candidate: str) -> bool:
        """Whether ``candidate`` adds no syntax error (always, when the check is skipped)."""
        if self.language is not None and self.in_string is not None:
            # string content: anything that neither ends the string nor escapes its end
            return self.in_string not in candidate and not candidate.endswith("\\")
        if self.language is None or self.region is None:
            return True
        r = self.region
        if self.language != "python":
            return _tree_sitter_accepts(r, candidate, self.language)
        first = _first_error(r.before + candidate + r.after, "python")
        if first is None:
            return True
        if r.baseline is None or self.tentative or not _has_code(candidate):
            return False  # a comment changes nothing: it cannot be what mends the code around the hole
        # the old error may only have moved by the candidate's length, and past the line the candidate ends on
        # (an error right after it, such as "x +" before a line break, is the candidate's own)
        code = r.before + candidate + r.after
        line_end = code.find("\n", len(r.before) + len(candidate))
        return first > (line_end if line_end >= 0 else len(code)) and first - len(candidate) >= r.baseline


def confirmed(syntax: SyntaxJudge, accepted: int) -> SyntaxJudge:
    """``syntax`` once its candidates are judged: a tentative guess that no candidate bore out
    (``accepted`` 0) was wrong, and the check is skipped."""
    return SyntaxJudge(None) if syntax.tentative and not accepted else syntax


def judge(prefix: str, suffix: str, language: str | None) -> SyntaxJudge:
    """The check for the hole between ``prefix`` and ``suffix``.

    ``language``: a language name or alias; a language without a parser here skips the
    check; None guesses: Python when the hole is inside a triple-quoted string or some block
    around the hole parses as Python, else a tree-sitter grammar that parses the file with the
    fewest errors, else Python tentatively (see :func:`confirmed`).
    """
    lang = None if language is None else ALIASES.get(language.lower(), language.lower())
    if lang is not None and lang not in LANGUAGES:
        return SyntaxJudge(None)
    if lang in (None, "python"):
        strings = strings_around(prefix, suffix)
        if strings.at_hole is not None:
            return SyntaxJudge("python", in_string=strings.at_hole)
        shapes = shape_of(scope_at(prefix, suffix))
    if lang is not None:
        return SyntaxJudge(lang, _python_region(prefix, suffix, strings, shapes) if lang == "python" else
                           Region(prefix, suffix, None))
    region = _python_region(prefix, suffix, strings, shapes)
    if region.baseline is None or region.baseline >= region.before.rfind("\n") + 1:
        # Python parses up to the hole's line at least: an empty hole may be the only error (an empty block)
        return SyntaxJudge("python", region)
    guessed = _tree_sitter_guess(prefix + suffix)
    if guessed:
        return SyntaxJudge(guessed, Region(prefix, suffix, None))
    # the hole itself may be what breaks Python here (half a statement): a candidate that mends it proves it
    return SyntaxJudge("python", region, tentative=True)


def _python_region(prefix: str, suffix: str, strings: Strings, shapes: Sequence[str]) -> Region:
    """The whole text if it parses with the hole empty, else the innermost enclosing block
    that does, else the first of those that parses with one of ``shapes`` in the hole (there a
    candidate must make it parse), else the innermost block (judged by where its first error is)."""
    whole = Region(prefix, suffix, _first_error(prefix + suffix, "python"))
    if whole.baseline is None:
        return whole
    blocks = _enclosing_blocks(prefix, suffix, strings)
    for region in blocks:
        if region.baseline is None:
            return region
    for region in [whole, *blocks]:
        if any(_first_error(region.before + shape + region.after, "python") is None for shape in shapes):
            return Region(region.before, region.after, None)
    return blocks[0] if blocks else whole


def _enclosing_blocks(prefix: str, suffix: str, strings: Strings) -> list[Region]:
    """Blocks around the hole, innermost first: from an earlier line of code (not of a string)
    indented less than every line between it and the hole, to the first later line indented as
    little."""
    before_lines = prefix.split("\n")
    line_starts = [0]
    for line in before_lines[:-1]:
        line_starts.append(line_starts[-1] + len(line) + 1)
    cursor_line = before_lines.pop()  # the part of the cursor's line before the cursor
    after_lines = suffix.split("\n")
    cursor_rest = after_lines.pop(0)
    level = _indent(cursor_line) + 1
    last_start = _last_statement_start(after_lines, len(prefix) + len(cursor_rest) + 1, level - 1, strings)
    out: list[Region] = []
    for i in range(len(before_lines) - 1, -1, -1):
        line = before_lines[i]
        if not line.strip() or _indent(line) >= level or strings.inside(line_starts[i]):
            continue
        level = _indent(line)
        end = next((j for j, ln in enumerate(after_lines) if ln.strip() and _indent(ln) <= level
                    and not CONTINUES.match(ln.lstrip())), last_start)
        wrap = WRAPPER if level else ""
        before = wrap + "\n".join([*before_lines[i:], cursor_line])
        after = "\n".join([cursor_rest, *after_lines[:end]]) + "\n"
        baseline = _first_error(before + after, "python")
        out.append(Region(before, after, baseline))
        if len(out) >= BLOCK_TRIES or level == 0:
            break
    return out


def _last_statement_start(lines: list[str], offset: int, indent: int, strings: Strings) -> int:
    """The index of the last of ``lines`` (the first at ``offset`` in the text) that starts a
    statement after a complete one: outside strings, indented no deeper than the line before
    it, which opens no block. A block that runs to the end of a trimmed suffix ends there,
    since what follows may be cut mid-statement (``len(lines)`` when no line does)."""
    last = len(lines)
    before_indent, opens_block = indent, False
    for j, line in enumerate(lines):
        if line.strip():
            if _indent(line) <= before_indent and not opens_block and not strings.inside(offset) \
                    and not CONTINUES.match(line.lstrip()):
                last = j
            before_indent, opens_block = _indent(line), line.rstrip().endswith(":")
        offset += len(line) + 1
    return last


def _tree_sitter_accepts(r: Region, candidate: str, language: str) -> bool:
    """No more errors than with the hole empty, and none inside the candidate."""
    base = check(r.before + r.after, language)
    issues = check(r.before + candidate + r.after, language)
    lo, hi = len(r.before), len(r.before) + len(candidate)
    inside = any((i.start < hi and lo < i.end) or lo < i.start < hi for i in issues)
    return len(issues) <= len(base) and not inside


def _tree_sitter_guess(text: str) -> str | None:
    """The grammar that finds the fewest errors in ``text``, if one finds fewer than one per 20 lines."""
    counts = {lang: len(check(text, lang)) for lang in TREE_SITTER_GRAMMARS if lang != "json"}
    best = min(counts, key=lambda lang: counts[lang])
    return best if counts[best] <= text.count("\n") // 20 else None


def _first_error(code: str, language: str) -> int | None:
    issues = check(code, language)
    return min(i.start for i in issues) if issues else None


def _has_code(text: str) -> bool:
    """Whether ``text`` has a line that is neither blank nor a comment."""
    return any(line.strip() and not line.lstrip().startswith("#") for line in text.split("\n"))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


TRIPLES = ('"""', "'''")


@dataclass(frozen=True)
class Strings:
    """Where the triple-quoted strings of a context lie, as read from its tokens."""

    spans: tuple[tuple[int, int], ...]  # [start, end) of each triple-quoted string (end: len(text) if open)
    at_hole: str | None  # the delimiter of the string the hole is in (None: the hole is in code)

    def inside(self, offset: int) -> bool:
        """Whether ``offset`` lies within a triple-quoted string, past its opening quotes."""
        return any(start < offset < end for start, end in self.spans)


def strings_around(prefix: str, suffix: str) -> Strings:
    """The triple-quoted strings of ``prefix + suffix``, the hole between them.

    A context trimmed to the cursor may start inside a docstring, and then every quote after
    flips meaning. Both readings are lexed (the text starts in code, or inside the string the
    first triple quote closes); the one whose code has fewer runs of two plain words, which
    prose is full of and Python almost never has, wins.
    """
    text = prefix + suffix
    first = min((i for i in (text.find(q) for q in TRIPLES) if i >= 0), default=-1)
    readings = [_lex(text, "")]
    if first >= 0:
        readings.append(_lex(text, text[first:first + 3]))
    spans = min(readings, key=lambda r: _prose_pairs(r[1]))[0]
    hole = len(prefix)
    # a span from -1 is the string the text began inside: its quotes are the first ones found
    at = next((text[max(s, first):max(s, first) + 3] for s, e in spans if s < hole < e), None)
    return Strings(tuple((max(s, 0), e) for s, e in spans), at)


def _lex(text: str, open_at_start: str) -> tuple[list[tuple[int, int]], str]:
    """(triple-quoted string spans, the code with strings and comments blanked) of ``text``
    lexed as Python, starting inside a string closed by ``open_at_start`` (its span starts at -1)."""
    spans: list[tuple[int, int]] = []
    code: list[str] = []
    i, n = 0, len(text)
    quote, start = open_at_start, -1
    while i < n:
        if quote:
            end = _string_end(text, i, quote)
            if len(quote) == 3:
                spans.append((start, end))
            code.append("0")  # a string is one operand
            i, quote = end, ""
            continue
        ch = text[i]
        if ch == "#":
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
        elif ch in "\"'":
            quote = text[i:i + 3] if text[i:i + 3] in TRIPLES else ch
            start, i = i, i + len(quote)
        else:
            code.append(ch)
            i += 1
    return spans, "".join(code)


def _string_end(text: str, i: int, quote: str) -> int:
    """The offset after the string that ``quote`` closes, searching from ``i`` (a one-quote
    string also ends at its line's end; an unclosed triple-quoted one at the text's end)."""
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text.startswith(quote, i):
            return i + len(quote)
        elif text[i] == "\n" and len(quote) == 1:
            return i
        else:
            i += 1
    return len(text)


def _prose_pairs(code: str) -> int:
    """Two plain words in a row (neither a keyword): prose read as code."""
    return sum(1 for a, b in WORD_PAIR.findall(code) if a not in KEYWORDS and b not in KEYWORDS)
