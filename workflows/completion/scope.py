"""What a completion may cover, decided from the cursor as editor completion engines do.

- Mid-line (text before the cursor on its line): the rest of the line.
- At the start of a line (only indentation before the cursor): one statement, or one
  statement and the indented block under it; the block ends at the first line whose
  indentation returns to the cursor's level or below.

Either way a candidate never closes a bracket it did not open (the bracket belongs to the
text around the hole), never runs into a copy of the suffix's next line, and ends without
the line break the suffix already starts with. :func:`cut` applies these rules to any text.

The suffix's syntax narrows the scope further. Where it closes brackets that the code before
the hole leaves unopened (``cls, path)`` after a hole where ``def read(`` was), the completion
must open exactly those: a candidate is cut where its open brackets first match that need.
Where, instead, the next line is indented deeper than the cursor, the hole is a block header
whose body follows: a candidate keeps only its first line. :func:`shape_of` gives statements
of the asked-for shape, with which the syntax check finds the code around such a hole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OPENING, CLOSING = "([{", ")]}"
QUOTES = "\"'`"
CONTEXT_LINES = 60  # lines read on each side of the cursor for the brackets open across it


@dataclass(frozen=True)
class Scope:
    """The hole as an editor sees it."""

    kind: Literal["line", "block"]  # line: the rest of the line; block: a statement and its block
    indent: int  # the cursor line's indentation (columns of leading blanks)
    line_rest: str  # the suffix up to its first line break: what follows the cursor on its line
    next_line: str  # the suffix's first non-blank line after the cursor's, stripped ("" if none)
    opens: str = ""  # brackets the completion must leave open, innermost last (the suffix closes them)
    inside: str = ""  # brackets the text before the cursor left open, innermost last
    header: bool = False  # the next line is indented deeper: the completion is a block header


def scope_at(prefix: str, suffix: str) -> Scope:
    """The scope of a completion between ``prefix`` and ``suffix``."""
    line_before = prefix[prefix.rfind("\n") + 1:]
    line_rest, _, after = suffix.partition("\n")
    next_line = next((ln.strip() for ln in after.split("\n") if ln.strip()), "")
    indent = len(line_before) - len(line_before.lstrip(" \t"))
    kind: Literal["line", "block"] = "line" if line_before.strip() else "block"
    inside = _open_before(prefix, indent)
    closed = _closed_after(suffix, indent)
    unmatched = closed[len(inside):]  # the suffix's first closers close what the prefix opened
    opens = "".join(OPENING[CLOSING.index(c)] for c in reversed(unmatched))
    next_indent = next((_indent(ln) for ln in after.split("\n") if ln.strip()), -1)
    header = kind == "block" and not opens and not inside and not line_rest.strip() and next_indent > indent
    return Scope(kind, indent, line_rest, next_line, opens, inside, header)


def shape_of(scope: Scope) -> list[str]:
    """Statements of the shape the hole asks for (placeholders, never suggested): what the
    syntax check tries in the hole to find the code around it when the hole left empty breaks it."""
    if scope.opens:
        return [f"x = {scope.opens}", f"def f{scope.opens}", f"class C{scope.opens}", f"from m import {scope.opens}"]
    if scope.inside:
        return ["x,", "x", "x: int,"]
    if scope.header:
        return ["if x:", "try:", "else:", "with x:", "def f():", "class C:", "except Exception:", "finally:"]
    return ["pass", "x"] if scope.kind == "block" else ["x", "x:", "x,"]


def cut(text: str, scope: Scope) -> str:
    """``text`` cut to ``scope``: the longest start of it an editor would insert."""
    if scope.kind == "block":
        text = text.lstrip(" \t")  # the cursor stands after the line's indentation already
    text = _before_unbalanced_close(text)
    if scope.opens:
        text = _where_open(text, scope.opens)
    lines = text.split("\n")
    if scope.kind == "line":
        keep = lines[:1]
    else:
        keep = _statement_lines(lines, scope.indent, only_first=scope.header)
    keep = _without_suffix_repeat(keep, scope)
    out = "\n".join(keep).rstrip()
    rest = scope.line_rest.strip()
    if rest and out.endswith(rest) and len(out) > len(rest):  # the model wrote what follows the cursor
        out = out[: len(out) - len(rest)].rstrip() if scope.kind == "block" else out[: len(out) - len(rest)]
    if scope.kind == "block" and rest and out:
        out += "\n" + " " * scope.indent  # a statement inserted before code on the cursor's line
    return out


def _statement_lines(lines: list[str], indent: int, only_first: bool = False) -> list[str]:
    """The first statement and the block under it: lines up to the first one (outside open
    brackets) whose indentation is at the cursor's level or below (``only_first``: the first
    statement alone, the block being the suffix's)."""
    keep = lines[:1]
    depth = _depth_change(lines[0]) if lines else 0
    for line in lines[1:]:
        if line.strip() and depth <= 0 and (only_first or _indent(line) <= indent):
            break
        keep.append(line)
        depth += _depth_change(line)
    while keep and not keep[-1].strip():
        keep.pop()
    return keep


