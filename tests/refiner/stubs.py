"""Stub mask predictors with fixed logits, for sampler tests without a model."""

from __future__ import annotations

import torch

VOCAB = 32
MASK = 31
PAD = 30
FILLER = 29


class FixedPredictor:
    """Predicts ``target[i]`` at position i with probability ``probs[i]`` (rest spread evenly).

    Rows of the batch are predicted independently of their content, so the sampler's
    choices are fully determined by ``probs``. Counts its calls.
    """

    mask_token_id = MASK
    max_length: int | None = 4096

    def __init__(self, target: list[int], probs: list[float] | None = None) -> None:
        self.target = torch.tensor(target)
        self.probs = torch.tensor(probs if probs is not None else [0.9] * len(target))
        self.calls = 0
        self.batch_sizes: list[int] = []

    def logits_row(self, length: int) -> torch.Tensor:
        lg = torch.full((length, VOCAB), 0.0)
        for i in range(min(length, len(self.target))):
            p = float(self.probs[i])
            rest = (1 - p) / (VOCAB - 1)
            lg[i] = torch.log(torch.tensor(rest))
            lg[i, int(self.target[i])] = torch.log(torch.tensor(p))
        return lg

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.batch_sizes.append(input_ids.shape[0])
        b, length = input_ids.shape
        return self.logits_row(length)[None].repeat(b, 1, 1)


class CopyLeftPredictor:
    """Predicts at every masked position the token to its left plus one, if that is known.

    Confident (p=0.99) only where the left neighbour is unmasked, so an order that respects
    context is needed: a model-like stub for semi-AR and threshold tests.
    """

    mask_token_id = MASK
    max_length: int | None = 4096

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        b, length = input_ids.shape
        logits = torch.zeros(b, length, VOCAB)
        for r in range(b):
            for i in range(1, length):
                left = int(input_ids[r, i - 1])
                if left != MASK and left < 20:
                    logits[r, i, (left + 1) % 20] = 10.0
        return logits
