import pytest
import torch

from refiner.editing import (
    SpanEdit,
    fill_spans,
    infill,
    infill_variable,
    plan_windows,
)
from refiner.sampler import SamplerConfig
from refiner.scoring import token_scores
from tests.refiner.stubs import FILLER, MASK, PAD, CopyLeftPredictor, FixedPredictor


def test_infill_between_contexts_with_copy_left_model():
    pred = CopyLeftPredictor()
    span = infill(pred, [1, 2, 3], [0, 0], 4, PAD, config=SamplerConfig(steps=4, threshold=0.9))
    assert span.tokens == [4, 5, 6, 7]
    assert all(c > 0.9 for c in span.confidence)


def test_zero_length_and_bad_spans_raise():
    pred = CopyLeftPredictor()
    with pytest.raises(ValueError, match="length must be at least 1"):
        infill(pred, [1], [2], 0, PAD)
    with pytest.raises(ValueError, match="outside the document"):
        fill_spans(pred, [[1, 2, 3]], [[SpanEdit(2, 5, 3)]], PAD)
    with pytest.raises(ValueError, match="overlap"):
        fill_spans(pred, [[1, 2, 3, 4]], [[SpanEdit(0, 2, 2), SpanEdit(1, 3, 2)]], PAD)
    pred.max_length = 8
    with pytest.raises(ValueError, match="exceeds the model's maximum length"):
        fill_spans(pred, [[1, 2, 3, 4]], [[SpanEdit(1, 2, 10)]], PAD)


def test_window_grouping():
    edits = [SpanEdit(10, 12, 2), SpanEdit(15, 16, 1), SpanEdit(100, 104, 4)]
    ws = plan_windows(0, 200, edits, window=4)
    assert [(w.start, w.end, len(w.edits)) for w in ws] == [(6, 20, 2), (96, 108, 1)]
    whole = plan_windows(0, 200, edits, window=None)
    assert [(w.start, w.end) for w in whole] == [(0, 200)]


def test_windowed_revision_costs_the_same_in_long_and_short_docs():
    # CopyLeft: the fill depends only on the left neighbour, so both docs give the same span
    short = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    long = [0] * 500 + short + [0] * 500
    cfg = SamplerConfig(steps=8, threshold=0.9)
    r_short = fill_spans(CopyLeftPredictor(), [short], [[SpanEdit.remask(4, 7)]], PAD, window=3, config=cfg)[0]
    r_long = fill_spans(CopyLeftPredictor(), [long], [[SpanEdit.remask(504, 507)]], PAD, window=3, config=cfg)[0]
    assert r_short.row_tokens == r_long.row_tokens == 9
    assert r_short.spans[0].tokens == r_long.spans[0].tokens == [5, 6, 7]
    assert r_long.ids[:500] == [0] * 500 and r_long.ids[504:507] == [5, 6, 7]


def test_many_spans_and_documents_share_one_batch():
    pred = FixedPredictor(list(range(20, 28)) * 4)
    docs = [[1] * 30, [2] * 12]
    edits = [[SpanEdit.remask(2, 4), SpanEdit(20, 22, 3)], [SpanEdit.remask(5, 6)]]
    res = fill_spans(pred, docs, edits, PAD, window=2, config=SamplerConfig(steps=2))
    assert set(pred.batch_sizes[:1]) == {3}  # three windows in one forward pass
    assert len(res[0].ids) == 31 and len(res[1].ids) == 12
    # a 2-token span replaced by 3 tokens shifts the rest; untouched text is intact
    assert res[0].ids[:2] == [1, 1] and res[0].ids[-8:] == [1] * 8
    assert res[1].ids[:5] == [2] * 5 and res[1].ids[6:] == [2] * 6


def test_filler_tokens_are_dropped():
    target = [20, 21, FILLER, FILLER, 0, 0]
    pred = FixedPredictor([1, 2, *target])
    span = infill(pred, [1, 2], [0, 0], 4, PAD, filler_id=FILLER)
    assert span.raw_tokens == [20, 21, FILLER, FILLER]
    assert span.tokens == [20, 21]


def test_variable_length_ranks_by_model_score():
    class PrefersThree(FixedPredictor):
        # confident only when the span is exactly three tokens long (total length 7)
        def __call__(self, input_ids, attention_mask):
            self.calls += 1
            b, length = input_ids.shape
            out = torch.zeros(b, length, 32)
            for r in range(b):
                n = int(attention_mask[r].sum())
                out[r, :, 20] = 8.0 if n == 7 else 0.5
            return out

    pred = PrefersThree([0])
    ranked = infill_variable(pred, [1, 2], [3, 4], [2, 3, 5], PAD)
    assert len(ranked[0].raw_tokens) == 3
    assert pred.calls <= 5  # all lengths in one batch: calls bounded by the longest span


def test_token_scores_strided_never_sees_itself():
    class Echo:
        mask_token_id = MASK
        max_length = None

        def __call__(self, ids, attn):
            # confident in whatever is visible; uniform where masked
            lg = torch.nn.functional.one_hot(ids, 32).float() * 10
            lg[ids == MASK] = 0.0
            return lg

    ids = [3, 4, 5, 6, 7]
    unmasked = token_scores(Echo(), ids)
    strided = token_scores(Echo(), ids, stride=2)
    assert (unmasked > -0.01).all()
    assert torch.allclose(strided, torch.full((5,), -torch.log(torch.tensor(32.0))), atol=1e-4)


def test_windows_split_before_passing_the_model_limit():
    edits = [SpanEdit.remask(s, s + 4) for s in range(10, 400, 20)]
    ws = plan_windows(0, 500, edits, window=8, max_width=64)
    assert len(ws) > 1 and sum(len(w.edits) for w in ws) == len(edits)
    for w in ws:
        assert (w.end - w.start) <= 64
