"""The fluency judges: each text read once, the refiner's rows batched, and what counts."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from refiner.text import TextRefiner
from workflows.fluency import DrafterFluency, Reading, RefinerFluency, judge


@dataclass
class _Score:
    logprobs: list[float]


class CountingDrafter:
    """Scores a text as -1 per character but the first (no prediction: nan), counting calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def score(self, text: str) -> _Score:
        self.calls.append(text)
        return _Score([math.nan] + [-1.0] * (len(text) - 1))


class CountingPredictor:
    """Wraps a mask predictor, counting forward passes and rows."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.passes = 0
        self.rows = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def __call__(self, ids, attn):
        self.passes += 1
        self.rows += ids.shape[0]
        return self.inner(ids, attn)


def test_reading_mean_and_the_empty_text():
    assert Reading(-6.0, 3).mean == -2.0
    assert Reading(0.0, 0).mean == 0.0


def test_drafter_reads_each_text_once_and_drops_only_nan():
    drafter = CountingDrafter()
    read = DrafterFluency(drafter)
    out = read(["abcd", "", "abcd", "ab"])
    assert out == [Reading(-3.0, 3), Reading(0.0, 0), Reading(-3.0, 3), Reading(-1.0, 1)]
    assert read(["ab", "abcd"]) == [Reading(-1.0, 1), Reading(-3.0, 3)]
    assert drafter.calls == ["abcd", "ab"]  # the empty text is never scored, the rest once each

    class RulesOut(CountingDrafter):
        def score(self, text: str) -> _Score:
            return _Score([math.nan, -1.0, -math.inf])

    assert DrafterFluency(RulesOut())(["abc"])[0].total == -math.inf  # a ruled-out token reads as the worst


def test_refiner_reads_as_token_by_token_pseudo_likelihood_in_one_batch(tiny_refiner):
    counting = CountingPredictor(tiny_refiner.predictor)
    refiner = TextRefiner(counting, tiny_refiner.tokenizer)
    texts = ["Permission is hereby granted.", "Permission granted hereby is.", "", "Permission is hereby granted."]
    read = RefinerFluency(refiner, stride=4)
    out = read(texts)
    assert counting.passes == 1  # every row of every new text in one forward pass
    for text, r in zip(texts, out):
        ids, _ = refiner.encode(text)
        expected = refiner.token_logprobs(ids, [(0, len(ids))], context=0, stride=4) if ids else []
        assert r.tokens == len(ids) and r.total == pytest.approx(sum(expected), abs=1e-4)
    assert out[2] == Reading(0.0, 0) and out[0] == out[3]
    passes = counting.passes
    assert read(texts[:2]) == out[:2] and counting.passes == passes  # read before: nothing runs


def test_refiner_reads_a_text_longer_than_the_model_in_windows(tiny_refiner):
    long = " ".join(["granted"] * 2000)
    ids, _ = tiny_refiner.encode(long)
    assert tiny_refiner.max_length is not None and len(ids) > tiny_refiner.max_length
    (r,) = RefinerFluency(tiny_refiner)([long])
    assert r.tokens == len(ids) and math.isfinite(r.total) and r.total < 0


def test_judge_is_the_drafter_where_there_is_one(tiny_refiner):
    assert judge(tiny_refiner, CountingDrafter()).name == "drafter"
    assert judge(tiny_refiner, None).name == "refiner"
