"""Edits and unified diffs built from known changed regions (linear), against whole-text diffs."""

import random

import pytest

from workflows.edits import apply_edits, unified_diff
from workflows.regions import Region, region_diff, region_edits


def apply_unified(original: str, diff: str) -> str:
    """Apply a unified diff (as unified_diff writes it) to ``original``."""
    a = original.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    lines = diff.splitlines(keepends=True)[2:]
    k = 0
    while k < len(lines):
        head = lines[k]
        assert head.startswith("@@ -"), head
        a0 = int(head[4:].split(",")[0]) - 1
        out += a[i:a0]
        i = a0
        k += 1
        while k < len(lines) and not lines[k].startswith("@@"):
            ln = lines[k]
            body = ln[1:]
            if k + 1 < len(lines) and lines[k + 1].startswith("\\ No newline"):
                body, k = body[:-1], k + 1
            if ln[0] in " -":
                assert a[i] == body, (a[i], body)
                i += 1
            if ln[0] in " +":
                out.append(body)
            k += 1
    return "".join(out + a[i:])


def _change(text: str, changes: list[tuple[int, int, str]]) -> tuple[str, list[Region]]:
    """Apply sorted, disjoint (start, end, new) changes; the regions they make."""
    out, regions, cursor, shift = [], [], 0, 0
    for s, e, new in changes:
        out += [text[cursor:s], new]
        regions.append(Region(s, e, s + shift, s + shift + len(new)))
        shift += len(new) - (e - s)
        cursor = e
    out.append(text[cursor:])
    return "".join(out), regions


@pytest.mark.parametrize("text,changes", [
    ("one\ntwo\nthree\n", [(4, 7, "2")]),
    ("one\ntwo\nthree", [(13, 13, "\n\nfour")]),  # appended after a last line with no line break
    ("one\ntwo\n", [(0, 0, "zero\n")]),  # a new first line
    ("one\ntwo\nthree\n", [(3, 4, " ")]),  # a line break removed: two lines become one
    ("one two\nthree\n", [(3, 4, "\n")]),  # a line split in two
    ("a\r\nb\r\n", [(1, 2, "X")]),  # the \r of a \r\n pair replaced
    ("a\rb\n", [(2, 2, "\n")]),  # a \n inserted after a lone \r joins it into one break
    ("x\n\n\ny\n", [(0, 1, "X"), (2, 3, ""), (4, 5, "Y")]),  # several regions, one block
    ("", [(0, 0, "new")]),
    ("only\n", [(0, 5, "")]),
])
def test_region_diff_rebuilds_tricky_line_changes(text, changes):
    revised, regions = _change(text, changes)
    diff = region_diff(text, revised, regions, name="doc")
    assert apply_unified(text, diff) == revised
    assert apply_edits(text, region_edits(text, revised, regions, "r")) == revised


@pytest.mark.parametrize("seed", range(3))
def test_region_diff_is_the_whole_text_diff_when_lines_are_distinct(seed):
    rng = random.Random(seed)
    for _ in range(40):
        lines = [f"line {i} " + " ".join(rng.choice("abcdef") for _ in range(rng.randint(0, 5))) + "\n"
                 for i in range(rng.randint(1, 30))]
        text = "".join(lines)
        # change a few words inside lines: line structure stays, so an LCS diff finds the same blocks
        spots = sorted(rng.sample(range(len(lines)), rng.randint(1, min(4, len(lines)))))
        changes, at = [], 0
        for i, line in enumerate(lines):
            if i in spots:
                changes.append((at + 5, at + 5 + len(str(i)), rng.choice(["X", "YY", ""])))
            at += len(line)
        revised, regions = _change(text, changes)
        assert region_diff(text, revised, regions, name="doc") == unified_diff(text, revised, name="doc")


@pytest.mark.parametrize("seed", range(3))
def test_region_diff_rebuilds_random_changes(seed):
    rng = random.Random(seed)
    alphabet = ["a", "b", " ", "\n", "\r\n", "\r", "é"]
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, 2 * rng.randint(0, 4))))
        changes = [(s, e, "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3))))
                   for s, e in zip(cuts[::2], cuts[1::2])]
        revised, regions = _change(text, changes)
        assert apply_unified(text, region_diff(text, revised, regions)) == revised, (text, changes)
        assert apply_edits(text, region_edits(text, revised, regions, "r")) == revised
