"""The refiner never sees more positions than its config's context, on every path.

A tiny native refiner with ``max_position_embeddings = 32`` denoises spans of documents far
longer than that (with and without the context cache), tries several infill lengths, scores
long documents and revises long texts; a recorder around the model checks every call, and
every path must still produce its result.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from refiner.editing import SpanEdit, fill_spans, infill_variable, plan_windows, split_room
from refiner.model import RefinerModel, refiner_config, tokenizer_config
from refiner.predictor import HFMaskPredictor, native_predictor
from refiner.sampler import SamplerConfig
from refiner.scoring import fit_chunks, token_scores, window_scores
from refiner.text import TextRefiner

SMALL = 32
PAD = 62  # the tiny preset's pad id (vocabulary 64)


class Recorder:
    """Records the sequence length of every forward and predict_at call of a refiner model."""

    def __init__(self, model: RefinerModel) -> None:
        self.lengths: list[int] = []
        self._forward, self._predict_at = model.forward, model.predict_at
        model.forward = self._record_forward  # type: ignore[method-assign]
        model.predict_at = self._record_predict_at  # type: ignore[method-assign]

    def _record_forward(self, *args: Any, **kwargs: Any) -> Any:
        ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        self.lengths.append(ids.shape[1])
        return self._forward(*args, **kwargs)

    def _record_predict_at(self, input_ids: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        self.lengths.append(input_ids.shape[1])
        return self._predict_at(input_ids, *args, **kwargs)


def _small_predictor(**fields: Any) -> tuple[HFMaskPredictor, Recorder]:
    torch.manual_seed(0)
    model = RefinerModel(refiner_config("tiny", max_position_embeddings=SMALL, **fields))
    pred = native_predictor(model)
    return pred, Recorder(model)


@pytest.mark.parametrize("cache", [False, True])
@pytest.mark.parametrize("window", [None, 4, 100])
def test_spans_of_a_long_document_are_denoised_within_the_context(cache: bool, window: int | None) -> None:
    pred, rec = _small_predictor()
    doc = [i % 50 for i in range(300)]
    edits = [SpanEdit.remask(2, 5), SpanEdit(40, 41, 3), SpanEdit.remask(150, 160), SpanEdit.remask(296, 300)]
    res = fill_spans(pred, [doc], [edits], PAD, window=window, config=SamplerConfig(steps=4, cache=cache))[0]
    assert rec.lengths and max(rec.lengths) <= SMALL
    assert [len(s.raw_tokens) for s in res.spans] == [3, 3, 10, 4]
    assert res.row_tokens <= SMALL
    assert res.ids[5:40] == doc[5:40]  # untouched text stays


def test_a_span_longer_than_the_context_is_refused_clearly() -> None:
    pred, rec = _small_predictor()
    with pytest.raises(ValueError, match=r"window of 40 tokens.*maximum length \(32\)"):
        fill_spans(pred, [[1] * 100], [[SpanEdit(50, 50, 40)]], PAD)
    assert rec.lengths == []


def test_infill_candidates_share_one_context_that_fits() -> None:
    pred, rec = _small_predictor()
    left, right = [i % 50 for i in range(100)], [(i * 3) % 50 for i in range(100)]
    ranked = infill_variable(pred, left, right, [2, 4, 8], PAD, config=SamplerConfig(steps=2))
    assert rec.lengths and max(rec.lengths) <= SMALL
    assert sorted(len(s.raw_tokens) for s in ranked) == [2, 4, 8]
    assert all((s.edit.start, s.edit.end) == (100, 100) for s in ranked)  # between the whole sides
    # the longest candidate fills the context; the others see the same 24 context tokens
    assert max(rec.lengths) == SMALL


def test_window_scores_cut_long_chunks_to_fit() -> None:
    pred, rec = _small_predictor()
    ids = [i % 50 for i in range(200)]
    scores = window_scores(pred, ids, [(0, 120), (120, 200)], context=64, pad_id=PAD)
    assert max(rec.lengths) <= SMALL
    assert scores.shape == (200,) and bool(torch.isfinite(scores).all()) and bool((scores < 0).all())
    rec.lengths.clear()
    strided = token_scores(pred, ids, stride=2)
    assert max(rec.lengths) <= SMALL and bool((strided < 0).all())


def test_fit_chunks_keep_context_and_cover_each_token_once() -> None:
    rows = fit_chunks([(0, 120), (120, 130)], context=64, doc_len=200, max_length=32)
    covered = [i for lo, hi, _, _ in rows for i in range(lo, hi)]
    assert covered == list(range(130))
    assert all(b - a <= 32 and a <= lo and hi <= b for lo, hi, a, b in rows)
    # every cut keeps min(64, 32 // 4) = 8 tokens of context on each side where there is text
    assert all(lo - a >= min(8, lo) and b - hi >= min(8, 200 - hi) for lo, hi, a, b in rows)
    assert fit_chunks([(0, 10)], 4, 10, None) == [(0, 10, 0, 10)]


def test_plan_windows_shrinks_context_to_the_model() -> None:
    edit = [SpanEdit.remask(100, 104)]
    (w,) = plan_windows(0, 300, edit, window=None, max_width=SMALL)
    assert (w.start, w.end) == (86, 118)  # 28 tokens of room, half on each side
    (w,) = plan_windows(0, 300, [SpanEdit.remask(2, 6)], window=None, max_width=SMALL)
    assert (w.start, w.end) == (0, 32)  # the left edge gives its room to the right
    (w,) = plan_windows(0, 300, edit, window=3, max_width=SMALL)
    assert (w.start, w.end) == (97, 107)  # a small window is kept as asked
    (w,) = plan_windows(0, 300, edit, window=None)
    assert (w.start, w.end) == (0, 300)  # no limit: the whole document


def test_split_room() -> None:
    assert split_room(5, 6, 20) == (5, 6)
    assert split_room(50, 50, 20) == (10, 10)
    assert split_room(3, 50, 20) == (3, 17)
    assert split_room(50, 3, 20) == (17, 3)
    assert split_room(5, 5, None) == (5, 5)
    assert split_room(5, 5, -3) == (0, 0)


def test_text_refiner_on_a_long_text_stays_within_the_context(tiny_tokenizer) -> None:
    torch.manual_seed(0)
    model = RefinerModel(tokenizer_config("tiny", tiny_tokenizer, max_position_embeddings=SMALL))
    rec = Recorder(model)
    refiner = TextRefiner(native_predictor(model), tiny_tokenizer)
    text = "def add(a, b):\n    return a + b\n" * 20
    at = text.index("return", 300)
    out = refiner.revise(text, [(at, at + 6)])
    # only the tokens under the span change (a token may reach a few characters beyond it)
    assert out.text.startswith(text[: at - 8]) and out.text.endswith(text[at + 14 :])
    assert all(text[e.start : e.end] == e.before for e in out.edits)
    filled, _ = refiner.infill(text[:at], text[at:], lengths=(2, 4))
    assert isinstance(filled, str)
    assert rec.lengths and max(rec.lengths) <= SMALL
