"""The one scoring API: masked rows, batched passes, top-k at a masked position."""

from __future__ import annotations

import math

import torch

from refiner.scoring import ScoreRow, row_logprobs, row_scores, top_k_between
from tests.refiner.stubs import MASK, PAD, VOCAB, FixedPredictor


class Echo:
    """Sure of every visible token (logit 10 on it); uniform over the vocabulary where masked."""

    mask_token_id = MASK
    max_length = None

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def __call__(self, ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(ids.shape[0])
        lg = torch.nn.functional.one_hot(ids, VOCAB).float() * 10
        lg[ids == MASK] = 0.0
        return lg


def test_masked_positions_score_uniform_and_visible_ones_sure() -> None:
    rows = [ScoreRow([3, 4, 5, 6], masked=[1, 2], scored=[0, 1, 2])]
    (logp,) = row_logprobs(Echo(), rows, PAD)
    assert logp[0] > -0.01  # visible: the token vouches for itself
    assert all(abs(x + math.log(VOCAB)) < 1e-5 for x in logp[1:])  # masked: uniform


def test_scores_are_sums_and_do_not_depend_on_the_batching() -> None:
    rows = [ScoreRow(list(range(1, n + 1)), masked=[0], scored=[0, n - 1]) for n in (2, 5, 9)]
    one_pass, echo = row_scores(Echo(), rows, PAD), Echo()
    row_by_row = row_scores(echo, rows, PAD, batch_rows=1)
    assert echo.batch_sizes == [1, 1, 1]
    assert one_pass == row_by_row
    per_token = row_logprobs(Echo(), rows, PAD)
    assert one_pass == [sum(lp) for lp in per_token]


def test_top_k_between_reads_the_masked_position_and_skips_banned_ids() -> None:
    pred = FixedPredictor(target=[7, 8, 9, 10], probs=[0.5, 0.6, 0.7, 0.8])  # position i predicts target[i]
    top = top_k_between(pred, [([1], [2, 3]), ([1, 2], [3])], k=1, banned=[], pad_id=PAD)
    assert top == [[8], [9]]  # the mask sits at position 1, then at position 2
    banned = top_k_between(pred, [([1], [2])], k=2, banned=[8], pad_id=PAD)
    assert 8 not in banned[0] and len(banned[0]) == 2
