"""LSP positions <-> Python string offsets.

An LSP ``Position`` is a zero-based line and a ``character`` counted in the code units of
the negotiated encoding: UTF-16 unless the client and server agreed otherwise (LSP 3.17
``positionEncoding``). Python strings index code points, so a character outside the Basic
Multilingual Plane (most emoji) is one Python index and two UTF-16 units; in UTF-8 a
character takes one to four units. Lines end at ``\\n``, ``\\r\\n`` or ``\\r``.

Out-of-range positions are clamped the way the specification asks: a character past the
end of its line means the end of the line, a line past the end of the text means the end
of the text; a character that falls inside a surrogate pair (or a UTF-8 sequence) rounds
down to the start of that character.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"


def units(ch: str, encoding: str = UTF16) -> int:
    """Code units of one character (one code point) in ``encoding``."""
    cp = ord(ch)
    if encoding == UTF16:
        return 2 if cp > 0xFFFF else 1
    if encoding == UTF8:
        return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
    if encoding == UTF32:
        return 1
    raise ValueError(f"unknown position encoding {encoding!r}")


def text_units(text: str, encoding: str = UTF16) -> int:
    """Code units of ``text`` in ``encoding``."""
    if encoding == UTF32:
        return len(text)
    return sum(units(ch, encoding) for ch in text)


def line_starts(text: str) -> list[int]:
    """Offsets where each line starts; a ``\\r\\n`` pair is one line break."""
    starts = [0]
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n" or ch == "\r":
            if ch == "\r" and i + 1 < n and text[i + 1] == "\n":
                i += 1
            starts.append(i + 1)
        i += 1
    return starts


def _line_end(text: str, starts: Sequence[int], line: int) -> int:
    """Offset of the end of ``line``'s content (before its line break)."""
    end = starts[line + 1] if line + 1 < len(starts) else len(text)
    if end > starts[line] and text[end - 1] == "\n":
        end -= 1
    if end > starts[line] and text[end - 1] == "\r":
        end -= 1
    return end


def position_to_offset(text: str, line: int, character: int, encoding: str = UTF16,
                       starts: Sequence[int] | None = None) -> int:
    """The Python offset of an LSP position in ``text``."""
    starts = line_starts(text) if starts is None else starts
    if line < 0 or character < 0:
        raise ValueError(f"negative position ({line}, {character})")
    if line >= len(starts):
        return len(text)
    offset, end = starts[line], _line_end(text, starts, line)
    left = character
    while offset < end:
        w = units(text[offset], encoding)
        if w > left:  # past the position, or inside this character: stop before it
            break
        left -= w
        offset += 1
    return offset


def offset_to_position(text: str, offset: int, encoding: str = UTF16,
                       starts: Sequence[int] | None = None) -> tuple[int, int]:
    """The LSP ``(line, character)`` of a Python offset in ``text`` (clamped to the text)."""
    starts = line_starts(text) if starts is None else starts
    offset = max(0, min(offset, len(text)))
    line = bisect.bisect_right(starts, offset) - 1
    return line, text_units(text[starts[line]:offset], encoding)
