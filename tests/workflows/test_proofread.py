"""Proofreading: candidates, the two-model check, what is not prose, and the wiring into revise.

The models are stubs that know one text: a left-bigram "refiner" (each position predicts
the token that follows its left neighbour in the reference) and a "drafter" that scores a
token high when it follows its predecessor as in the reference. Both prefer the reference,
so a fix that restores it raises both models' sentence scores; the tests then switch one
model's preference off to show that one model alone changes nothing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
import torch

from refiner.lexicon import english
from refiner.text import TextRefiner
from workflows.edits import Edit, apply_edits
from workflows.engine.pipelines import revise_needs
from workflows.fluency import Reading
from workflows.proofread import (
    Bar,
    ProofreadConfig,
    _chunks,
    _clears,
    by_fix,
    looks_like_code,
    not_prose,
    proofread,
    sentences,
    spelling_candidates,
    to_original,
)
from workflows.revise import ReviseParams, revise

REFERENCE = ("Permission is hereby granted, free of charge, to any person obtaining a copy of this software. "
             "The licensee shall not disclose confidential information to third parties.")


class BigramPredictor:
    """A refiner stub: position i predicts the reference's next token after token i - 1."""

    mask_token_id = 2
    max_length = 512

    def __init__(self, vocab: int, follows: dict[int, int]) -> None:
        self.vocab = vocab
        self.follows = follows

    def __call__(self, ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*ids.shape, self.vocab)
        for b in range(ids.shape[0]):
            for i in range(1, ids.shape[1]):
                nxt = self.follows.get(int(ids[b, i - 1]))
                if nxt is not None:
                    logits[b, i, nxt] = 8.0
        return logits


@dataclass
class _Score:
    logprobs: list[float]


class BigramDrafter:
    """A drafter stub: a token that follows its predecessor as in the reference is likely."""

    name = "bigram-drafter"

    def __init__(self, refiner: TextRefiner, follows: dict[int, int], agrees: bool = True) -> None:
        self.refiner = refiner
        self.follows = follows
        self.agrees = agrees  # False: every token equally likely, so no fix gains anything
        self.calls = 0

    def score(self, text: str) -> _Score:
        self.calls += 1
        ids, _ = self.refiner.encode(text)
        if not self.agrees:
            return _Score([-1.0] * len(ids))
        return _Score([-2.0] + [-0.05 if self.follows.get(a) == b else -8.0 for a, b in itertools.pairwise(ids)])


def _follows(refiner: TextRefiner) -> dict[int, int]:
    ids, _ = refiner.encode(REFERENCE)
    return dict(itertools.pairwise(ids))


@pytest.fixture()
def models(tiny_refiner):
    tok = tiny_refiner.tokenizer
    follows = _follows(tiny_refiner)
    refiner = TextRefiner(BigramPredictor(len(tok), follows), tok)
    return refiner, BigramDrafter(refiner, follows)


def test_misspelled_swapped_and_missing_words_are_fixed_with_offsets_into_the_original(models):
    refiner, drafter = models
    text = ("Permission is hereby gratned, free of charge, to any person obtaining copy of this sotfware. "
            "The licensee shall not disclose information confidential to third parties.")
    new, edits = proofread(text, refiner, drafter, ProofreadConfig())
    assert new == REFERENCE
    assert apply_edits(text, edits) == new
    assert all(text[e.start : e.end] == e.before and 0.5 < e.confidence <= 1 for e in edits)
    assert {(e.before, e.after, e.reason) for e in edits} == {
        ("gratned", "granted", "spelling"), ("", "a ", "missing_word"), ("sotfware", "software", "spelling"),
        ("information confidential", "confidential information", "word_order")}


def test_a_fix_only_one_model_prefers_is_not_made(models):
    refiner, drafter = models
    text = "Permission is hereby gratned, free of charge, to any person obtaining copy of this software."
    indifferent = BigramDrafter(refiner, drafter.follows, agrees=False)
    assert proofread(text, refiner, indifferent, ProofreadConfig()) == (text, [])
    flat = TextRefiner(BigramPredictor(len(refiner.tokenizer), {}), refiner.tokenizer)
    assert proofread(text, flat, drafter, ProofreadConfig()) == (text, [])
    # without a drafter the refiner alone decides
    new, _ = proofread(text, refiner, None, ProofreadConfig())
    assert "granted" in new and "a copy" in new


def test_code_urls_numbers_and_identifiers_are_left_alone(models):
    refiner, drafter = models
    text = ("Permission is hereby granted, free of charge, to any person obtaining `gratned` of "
            "https://example.org/sotfware and v1.2 of sotfware_name, gratned.txt or gratnedCase.")
    assert proofread(text, refiner, drafter, ProofreadConfig()) == (text, [])
    text2 = "See `a b` at https://x.org/p, mail me@x.org.\n>>> gratned(1)\nx = gratned\n"
    pieces = {text2[s:e] for s, e in not_prose(text2)}
    assert {"`a b`", "https://x.org/p,", "me@x.org", ">>> gratned(1)", "x = gratned\n"} <= pieces


def test_switches_turn_each_kind_of_fix_off(models):
    refiner, drafter = models
    text = "Permission is hereby gratned, free of charge, to any person obtaining copy of this software."
    new, edits = proofread(text, refiner, drafter, ProofreadConfig(), spelling=False)
    assert "gratned" in new and {e.reason for e in edits} == {"missing_word"}
    new, edits = proofread(text, refiner, drafter, ProofreadConfig(), missing_words=False)
    assert "obtaining copy" in new and {e.reason for e in edits} == {"spelling"}
    assert proofread(text, refiner, drafter, ProofreadConfig(), spelling=False, word_order=False,
                     missing_words=False) == (text, [])


