"""Batched scoring: several texts in shared passes, and continuations of one prompt sharing
its cache, score as each does alone."""

from __future__ import annotations

import pytest

from drafter import Drafter
from drafter.score import score_ids
from tests.drafter.conftest import make_tokenizer, tiny_llama

SMALL = 32


def test_texts_scored_together_score_as_each_alone(drafter: Drafter) -> None:
    texts = ["the cat reads the value.", "def f3(x):\n    return x * 3 + 3\n", "a", ""]
    together = drafter.score_many(texts)
    for text, got in zip(texts, together):
        alone = drafter.score(text)
        assert got.token_ids == alone.token_ids and got.text == alone.text
        assert got.logprobs == pytest.approx(alone.logprobs, abs=1e-4)
        assert got.entropies == pytest.approx(alone.entropies, abs=1e-4)


def test_continuations_of_one_prompt_score_as_whole_texts(drafter: Drafter) -> None:
    prompt = drafter.encode("def f1(x):\n    return ")
    continuations = [drafter.encode(t) for t in ("x * 1 + 1", "x", "the cat reads the value and more")]
    shared = drafter.score_continuations(prompt, continuations)
    for cont, got in zip(continuations, shared):
        assert len(got) == len(cont)
        assert got == pytest.approx(_tail(drafter, prompt, cont), abs=1e-4)


def _tail(d: Drafter, prompt: list[int], cont: list[int]) -> list[float]:
    """The continuation's log-probs in the whole text scored in one go (the prompt's first
    token as its start)."""
    return score_ids(d, prompt[1:] + cont, prompt[:1]).logprobs[-len(cont):]


def test_continuations_past_the_context_are_scored_in_windows() -> None:
    tok = make_tokenizer()
    d = Drafter(tiny_llama(len(tok), max_position_embeddings=SMALL, eos_token_id=None,
                           pad_token_id=tok.pad_token_id), tok, name="small")
    prompt = [10 + (i * 7) % 200 for i in range(SMALL - 4)]
    short, long = [11, 12], [13 + i for i in range(10)]  # the long one passes the context after the prompt
    got = d.score_continuations(prompt, [short, long])
    assert [len(g) for g in got] == [2, 10]
    assert got[0] == pytest.approx(_tail(d, prompt, short), abs=1e-4)
    assert got[1] == pytest.approx(_tail(d, prompt, long), abs=1e-4)
