"""Sampling primitives: pure functions of tensors and a ``torch.Generator``.

They hold no model and no loop, so each is tested on hand-made logits. The sampler in
``sampler.py`` composes them.
"""

from __future__ import annotations

from typing import Literal

import torch

# Below this temperature sampling is argmax. Dividing logits by a tiny temperature overflows
# (float32 drafter logits / 1e-40 are inf and their softmax NaN; float64 / 1e-320 ties every
# positive logit at inf), and a draw at it is the argmax anyway but for near-ties: a logit gap
# of 0.01 at 1e-4 is a factor of e^-100.
GREEDY_BELOW = 1e-4

Remasking = Literal["low_confidence", "random", "entropy", "margin"]
REMASKING: tuple[str, ...] = ("low_confidence", "random", "entropy", "margin")


def filter_top_k(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep the k largest logits on the last axis; the rest become -inf."""
    if k is None or k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def filter_top_p(logits: torch.Tensor, p: float | None) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of tokens whose probability reaches p."""
    if p is None or p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    probs = torch.softmax(sorted_logits.float(), dim=-1)
    # drop a token when the mass *before* it already reaches p; the top token always stays
    drop_sorted = probs.cumsum(-1) - probs >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_tokens(
    logits: torch.Tensor,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick a token per position: argmax below :data:`GREEDY_BELOW`, else Gumbel-max at ``temperature``.

    argmax(logits / T + G), G ~ Gumbel(0, 1), is an exact sample from softmax(logits / T).
    The noise is computed in float64: in low precision, -log(-log u) of u close to 1 rounds
    to a handful of values and the sample loses diversity (noted by the LLaDA authors).
    logits: (..., V) -> ids (...).
    """
    if temperature < GREEDY_BELOW:
        return logits.argmax(dim=-1)
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=torch.float64)
    u = u.clamp_(min=1e-20, max=1.0 - 1e-16)
    gumbel = -torch.log(-torch.log(u))
    return (logits.double() / temperature + gumbel).argmax(dim=-1)


def confidence_scores(
    probs: torch.Tensor,
    chosen: torch.Tensor,
    policy: str,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """How sure the model is of each chosen token; higher is committed first.

    probs: (..., V) softmax; chosen: (...) ids -> (...) float scores.
    - low_confidence: p(chosen) (LLaDA's default: the least confident stay masked);
    - margin: p(top1) - p(top2);
    - entropy: minus the entropy of the distribution;
    - random: uniform noise (the order is random).
    """
    if policy == "low_confidence":
        return probs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
    if policy == "margin":
        top2 = torch.topk(probs, 2, dim=-1).values
        return top2[..., 0] - top2[..., 1]
    if policy == "entropy":
        return (probs * torch.log(probs.clamp_min(1e-12))).sum(-1)
    if policy == "random":
        return torch.rand(chosen.shape, generator=generator, device=probs.device)
    raise ValueError(f"unknown remasking policy {policy!r}; choose one of {REMASKING}")


def num_transfer_tokens(masked_counts: torch.Tensor, steps: int) -> torch.Tensor:
    """Even schedule: how many tokens each row commits at each of ``steps`` steps.

    masked_counts: (B,) -> (B, steps); rows sum to their count, earlier steps take the
    remainder (10 over 4 steps -> 3, 3, 2, 2).
    """
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    base = masked_counts // steps
    rem = masked_counts % steps
    out = base[:, None].repeat(1, steps)
    out += (torch.arange(steps, device=masked_counts.device)[None, :] < rem[:, None]).long()
    return out


def select_commits(
    scores: torch.Tensor,
    candidates: torch.Tensor,
    k: torch.Tensor | None = None,
    threshold: float | None = None,
    probs_of_chosen: torch.Tensor | None = None,
    factor: float | None = None,
    early_exit: float | None = None,
) -> torch.Tensor:
    """Which candidate positions to commit this step.

    scores, candidates: (B, L); k: (B,) counts for the even schedule; with ``threshold``
    every candidate whose chosen-token probability exceeds it is committed, and at least
    the best-scoring candidate per row (the Fast-dLLM rule, so every step makes progress);
    with ``factor`` f, the n most probable candidates for the largest n with
    (n + 1) * (1 - p_n) < f, p_n the n-th highest probability (Fast-dLLM's factor rule: many
    tokens when all are likely, one when none is); with k as well, at least the k best, so a
    step budget still bounds the passes; with ``early_exit`` e, a row whose every candidate's
    chosen-token probability exceeds e commits all of them (the rest of its block in this
    pass). -> (B, L) bool, a subset of candidates.
    """
    neg = torch.finfo(scores.dtype).min
    masked_scores = scores.masked_fill(~candidates, neg)
    # one stable ordering serves both rules, so ties can never commit an extra position
    order = masked_scores.argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(order.shape[1], device=order.device).expand_as(order)
    )
    best = candidates & (rank == 0)
    quota = best
    if k is not None:
        k_eff = torch.minimum(k, candidates.sum(1)).clamp_min(1)
        quota = candidates & (rank < k_eff[:, None])
    p = probs_of_chosen if probs_of_chosen is not None else scores
    if k is None and factor is None and threshold is None:
        raise ValueError("select_commits needs k, threshold or factor")
    if factor is not None:
        quota = quota | _factor_commits(p, candidates, factor)
    if threshold is not None:
        quota = quota | (candidates & (p > threshold))
    if early_exit is not None:
        quota = quota | (candidates & _all_above(p, candidates, early_exit)[:, None])
    return quota


def _all_above(p: torch.Tensor, candidates: torch.Tensor, bar: float) -> torch.Tensor:
    """(B,) bool: every candidate of the row has p above ``bar`` (False for a row without any)."""
    return (p > bar).logical_or(~candidates).all(dim=1) & candidates.any(dim=1)


def _factor_commits(p: torch.Tensor, candidates: torch.Tensor, factor: float) -> torch.Tensor:
    """The n most probable candidates per row, n the largest with (n + 1) * (1 - p_n) < factor.

    Sorted descending, 1 - p_n grows with n as n + 1 does, so the condition holds for a
    prefix of the order and n is the length of that prefix.
    """
    p = p.masked_fill(~candidates, 0.0)
    ranked, order = p.sort(dim=1, descending=True, stable=True)
    n = torch.arange(1, p.shape[1] + 1, device=p.device)
    ok = ((n + 1) * (1.0 - ranked) < factor) & (ranked > 0)
    take = ok.long().cumprod(dim=1).bool()  # the prefix where the condition holds
    return candidates & torch.zeros_like(take).scatter(1, order, take)