def _without_suffix_repeat(lines: list[str], scope: Scope) -> list[str]:
    """Lines before the first copy of the suffix's next line (the model ran into the suffix)."""
    if not scope.next_line:
        return lines
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() == scope.next_line:
            return lines[:i]
    return lines


def _where_open(text: str, opens: str) -> str:
    """``text`` up to the first point where the brackets it leaves open are ``opens``
    (all of it when it never gets there)."""
    stack: list[str] = []
    for i, ch, in_code in _code_chars(text):
        if not in_code:
            continue
        if ch in OPENING:
            stack.append(ch)
            if "".join(stack) == opens:
                return text[:i + 1]
        elif ch in CLOSING and stack:
            stack.pop()
    return text


def _open_before(prefix: str, indent: int) -> str:
    """Brackets left open before the cursor, innermost last: read back line by line to the
    first line left of the cursor's indentation with nothing left to close (lines at the
    cursor's own indentation may be inside the brackets), at most ``CONTEXT_LINES``."""
    pending = 0  # closers seen, read backwards, not yet matched
    found: list[str] = []
    lines = prefix.split("\n")
    for n, line in enumerate(reversed(lines[-CONTEXT_LINES:])):
        for _, ch, in_code in reversed(_code_chars(line)):
            if not in_code:
                continue
            if ch in CLOSING:
                pending += 1
            elif ch in OPENING:
                if pending:
                    pending -= 1
                else:
                    found.append(ch)
        if n and line.strip() and not pending and _indent(line) < indent:
            break
    return "".join(reversed(found))


def _closed_after(suffix: str, indent: int) -> str:
    """Closing brackets after the cursor that close nothing opened after it, in order, up to
    the next statement at or left of the cursor's indentation."""
    depth = 0
    found: list[str] = []
    for n, line in enumerate(suffix.split("\n")[:CONTEXT_LINES]):
        if n and line.strip() and depth <= 0 and _indent(line) <= indent and line.lstrip()[0] not in CLOSING:
            break
        for _, ch, in_code in _code_chars(line):
            if not in_code:
                continue
            if ch in OPENING:
                depth += 1
            elif ch in CLOSING:
                if depth:
                    depth -= 1
                else:
                    found.append(ch)
    return "".join(found)


def _before_unbalanced_close(text: str) -> str:
    """``text`` up to its first closing bracket that closes nothing opened inside it."""
    depth = 0
    for i, ch, in_code in _code_chars(text):
        if not in_code:
            continue
        if ch in OPENING:
            depth += 1
        elif ch in CLOSING:
            depth -= 1
            if depth < 0:
                return text[:i]
    return text


def _depth_change(line: str) -> int:
    """Brackets opened minus brackets closed on ``line`` (outside strings and comments)."""
    return sum((ch in OPENING) - (ch in CLOSING) for _, ch, in_code in _code_chars(line) if in_code)


def _code_chars(text: str) -> list[tuple[int, str, bool]]:
    """Each character with whether it is code (not inside a one-line string or a comment).

    A light scan, not a tokenizer: quotes open and close strings on a line, ``#`` and ``//``
    start comments; good enough to keep brackets in strings from counting.
    """
    out: list[tuple[int, str, bool]] = []
    quote = ""
    comment = False
    for i, ch in enumerate(text):
        if ch == "\n":
            quote, comment = "", False
        elif comment:
            pass
        elif quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
                out.append((i, ch, False))
                continue
        elif ch in QUOTES:
            quote = ch
        elif ch == "#" or text.startswith("//", i):
            comment = True
        out.append((i, ch, not (quote or comment) or ch == "\n"))
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))
