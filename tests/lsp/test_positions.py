"""LSP positions (UTF-16 by default) <-> Python offsets, checked against the encoders themselves."""

from __future__ import annotations

import pytest

from lsp.positions import (
    UTF8,
    UTF16,
    UTF32,
    line_starts,
    offset_to_position,
    position_to_offset,
    text_units,
    units,
)

TEXT = "naïve = '😀é'\r\nnext 🎉🎉 line\rold mac\n\nend 𝄞"


def utf16_col(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def test_units_of_a_character() -> None:
    assert [units(c) for c in "aé€😀"] == [1, 1, 1, 2]  # astral characters are a surrogate pair
    assert [units(c, UTF8) for c in "aé€😀"] == [1, 2, 3, 4]
    assert [units(c, UTF32) for c in "aé€😀"] == [1, 1, 1, 1]
    with pytest.raises(ValueError):
        units("a", "utf-7")


def test_line_starts_know_all_three_line_breaks() -> None:
    assert line_starts("a\nb\r\nc\rd") == [0, 2, 5, 7]
    assert line_starts("") == [0] and line_starts("x\n") == [0, 2]


@pytest.mark.parametrize("encoding", [UTF16, UTF8, UTF32])
def test_every_offset_round_trips(encoding: str) -> None:
    for offset in range(len(TEXT) + 1):
        line, char = offset_to_position(TEXT, offset, encoding)
        if offset < len(TEXT) and TEXT[offset] == "\n" and offset > 0 and TEXT[offset - 1] == "\r":
            continue  # between \r and \n: not a position a client can name
        assert position_to_offset(TEXT, line, char, encoding) == offset


def test_utf16_columns_match_the_encoder() -> None:
    line = "next 🎉🎉 line"
    start = TEXT.index(line)
    for i in range(len(line) + 1):
        assert offset_to_position(TEXT, start + i) == (1, utf16_col(line[:i]))
        assert position_to_offset(TEXT, 1, utf16_col(line[:i])) == start + i
    assert offset_to_position(TEXT, len(TEXT)) == (4, utf16_col("end 𝄞")) == (4, 6)


def test_out_of_range_positions_clamp() -> None:
    first_line_end = TEXT.index("\r")
    assert position_to_offset(TEXT, 0, 999) == first_line_end  # past the line: its end, not the next line
    assert position_to_offset(TEXT, 99, 0) == len(TEXT)  # past the text: its end
    emoji = TEXT.index("😀")
    assert position_to_offset(TEXT, 0, utf16_col(TEXT[:emoji]) + 1) == emoji  # inside the pair: before it
    assert offset_to_position(TEXT, -5) == (0, 0) and offset_to_position(TEXT, 10**6) == (4, 6)
    with pytest.raises(ValueError):
        position_to_offset(TEXT, -1, 0)


def test_text_units() -> None:
    assert text_units("a😀é") == 4 and text_units("a😀é", UTF8) == 7 and text_units("a😀é", UTF32) == 3
