"""The spelling dictionary: symspellpy's English word list, its lookups and casing."""

from __future__ import annotations

import pytest

from refiner.lexicon import case_like, document_words, english, nearest, words


def test_english_knows_common_words_case_insensitively_and_not_typos():
    lex = english()
    assert english() is lex  # loaded once per process
    assert len(lex) > 80_000
    assert "software" in lex and "Software" in lex and "sotfware" not in lex
    assert lex.count("the") > lex.count("software") > 0 and lex.count("sotfware") == 0
    assert lex.log_prior("the") > lex.log_prior("software") > lex.log_prior("sotfware")


def test_candidates_are_the_nearest_words_with_transposition_as_one_edit():
    lex = english()
    assert lex.candidates("sfotware") == ["software"]  # two adjacent letters swapped: one edit
    assert lex.candidates("softwaare") == ["software"]  # a letter inserted
    assert lex.candidates("teh")[0] == "the"  # the most frequent of the nearest first
    assert lex.candidates("software") == []  # a known word has no correction
    assert len(lex.candidates("ot", limit=3)) == 3
    with pytest.raises(ValueError, match="max_distance"):
        lex.candidates("teh", max_distance=3)


def test_case_like_and_words():
    assert case_like("software", "SOFTWRAE") == "SOFTWARE" and case_like("software", "Sotfware") == "Software"
    assert case_like("software", "sotfware") == "software"
    assert [m.group() for m in words("don't stop v2 at x_y")] == ["don't", "stop", "v", "at", "x", "y"]


def test_document_words_and_the_nearest_of_a_vocabulary():
    seen = document_words("Rich renders; `rich.print` and RICH's tables, rich")
    assert seen["rich"] == 3 and seen["rich's"] == 1 and seen["print"] == 1
    assert nearest("Rcih", ["rich", "rice", "ranch", "rcih"], 1) == ["rich"]  # a transposition is one edit
    assert nearest("tabels", ["tables", "label", "tab"], 2) == ["tables", "label"]  # nearest first
