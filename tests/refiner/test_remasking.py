import pytest
import torch

from refiner.remasking import (
    cap_fraction,
    char_spans_to_token_mask,
    dilate,
    low_confidence_mask,
    mask_to_spans,
    merge_close,
    plan_remask,
    validate_char_spans,
)


def test_validate_char_spans_errors_name_the_problem():
    assert validate_char_spans("hello world", [(6, 11), (0, 2)]) == [(0, 2), (6, 11)]
    with pytest.raises(ValueError, match="text is empty"):
        validate_char_spans("", [(0, 1)])
    with pytest.raises(ValueError, match=r"span \(3, 20\) lies outside the text of 5"):
        validate_char_spans("hello", [(3, 20)])
    with pytest.raises(ValueError, match="empty or reversed"):
        validate_char_spans("hello", [(2, 2)])
    with pytest.raises(ValueError, match="overlap"):
        validate_char_spans("hello world", [(0, 5), (4, 7)])


def test_char_spans_map_to_overlapping_tokens():
    # tokens: "def", " f", "(", "x", ")", ":"  and a special token with an empty range
    offsets = [(0, 3), (3, 5), (5, 6), (6, 7), (7, 8), (8, 9), (0, 0)]
    m = char_spans_to_token_mask(offsets, [(4, 6)])
    assert m.tolist() == [False, True, True, False, False, False, False]
    assert not char_spans_to_token_mask(offsets, []).any()


def test_low_confidence_threshold_and_fraction():
    s = torch.tensor([-0.1, -5.0, -0.2, -3.0])
    assert low_confidence_mask(s, threshold=-1.0).tolist() == [False, True, False, True]
    assert low_confidence_mask(s, fraction=0.25).tolist() == [False, True, False, False]
    with pytest.raises(ValueError, match="exactly one"):
        low_confidence_mask(s)


def test_dilate_merge_cap():
    m = torch.zeros(12, dtype=torch.bool)
    m[3] = True
    m[8] = True
    assert mask_to_spans(dilate(m, 1)) == [(2, 5), (7, 10)]
    assert mask_to_spans(merge_close(dilate(m, 1), 2)) == [(2, 10)]
    assert mask_to_spans(merge_close(dilate(m, 1), 1)) == [(2, 5), (7, 10)]
    scores = torch.arange(12, dtype=torch.float32)
    capped = cap_fraction(dilate(m, 1), scores, 0.25)  # 3 of 12
    assert capped.sum() == 3 and capped[2] and capped[3] and capped[4]
    plan = plan_remask(m, scores, dilation=1, merge_gap=2, max_fraction=0.5)
    assert plan.sum() == 6
