"""Continuations copied from the document itself, as prompt-lookup decoding drafts them.

Most identifiers, and many whole lines, of a hole already occur in the same file. The text
just before the cursor is looked up earlier in the document (the prefix, then the suffix);
the text that followed its longest match is a candidate. Every occurrence of that longest
match gives one, most recent first, since nearby code is the likeliest to repeat.

The suffix's structure can name a line outright: a hole at the start of a line, above a
deeper-indented block that an ``except`` or ``finally`` at the cursor's indentation follows,
can only be ``try:``; that line comes first.
"""

from __future__ import annotations

import re

MIN_MATCH_CHARS = 3  # non-blank characters a match needs: a lone "(" or indentation matches anything
MAX_MATCH_CHARS = 96  # longest text before the cursor looked up
HANDLER = re.compile(r"(except|finally)\b")  # clauses that only follow a try block
CONTINUATION_CHARS = 400  # copied after a match; the scope cuts it to a line or a block


def lookup_continuations(prefix: str, suffix: str, limit: int = 3) -> list[str]:
    """Up to ``limit`` distinct continuations: a line the suffix's structure implies, then those
    of the longest earlier match of the text before the cursor, most recent occurrence first
    (none when no match has ``MIN_MATCH_CHARS`` non-blank characters)."""
    if limit < 1:
        return []
    implied = _implied_by_suffix(prefix, suffix)
    return (implied + [c for c in _copied(prefix, suffix, limit) if c not in implied])[:limit]


def _copied(prefix: str, suffix: str, limit: int) -> list[str]:
    """Continuations of the longest earlier match of the text before the cursor."""
    for length in range(min(MAX_MATCH_CHARS, len(prefix)), 0, -1):
        needle = prefix[-length:]
        if len(needle.strip()) < MIN_MATCH_CHARS:
            return []
        found = _continuations(needle, prefix, suffix, limit)
        if found:
            return found
    return []


def _continuations(needle: str, before: str, after: str, limit: int) -> list[str]:
    """What follows each earlier occurrence of ``needle`` (the tail of ``before``) in
    ``before``, latest first, then in ``after``."""
    out: list[str] = []
    doc = before + after
    end = len(before) - 1  # an occurrence must end before the tail itself does
    while len(out) < limit:
        at = before.rfind(needle, 0, end)
        if at < 0:
            break
        _add(out, doc[at + len(needle): at + len(needle) + CONTINUATION_CHARS])
        end = at + len(needle) - 1
    start = 0
    while len(out) < limit:
        at = after.find(needle, start)
        if at < 0:
            break
        _add(out, after[at + len(needle): at + len(needle) + CONTINUATION_CHARS])
        start = at + 1
    return out


def _add(out: list[str], text: str) -> None:
    if text.strip() and text not in out:
        out.append(text)


def _implied_by_suffix(prefix: str, suffix: str) -> list[str]:
    """``["try:"]`` where the hole opens a block the suffix continues with ``except`` or
    ``finally`` at the cursor's indentation (nothing else names a header outright)."""
    line = prefix[prefix.rfind("\n") + 1:]
    if line.strip():
        return []
    indent = len(line)
    later = [ln for ln in suffix.split("\n")[1:] if ln.strip()]
    if not later or _indent(later[0]) <= indent:
        return []  # no deeper-indented block follows: not a header
    ends = next((ln for ln in later if _indent(ln) <= indent), "")
    if _indent(ends) == indent and HANDLER.match(ends.strip()):
        return ["try:"]
    return []


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))
