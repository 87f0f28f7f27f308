"""Sampling primitives for the drafter: pure functions, tensors (and a generator) in, tensors out.

Two things happen to the logits of each step, and they are kept apart on purpose:

* *scoring* uses the model's own distribution, untempered and unfiltered: the log-probability
  of the chosen token and the entropy of the distribution. These are the refiner's hint of
  where a draft is weak, so they must not change with the sampling knobs of a request.
* *choosing* the next token applies temperature, top-k and top-p, then samples with the
  request's private ``torch.Generator`` (or takes the argmax when the temperature is 0, or so
  small that dividing by it would overflow: below ``GREEDY_BELOW``, shared with the refiner).

Nothing here knows about models or tokenizers, so all of it is tested with fixed logits.
"""

from __future__ import annotations

import torch

from refiner.sampling import GREEDY_BELOW


def log_probs_and_entropy(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities and entropy (in nats) of the untempered distribution.

    logits: (..., V) -> log-probs (..., V) and entropy (...), both float32.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    p = logp.exp()
    # xlogy gives 0 for p == 0: models that mask tokens with -inf would otherwise yield 0 * -inf = nan
    entropy = -torch.special.xlogy(p, p).sum(dim=-1)
    return logp, entropy


def filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row, set the rest to -inf. ``k <= 0`` keeps all.

    logits: (B, V) -> (B, V). Ties at the k-th value are all kept.
    """
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def filter_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of tokens whose probability sums to at least ``p``.

    logits: (B, V) -> (B, V). ``p >= 1`` keeps all; the most likely token is always kept.
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    probs = torch.softmax(sorted_logits.float(), dim=-1)
    # mass strictly before each token: a token is dropped once the tokens ahead of it reach p
    mass_before = probs.cumsum(dim=-1) - probs
    drop_sorted = mass_before >= p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_next(
    logits: torch.Tensor,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Choose one token per row. logits: (B, V) -> ids (B,) int64.

    ``temperature == 0`` is greedy (argmax; the first index wins a tie) and ignores the rest; so
    is a temperature below :data:`GREEDY_BELOW` (dividing by it overflows; a draw would be the argmax).
    Otherwise the logits are divided by the temperature, filtered by top-k then top-p, and one
    token is drawn per row with ``generator`` (the global RNG when ``None``).
    """
    if temperature < GREEDY_BELOW:
        return logits.argmax(dim=-1)
    scaled = logits.float() / temperature
    scaled = filter_top_p(filter_top_k(scaled, top_k), top_p)
    probs = torch.softmax(scaled, dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)
