"""What a completion may cover, decided from the cursor as editor completion engines do.

- Mid-line (text before the cursor on its line): the rest of the line.
- At the start of a line (only indentation before the cursor): one statement, or one
  statement and the indented block under it; the block ends at the first line whose
  indentation returns to the cursor's level or below.

Either way a candidate never closes a bracket it did not open (the bracket belongs to the
text around the hole), never runs into a copy of the suffix's next line, and ends without
the line break the suffix already starts with. :func:`cut` applies these rules to any text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OPENING, CLOSING = "([{", ")]}"
QUOTES = "\"'`"


@dataclass(frozen=True)
class Scope:
    """The hole as an editor sees it."""

    kind: Literal["line", "block"]  # line: the rest of the line; block: a statement and its block
    indent: int  # the cursor line's indentation (columns of leading blanks)
    line_rest: str  # the suffix up to its first line break: what follows the cursor on its line
    next_line: str  # the suffix's first non-blank line after the cursor's, stripped ("" if none)


def scope_at(prefix: str, suffix: str) -> Scope:
    """The scope of a completion between ``prefix`` and ``suffix``."""
    line_before = prefix[prefix.rfind("\n") + 1:]
    line_rest, _, after = suffix.partition("\n")
    next_line = next((ln.strip() for ln in after.split("\n") if ln.strip()), "")
    indent = len(line_before) - len(line_before.lstrip(" \t"))
    kind: Literal["line", "block"] = "line" if line_before.strip() else "block"
    return Scope(kind, indent, line_rest, next_line)


def cut(text: str, scope: Scope) -> str:
    """``text`` cut to ``scope``: the longest start of it an editor would insert."""
    if scope.kind == "block":
        text = text.lstrip(" \t")  # the cursor stands after the line's indentation already
    text = _before_unbalanced_close(text)
    lines = text.split("\n")
    keep = lines[:1] if scope.kind == "line" else _statement_lines(lines, scope.indent)
    keep = _without_suffix_repeat(keep, scope)
    out = "\n".join(keep).rstrip()
    rest = scope.line_rest.strip()
    if rest and out.endswith(rest) and len(out) > len(rest):  # the model wrote what follows the cursor
        out = out[: len(out) - len(rest)].rstrip() if scope.kind == "block" else out[: len(out) - len(rest)]
    if scope.kind == "block" and rest and out:
        out += "\n" + " " * scope.indent  # a statement inserted before code on the cursor's line
    return out


def _statement_lines(lines: list[str], indent: int) -> list[str]:
    """The first statement and the block under it: lines up to the first one (outside open
    brackets) whose indentation is at the cursor's level or below."""
    keep = lines[:1]
    depth = _depth_change(lines[0]) if lines else 0
    for line in lines[1:]:
        if line.strip() and depth <= 0 and _indent(line) <= indent:
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
