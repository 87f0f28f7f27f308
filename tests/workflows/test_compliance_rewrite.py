"""The candidates of a banned phrase: sentences, mended deletions, the preferred term's forms."""

from __future__ import annotations

from workflows.findings import banned_spans
from workflows.rewrite import deletions, join, preferred_forms, sentence_around, substitutions
from workflows.rules import BannedPhrase


def test_the_sentence_around_a_phrase() -> None:
    text = "Intro line.\n\nThe Provider will always deliver. We guarantee that\nevery report is done. Bye."
    s = text.index("always")
    a, b = sentence_around(text, s, s + 6)
    assert text[a:b] == "The Provider will always deliver."
    s = text.index("guarantee")
    a, b = sentence_around(text, s, s + 9)
    assert text[a:b] == "We guarantee that\nevery report is done."
    # no sentence end in reach: cut at spaces, never longer than the reach on each side
    run = "word " * 500
    a, b = sentence_around(run, 1250, 1254, reach=100)
    assert 1150 <= a <= 1250 and 1254 <= b <= 1354 and run[a - 1] == " "


def test_deletions_mend_the_sentence() -> None:
    s = "The Provider will always deliver the services."
    assert "The Provider will deliver the services." in deletions(s, 18, 24)
    s = "We guarantee that\nevery report is complete."
    out = deletions(s, 3, 12)
    assert "Every report is complete." in out  # the subject and the dangling "that" go, a capital comes
    assert "We that\nevery report is complete." in out and "We\nevery report is complete." in out
    assert all(" commitment." not in c and not c.startswith((" ", "\n")) for c in out)
    assert "It is a plan, and." in deletions("It is a plan, and risk-free.", 18, 27)  # no space before "."


def test_the_other_article_is_offered() -> None:
    out = join("It is a risk-free offer.", "It is a ", "", " offer.")
    assert out == ["It is a offer.", "It is an offer."]


def test_the_preferred_term_takes_the_phrase_inflection() -> None:
    assert preferred_forms("guarantees", "ensure")[:2] == ["ensure", "ensures"]
    assert "ensured" in preferred_forms("guaranteed", "ensure")
    assert preferred_forms("Guarantee", "make sure")[0] == "Make sure"
    assert "makes sure" in preferred_forms("guarantees", "make sure")  # the verb of the term is inflected
    assert "service levels" in preferred_forms("warranties", "service level")  # the noun, at the end
    s = "The Provider guarantees delivery."
    assert "The Provider ensures delivery." in substitutions(s, 13, 23, "ensure")


def test_banned_spans_follow_each_rule() -> None:
    bans = [BannedPhrase(id="a", type="banned_phrase", phrases=["always"]),
            BannedPhrase(id="b", type="banned_phrase", phrases=["the"], whole_word=False, case_sensitive=True)]
    assert banned_spans("Always then The", bans) == [(0, 6), (7, 10)]
