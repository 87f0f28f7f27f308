"""Continuations copied from the document itself, as prompt-lookup decoding drafts them.

Most identifiers, and many whole lines, of a hole already occur in the same file. The text
just before the cursor is looked up earlier in the document (the prefix, then the suffix);
the text that followed its longest match is a candidate. Every occurrence of that longest
match gives one, most recent first, since nearby code is the likeliest to repeat.
"""

from __future__ import annotations

MIN_MATCH_CHARS = 3  # non-blank characters a match needs: a lone "(" or indentation matches anything
MAX_MATCH_CHARS = 96  # longest text before the cursor looked up
CONTINUATION_CHARS = 400  # copied after a match; the scope cuts it to a line or a block


def lookup_continuations(prefix: str, suffix: str, limit: int = 3) -> list[str]:
    """Up to ``limit`` distinct continuations of the longest earlier match of the text before
    the cursor, most recent occurrence first; none when no match has ``MIN_MATCH_CHARS``
    non-blank characters."""
    if limit < 1:
        return []
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
