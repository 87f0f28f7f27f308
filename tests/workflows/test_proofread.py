"""Proofreading: lexicon, candidates, spelling and word-order fixes, wiring into revise."""

from __future__ import annotations

import pytest
import torch

from refiner.lexicon import Lexicon, case_like, edits1
from workflows.edits import Edit, apply_edits
from workflows.proofread import ProofreadConfig, looks_like_code, proofread, to_original
from workflows.revise import ReviseParams, revise

TRAIN = [
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software.",
    "The software is provided as is, without warranty of any kind. The software may be copied.",
    "A copy of the license is included. Permission to use the software is granted to any person.",
    "Zeugma is rare and a figure of speech. The form is filled in from the top.",
]
# repeated: word counts of a real corpus, so a typo's prior is far below its correction's
LEX = Lexicon.build(TRAIN * 1000, min_count=1, min_pair_count=1)
RARE = "Zeugma is a figure of speech, and Qwxyz is a name."


class FlatPredictor:
    """A stub refiner model: the same logits everywhere, so only the lexicon decides."""

    mask_token_id = 2
    max_length = 512

    def __init__(self, vocab: int) -> None:
        self.vocab = vocab

    def __call__(self, ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*ids.shape, self.vocab)


@pytest.fixture()
def flat_refiner(tiny_refiner):
    from refiner.text import TextRefiner

    out = TextRefiner(FlatPredictor(len(tiny_refiner.tokenizer)), tiny_refiner.tokenizer)
    out.lexicon = LEX
    return out


def test_lexicon_counts_words_and_pairs_and_round_trips(tmp_path):
    assert LEX.count("software") == 4000 and LEX.count("Software") == 4000 and "softwre" not in LEX
    assert LEX.pairs[("a", "copy")] == 2000 and ("copy", "a") not in LEX.pairs
    # pairs stop at clause breaks: "kind. The" is no pair
    assert ("kind", "the") not in LEX.pairs
    assert LEX.sequence_logp(["a", "copy", "of"]) > LEX.sequence_logp(["copy", "a", "of"])
    LEX.save(tmp_path / "lexicon.tsv.gz")
    back = Lexicon.beside(tmp_path)
    assert back is not None and back.counts == LEX.counts and back.pairs == LEX.pairs
    assert Lexicon.beside(tmp_path / "nothing") is None
    floor = Lexicon.build([*TRAIN, "Zeugma again."], min_count=2)
    assert "zeugma" in floor and "speech" not in floor


def test_candidates_are_one_edit_away_including_transposition():
    near = edits1("teh")
    assert {"the", "te", "tech", "tea"} <= near and "teh" not in near
    assert LEX.candidates("sfotware") == ["software"]  # adjacent letters swapped
    assert LEX.candidates("softwaare") == ["software"]  # a letter inserted
    assert LEX.candidates("frm") == ["form", "from"]  # equal counts: alphabetical
    assert case_like("software", "SOFTWRAE") == "SOFTWARE" and case_like("software", "Sotfware") == "Software"
    assert case_like("software", "sotfware") == "software"


def test_misspelled_word_is_fixed_with_case_and_offsets_into_the_original(flat_refiner):
    text = "Permission is hereby gratned to any person obtaining a Cpoy of this SOTFWARE."
    new, edits = proofread(text, flat_refiner, LEX, ProofreadConfig(), word_order=False)
    assert new == "Permission is hereby granted to any person obtaining a Copy of this SOFTWARE."
    assert [(e.before, e.after, e.reason) for e in edits] == [
        ("gratned", "granted", "spelling"), ("Cpoy", "Copy", "spelling"), ("SOTFWARE", "SOFTWARE", "spelling")]
    assert all(text[e.start : e.end] == e.before and 0 < e.confidence <= 1 for e in edits)


def test_known_rare_word_and_unknown_names_are_left_alone(flat_refiner):
    rare = Lexicon({**LEX.counts, "zeugma": 1}, LEX.pairs)  # seen once, next to a common word
    assert rare.candidates("zeugmas") == ["zeugma"]
    new, edits = proofread(RARE, flat_refiner, rare, ProofreadConfig(), word_order=False)
    assert new == RARE and edits == []


def test_swapped_words_are_put_back_and_a_swap_over_a_fixed_word_is_one_edit(flat_refiner):
    text = "Permission is granted to any person obtaining copy a of this software."
    new, edits = proofread(text, flat_refiner, LEX, ProofreadConfig(order_margin=1.0))
    assert new == "Permission is granted to any person obtaining a copy of this software."
    assert [e.reason for e in edits] == ["word_order"]
    both = "obtaining cpoy a of this"
    new, edits = proofread(both, flat_refiner, LEX, ProofreadConfig(order_margin=1.0))
    assert new == "obtaining a copy of this"
    assert len(edits) == 1 and (edits[0].before, edits[0].after) == ("cpoy a", "a copy")
    assert both[edits[0].start : edits[0].end] == "cpoy a"


def test_to_original_maps_offsets_across_length_changes():
    text = "ab cde f"
    edits = [Edit(3, 6, "cde", "xy", "spelling", 1.0)]  # new text "ab xy f"
    assert to_original(0, edits) == 0 and to_original(3, edits) == 3
    assert to_original(5, edits, right=True) == 6 and to_original(6, edits) == 7
    assert to_original(4, edits) == 3 and to_original(4, edits, right=True) == 6
    assert text[to_original(6, edits) :] == "f"


def test_code_is_recognised():
    code = "def f(x):\n    if x == 1:\n        return g(x)\n    return None\n"
    assert looks_like_code(code)
    assert not looks_like_code("Permission is hereby granted, free of charge.\nTo any person.")


def test_revise_proofreads_prose_and_leaves_code_alone(flat_refiner):
    snaps: list[str] = []
    text = "Permission is hereby gratned, free of charge, to any person obtaining copy a of this software."
    res = revise(text, ReviseParams(), flat_refiner, on_snapshot=snaps.append)
    assert res.text == "Permission is hereby granted, free of charge, to any person obtaining a copy of this software."
    assert apply_edits(text, res.edits) == res.text
    assert {e.reason for e in res.edits} == {"spelling", "word_order"}
    assert snaps[-1] == res.text and "proofread" in res.audit.timings_ms
    assert res.diff.startswith("--- a/text") and res.matches
    # off switches and code: nothing proofread
    assert revise(text, ReviseParams(spelling=False, word_order=False), flat_refiner).text == text
    code = "def f(sotfware):\n    if sotfware == 1:\n        return copy(a)\n    return None\n"
    assert revise(code, ReviseParams(remask_below=1e-12), flat_refiner).text == code
    assert revise(text, ReviseParams(language="python", remask_below=1e-12), flat_refiner).text == text


def test_prose_rewrite_stage_keeps_offsets_in_the_original(tiny_refiner):
    tiny_refiner.lexicon = LEX
    try:
        text = "Permission is hereby gratned, free of charge, to any person obtaining a copy of this software."
        res = revise(text, ReviseParams(rewrite_prose=True, remask_below=1.0, max_fraction=0.1, seed=0), tiny_refiner)
        assert apply_edits(text, res.edits) == res.text
        assert all(0 <= s < e <= len(text) for s, e in res.spans)
    finally:
        tiny_refiner.lexicon = None
