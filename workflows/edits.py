"""Edit lists between an original and a revised text, as users' tools expect them.

Edits are computed at word level with rapidfuzz's Indel.opcodes, so they read the way
a person would mark them ("colour" -> "color", not "u" deleted), and carry offsets in Python
code points into the *original* text. The same edits render as a unified diff and as
LanguageTool-style matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rapidfuzz.distance import Indel

# words, runs of whitespace, and single punctuation marks: the units an edit is made of
_TOKEN = re.compile(r"\w+\s*|[^\w\s]\s*|\s+", re.UNICODE)


@dataclass(frozen=True)
class Edit:
    """Replace ``original[start:end]`` (code points) with ``after``."""

    start: int
    end: int
    before: str
    after: str
    reason: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def word_tokens(text: str) -> list[tuple[str, int]]:
    """Split into (token, start offset) pairs covering the whole text."""
    return [(m.group(), m.start()) for m in _TOKEN.finditer(text)]


def compute_edits(
    original: str,
    revised: str,
    reason: str = "revision",
    confidence: Callable[[int, int], float] | float = 1.0,
) -> list[Edit]:
    """Word-level edits turning ``original`` into ``revised``.

    ``confidence`` is a constant or a function of the edit's revised-text range (j0, j1) in
    characters, so a pipeline can attach the model's confidence of the new tokens.
    """
    a = word_tokens(original)
    b = word_tokens(revised)
    a_words = [t for t, _ in a]
    b_words = [t for t, _ in b]
    edits: list[Edit] = []
    for s0, s1, d0, d1 in change_blocks(a_words, b_words):
        start = a[s0][1] if s0 < len(a) else len(original)
        end = a[s1 - 1][1] + len(a[s1 - 1][0]) if s1 > s0 else start
        j0 = b[d0][1] if d0 < len(b) else len(revised)
        after = "".join(b_words[d0:d1])
        edit = trim(Edit(start, end, original[start:end], after, reason, 1.0))
        shift = edit.start - start  # characters trimmed at the front, same on both sides
        conf = confidence(j0 + shift, j0 + shift + len(edit.after)) if callable(confidence) else confidence
        edits.append(Edit(edit.start, edit.end, edit.before, edit.after, reason, round(float(conf), 4)))
    slid = []
    for i, e in enumerate(edits):
        limit = edits[i + 1].start if i + 1 < len(edits) else len(original)
        slid.append(_slide_right(original, e, limit))
    return merge_adjacent(slid)


def change_blocks(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int, int, int]]:
    """Maximal runs of non-equal LCS opcodes as (src_start, src_end, dest_start, dest_end).

    An LCS alignment (rapidfuzz's Indel) keeps every unchanged word in place; a deletion next
    to an insertion is one replacement, so the two become one block.
    """
    blocks: list[list[int]] = []
    for op in Indel.opcodes(a, b):
        if op.tag == "equal":
            continue
        if blocks and blocks[-1][1] == op.src_start and blocks[-1][3] == op.dest_start:
            blocks[-1][1], blocks[-1][3] = op.src_end, op.dest_end
        else:
            blocks.append([op.src_start, op.src_end, op.dest_start, op.dest_end])
    return [(s0, s1, d0, d1) for s0, s1, d0, d1 in blocks]


def trim(e: Edit) -> Edit:
    """Drop spaces and punctuation that before and after share at their ends.

    "colour " -> "color " becomes "colour" -> "color"; ")" -> "):" becomes an inserted ":".
    Letters and digits are kept, so a changed word is shown whole.
    """
    b, a, start, end = e.before, e.after, e.start, e.end
    while b and a and b[-1] == a[-1] and not b[-1].isalnum():
        b, a, end = b[:-1], a[:-1], end - 1
    while b and a and b[0] == a[0] and not b[0].isalnum():
        b, a, start = b[1:], a[1:], start + 1
    return Edit(start, end, b, a, e.reason, e.confidence)


def _slide_right(original: str, e: Edit, limit: int) -> Edit:
    """Move a pure insertion or deletion as far right as it can go without changing the result.

    "line.\n" + "Third.\n" reads better than "line" + ".\nThird" + ".\n": the same edit,
    anchored where a person would put it.
    """
    if e.before and e.after:
        return e
    start, end, moved = e.start, e.end, e.before or e.after
    while moved and end < limit and original[end] == moved[0]:
        moved = moved[1:] + moved[0]
        start, end = start + 1, end + 1
    if e.before:
        return Edit(start, end, moved, "", e.reason, e.confidence)
    return Edit(start, start, "", moved, e.reason, e.confidence)


def merge_adjacent(edits: Sequence[Edit]) -> list[Edit]:
    """Join edits that touch (end == next start) into one: one change, one edit."""
    out: list[Edit] = []
    for e in sorted(edits, key=lambda e: (e.start, e.end)):
        if out and out[-1].end == e.start and out[-1].reason == e.reason:
            p = out[-1]
            out[-1] = Edit(p.start, e.end, p.before + e.before, p.after + e.after, p.reason,
                           min(p.confidence, e.confidence))
        else:
            out.append(e)
    return out


def relabel(edits: Sequence[Edit], marks: Sequence[Edit]) -> list[Edit]:
    """Give each edit the reason and confidence of the mark it overlaps most (both into one text).

    A pipeline that changed a text in known places, for known reasons, diffs the result
    word by word (:func:`compute_edits`) and labels each word-level edit with this; an edit
    no mark overlaps keeps its own label.
    """
    out = []
    for e in edits:
        k = nearest_mark(e, marks)
        if k is not None:
            e = Edit(e.start, e.end, e.before, e.after, marks[k].reason, marks[k].confidence)
        out.append(e)
    return out


def nearest_mark(e: Edit, marks: Sequence[Edit]) -> int | None:
    """The index of the mark ``e`` overlaps most; None when it overlaps none."""
    def overlap(k: int) -> int:
        (ms, me), (es, ee) = _reach(marks[k]), _reach(e)
        return min(me, ee) - max(ms, es)
    best = max(range(len(marks)), key=overlap, default=None)
    return best if best is not None and overlap(best) > 0 else None


def _reach(e: Edit) -> tuple[int, int]:
    """The characters an edit covers; an insertion covers one on each side (the words it sits between)."""
    return (e.start - 1, e.end + 1) if e.start == e.end else (e.start, e.end)


def apply_edits(original: str, edits: Sequence[Edit]) -> str:
    """Apply non-overlapping edits (offsets into ``original``); checks ``before`` matches."""
    out = original
    last = len(original) + 1
    for e in sorted(edits, key=lambda e: (e.start, e.end), reverse=True):
        if e.end > last:
            raise ValueError(f"edit [{e.start}, {e.end}) overlaps the next edit")
        if original[e.start : e.end] != e.before:
            raise ValueError(f"edit [{e.start}, {e.end}) says before={e.before!r} "
                             f"but the text has {original[e.start:e.end]!r}")
        out = out[: e.start] + e.after + out[e.end :]
        last = e.start
    return out


def unified_diff(original: str, revised: str, name: str = "text", context: int = 3) -> str:
    """A unified diff (``---``/``+++``/``@@`` hunks) computed with rapidfuzz's line opcodes."""
    a = original.splitlines(keepends=True)
    b = revised.splitlines(keepends=True)
    return render_unified(a, b, change_blocks(a, b), name, context)


def render_unified(a: Sequence[str], b: Sequence[str], changes: Sequence[tuple[int, int, int, int]],
                   name: str = "text", context: int = 3) -> str:
    """Unified diff hunks of lines ``a`` -> ``b`` from their change blocks (as :func:`change_blocks` gives)."""
    if not changes:
        return ""
    # group changes whose gap is small enough to share context
    groups: list[list[tuple[int, int, int, int]]] = [[changes[0]]]
    for ch in changes[1:]:
        if ch[0] - groups[-1][-1][1] <= 2 * context:
            groups[-1].append(ch)
        else:
            groups.append([ch])
    lines = [f"--- a/{name}\n", f"+++ b/{name}\n"]
    for g in groups:
        a0 = max(0, g[0][0] - context)
        a1 = min(len(a), g[-1][1] + context)
        b0 = g[0][2] - (g[0][0] - a0)
        b1 = g[-1][3] + (a1 - g[-1][1])
        lines.append(f"@@ -{a0 + 1},{a1 - a0} +{b0 + 1},{b1 - b0} @@\n")
        i = a0
        for s0, s1, d0, d1 in g:
            lines += [" " + ln for ln in a[i:s0]]
            lines += ["-" + ln for ln in a[s0:s1]]
            lines += ["+" + ln for ln in b[d0:d1]]
            i = s1
        lines += [" " + ln for ln in a[i:a1]]
    return "".join(ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines)


def languagetool_matches(original: str, edits: Sequence[Edit], context_chars: int = 40) -> list[dict[str, Any]]:
    """The edits as LanguageTool ``matches`` (offset/length in code points, one replacement)."""
    out = []
    for e in edits:
        c0 = max(0, e.start - context_chars)
        c1 = min(len(original), e.end + context_chars)
        out.append({
            "message": f"{e.reason}: replace {e.before!r} with {e.after!r}",
            "shortMessage": e.reason,
            "offset": e.start,
            "length": e.end - e.start,
            "replacements": [{"value": e.after}],
            "context": {"text": original[c0:c1], "offset": e.start - c0, "length": e.end - e.start},
            "rule": {"id": e.reason, "description": e.reason, "issueType": "style"},
            "confidence": e.confidence,
        })
    return out
