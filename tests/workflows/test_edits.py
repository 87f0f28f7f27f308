import pytest

from workflows.edits import Edit, apply_edits, compute_edits, languagetool_matches, unified_diff

CASES = [
    ("The colour of the licence is red.", "The color of the license is blue."),
    ("a b b c", "a b c"),
    ("x = f(a, b)", "x = f(a, b, b)"),
    ("", "new text"),
    ("old text", ""),
    ("Zürich naïve café", "Zürich naive café!"),
    ("line one\nline two\n", "line one\nline 2\nline three\n"),
]


@pytest.mark.parametrize("original,revised", CASES)
def test_edits_reproduce_the_revision_and_point_into_the_original(original, revised):
    edits = compute_edits(original, revised, reason="test")
    assert apply_edits(original, edits) == revised
    for e in edits:
        assert original[e.start : e.end] == e.before
        assert e.reason == "test"


def test_edits_are_word_level():
    edits = compute_edits("The colour is red.", "The color is red.")
    assert [(e.start, e.end, e.before, e.after) for e in edits] == [(4, 10, "colour", "color")]


def test_insertions_are_anchored_where_a_reader_expects():
    edits = compute_edits("Second line.\n", "Second line.\nThird.\n")
    assert [(e.start, e.after) for e in edits] == [(13, "Third.\n")]


def test_confidence_callback_sees_revised_range():
    seen = []
    compute_edits("a b", "a c", confidence=lambda j0, j1: seen.append((j0, j1)) or 0.5)
    assert seen == [(2, 3)]


def test_apply_edits_rejects_stale_before():
    with pytest.raises(ValueError, match="before="):
        apply_edits("abc", [Edit(0, 1, "x", "y", "r", 1.0)])


def test_unified_diff_format():
    d = unified_diff("a\nb\nc\n", "a\nB\nc\n", name="doc.txt")
    assert d.splitlines() == ["--- a/doc.txt", "+++ b/doc.txt", "@@ -1,3 +1,3 @@", " a", "-b", "+B", " c"]
    assert unified_diff("same\n", "same\n") == ""
    assert "\\ No newline at end of file" in unified_diff("a", "b")


def test_languagetool_matches():
    text = "We guarantee results."
    m = languagetool_matches(text, [Edit(3, 12, "guarantee", "promise", "no-guarantee", 0.8)])[0]
    assert m["offset"] == 3 and m["length"] == 9
    assert m["replacements"] == [{"value": "promise"}] and m["rule"]["id"] == "no-guarantee"
    ctx = m["context"]
    assert ctx["text"][ctx["offset"] : ctx["offset"] + ctx["length"]] == "guarantee"


def test_random_revisions_always_reproduce(tmp_path):
    import random

    rng = random.Random(0)
    words = ["a", "b", "c", " ", "\n", ".", "on", "information", ">", "x"]
    for _ in range(300):
        o = "".join(rng.choice(words) for _ in range(rng.randrange(0, 20)))
        r = "".join(rng.choice(words) for _ in range(rng.randrange(0, 20)))
        edits = compute_edits(o, r)
        assert apply_edits(o, edits) == r, (o, r, edits)