def test_sentences_split_at_stops_blank_lines_and_list_items():
    text = "One two. Three four!\n\nFive six\nseven.\n- item one\n- item two"
    assert [text[s:e] for s, e in sentences(text)] == ["One two.", "Three four!", "Five six\nseven.",
                                                       "- item one", "- item two"]


def test_by_fix_joins_the_pieces_of_a_swap_into_one_edit():
    text = "we have information confidential here"
    pieces = [Edit(8, 8, "", "confidential ", "revision", 1.0), Edit(20, 33, "confidential ", "", "revision", 1.0)]
    assert apply_edits(text, pieces) == "we have confidential information here"
    mark = Edit(8, 32, "", "", "word_order", 0.9)
    (joined,) = by_fix(text, pieces, [mark])
    assert (joined.before, joined.after, joined.reason, joined.confidence) == (
        "information confidential", "confidential information", "word_order", 0.9)


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


def test_revise_proofreads_prose_with_both_models_and_leaves_code_alone(models):
    refiner, drafter = models
    snaps: list[str] = []
    text = "Permission is hereby gratned, free of charge, to any person obtaining copy of this software."
    res = revise(text, ReviseParams(), refiner, drafter, on_snapshot=snaps.append)
    assert res.text == "Permission is hereby granted, free of charge, to any person obtaining a copy of this software."
    assert apply_edits(text, res.edits) == res.text
    assert {e.reason for e in res.edits} == {"spelling", "missing_word"}
    assert snaps[-1] == res.text and "proofread" in res.audit.timings_ms
    assert res.audit.parameters["proofread_judges"] == ["drafter", "refiner"]
    assert res.diff.startswith("--- a/text") and res.matches
    off = ReviseParams(spelling=False, word_order=False, missing_words=False)
    assert revise(text, off, refiner, drafter).text == text
    code = "def f(sotfware):\n    if sotfware == 1:\n        return copy(a)\n    return None\n"
    assert revise(code, ReviseParams(remask_below=1e-12), refiner, drafter).text == code
    assert revise(text, ReviseParams(language="python", remask_below=1e-12), refiner, drafter).text == text


def test_proofreading_asks_for_the_drafter():
    assert revise_needs(ReviseParams()) == ("drafter", "refiner")
    assert revise_needs(ReviseParams(spelling=False, word_order=False, missing_words=False)) == ("refiner",)
    assert revise_needs(ReviseParams(language="python")) == ("refiner",)
    assert revise_needs(ReviseParams(spans=[(0, 1)])) == ("refiner",)


def test_prose_rewrite_stage_keeps_offsets_in_the_original(tiny_refiner):
    text = "Permission is hereby gratned, free of charge, to any person obtaining a copy of this software."
    res = revise(text, ReviseParams(rewrite_prose=True, remask_below=1.0, max_fraction=0.1, seed=0), tiny_refiner)
    assert apply_edits(text, res.edits) == res.text
    assert all(0 <= s < e <= len(text) for s, e in res.spans)


WRAPPED = ("The licensee shall not disclose confidential\ninformation to third parties, nor copy\n"
           "the software for any person.")


def test_hard_wrapped_prose_swaps_words_across_a_line_break_that_stays_in_place(tiny_refiner):
    tok = tiny_refiner.tokenizer
    follows = dict(itertools.pairwise(tiny_refiner.encode(WRAPPED)[0]))
    refiner = TextRefiner(BigramPredictor(len(tok), follows), tok)
    text = WRAPPED.replace("confidential\ninformation", "information\nconfidential")
    new, edits = proofread(text, refiner, BigramDrafter(refiner, follows), ProofreadConfig(), spelling=False,
                           missing_words=False)
    assert new == WRAPPED  # the words swapped back, the line break where the line ended
    assert [(e.before, e.after, e.reason) for e in edits] == [
        ("information\nconfidential", "confidential\ninformation", "word_order")]


def test_fixes_far_apart_in_one_sentence_are_made_in_one_round(models):
    refiner, drafter = models
    text = "Permission is hereby gratned, free of charge, to any person obtaining a copy of this sotfware."
    new, edits = proofread(text, refiner, drafter, ProofreadConfig(rounds=1, context_chars=20))
    assert new == REFERENCE.split(" The")[0]
    assert [e.after for e in edits] == ["granted", "software"]


def test_the_documents_own_words_are_known_and_are_candidates():
    text = "Bokeh draws plots. Rcih renders tables; see `Rich`, and Bokeh for charts."
    edits = spelling_candidates(text, _chunks(text, not_prose(text)), english(), ProofreadConfig())
    assert english().candidates("Bokeh", 2)  # the dictionary has words near it ...
    assert not [e for e in edits if e.before == "Bokeh"]  # ... but the document uses it twice: a name
    assert next(e.after for e in edits if e.before == "Rcih") == "Rich"  # a word of the document, nearest first
    alone = "Bokeh draws plots."
    assert [e for e in spelling_candidates(alone, _chunks(alone, not_prose(alone)), english(), ProofreadConfig())]


def test_spelling_and_missing_words_gain_in_all_swaps_per_token():
    cfg = ProofreadConfig()
    assert cfg.margins("word_order").drafter.per_token and cfg.margins("word_order").refiner.per_token
    assert cfg.margins("spelling").drafter.per_token is False and cfg.margins("missing_word").drafter.per_token is False
    # a typo read as many likely pieces, fixed into fewer: the mean falls, the total rises
    before, after = Reading(-40.0, 20), Reading(-28.0, 12)
    assert after.mean < before.mean
    assert _clears(Bar(10.0, per_token=False), before, after)
    assert not _clears(Bar(0.0, per_token=True), before, after)
