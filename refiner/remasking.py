"""Remasking policies: which tokens of an existing text become masks.

An edit starts as a boolean mask over a document's tokens. It comes from user-selected
character spans (mapped through the tokenizer's offsets), from low per-token confidence
(drafter log-probs or the refiner's own scores), or from other detectors (syntax errors,
rule hits) that produce spans. Masks are then dilated, near spans merged, and the masked
share capped: re-masking too much destroys what was right.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

Span = tuple[int, int]  # half-open [start, end)


def validate_char_spans(text: str, spans: Sequence[Span]) -> list[Span]:
    """Check user spans against the text: non-empty text, inside it, non-empty, no overlap.

    Returns the spans sorted by start. Raises ValueError naming the offending span.
    """
    if not text:
        raise ValueError("text is empty: there is nothing to revise")
    out = sorted((int(s), int(e)) for s, e in spans)
    for s, e in out:
        if s < 0 or e > len(text):
            raise ValueError(f"span ({s}, {e}) lies outside the text of {len(text)} characters")
        if e <= s:
            raise ValueError(f"span ({s}, {e}) is empty or reversed: end must exceed start")
    for (s0, e0), (s1, e1) in itertools.pairwise(out):
        if s1 < e0:
            raise ValueError(f"spans ({s0}, {e0}) and ({s1}, {e1}) overlap")
    return out


def char_spans_to_token_mask(offsets: Sequence[Span], spans: Sequence[Span]) -> torch.Tensor:
    """Mark every token whose character range overlaps a span. offsets: one (start, end) per token."""
    mask = torch.zeros(len(offsets), dtype=torch.bool)
    if not spans:
        return mask
    for i, (ts, te) in enumerate(offsets):
        if te <= ts:  # special or empty tokens never carry user text
            continue
        for s, e in spans:
            if ts < e and s < te:
                mask[i] = True
                break
    return mask


def low_confidence_mask(
    scores: torch.Tensor, threshold: float | None = None, fraction: float | None = None
) -> torch.Tensor:
    """Tokens whose score (a log-prob or a probability) is below ``threshold``, or the lowest ``fraction``.

    scores: (L,) -> (L,) bool. Exactly one of threshold / fraction must be given.
    """
    if (threshold is None) == (fraction is None):
        raise ValueError("give exactly one of threshold or fraction")
    if threshold is not None:
        return scores < threshold
    assert fraction is not None
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    k = round(fraction * scores.numel())
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if k:
        mask[torch.topk(scores, k, largest=False).indices] = True
    return mask


def dilate(mask: torch.Tensor, k: int) -> torch.Tensor:
    """Grow every masked run by k tokens on each side: (L,) bool -> (L,) bool."""
    if k <= 0 or not bool(mask.any()):
        return mask.clone()
    m = mask.float()[None, None]  # (1, 1, L)
    grown = torch.nn.functional.max_pool1d(m, kernel_size=2 * k + 1, stride=1, padding=k)
    return grown[0, 0].bool()


def merge_close(mask: torch.Tensor, gap: int) -> torch.Tensor:
    """Fill unmasked gaps of at most ``gap`` tokens between two masked runs."""
    out = mask.clone()
    spans = mask_to_spans(mask)
    for (_, e0), (s1, _) in itertools.pairwise(spans):
        if s1 - e0 <= gap:
            out[e0:s1] = True
    return out


def cap_fraction(mask: torch.Tensor, scores: torch.Tensor | None, max_fraction: float) -> torch.Tensor:
    """Keep at most ``max_fraction`` of all tokens masked, preferring the lowest scores.

    Without scores the earliest masked tokens are kept (deterministic).
    """
    limit = int(max_fraction * mask.numel())
    n = int(mask.sum())
    if n <= limit:
        return mask.clone()
    if scores is None:
        scores = torch.arange(mask.numel(), dtype=torch.float32)
    ranked = scores.float().masked_fill(~mask, float("inf"))
    out = torch.zeros_like(mask)
    if limit:
        out[torch.topk(ranked, limit, largest=False).indices] = True
    return out


def mask_to_spans(mask: torch.Tensor) -> list[Span]:
    """Runs of True in a (L,) mask as half-open token spans."""
    spans: list[Span] = []
    start = None
    for i, v in enumerate(mask.tolist()):
        if v and start is None:
            start = i
        elif not v and start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(mask)))
    return spans


def plan_remask(
    base: torch.Tensor,
    scores: torch.Tensor | None = None,
    dilation: int = 0,
    merge_gap: int = 0,
    max_fraction: float = 1.0,
) -> torch.Tensor:
    """The usual pipeline: dilate, merge near spans, cap the masked share."""
    m = dilate(base, dilation)
    m = merge_close(m, merge_gap)
    return cap_fraction(m, scores, max_fraction)


def doubtful_spans(
    probs: Sequence[float], below: float, dilation: int = 0, merge_gap: int = 0, max_fraction: float = 1.0
) -> list[Span]:
    """Token spans to re-mask: tokens whose probability is below ``below``, dilated, merged
    and capped (the least probable kept first) by :func:`plan_remask`."""
    scores = torch.tensor(list(probs), dtype=torch.float32)
    return mask_to_spans(plan_remask(scores < below, scores, dilation, merge_gap, max_fraction))


def token_spans(offsets: Sequence[Span], char_spans: Sequence[Span]) -> list[Span]:
    """The token spans covering character spans (every token a span overlaps)."""
    return mask_to_spans(char_spans_to_token_mask(offsets, char_spans))
