"""Scoring existing tokens with the refiner: masked pseudo-likelihood, batched and windowed.

Every scorer here asks one question of the model: with some tokens of a row masked, what
log-probability does it give the true token at some positions? A row is a
:class:`ScoreRow`; rows of any length share padded batches sized so the float32 logits of
one forward pass stay under a fixed budget. On top of that sit the document scorer (every
token of a long text, chunk by chunk with context across the cuts) and the top-k guesses
for one masked position.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from refiner.editing import pad_batch, split_room
from refiner.predictor import MaskPredictor

# float32 logits held at once while scoring: (rows, width, vocab) stays under 256 MB
_MAX_LOGITS = 1 << 26


@dataclass(frozen=True)
class ScoreRow:
    """One row fed to the refiner: ``ids`` with the tokens at ``masked`` replaced by the mask,
    scored at ``scored`` (the log-probability of the row's own token there)."""

    ids: Sequence[int]
    masked: Sequence[int]
    scored: Sequence[int]


def row_logprobs(
    predictor: MaskPredictor, rows: Sequence[ScoreRow], pad_id: int, batch_rows: int | None = None
) -> list[list[float]]:
    """Log-probability of each row's true tokens at its scored positions, row by row.

    ``batch_rows``: rows per forward pass; None: as many as the logits budget allows.
    """
    out: list[list[float]] = []
    for first, logp in _true_token_logprobs(predictor, rows, pad_id, batch_rows):
        for r, row in enumerate(rows[first : first + len(logp)]):
            out.append(logp[r, list(row.scored)].tolist())
    return out


def row_scores(
    predictor: MaskPredictor, rows: Sequence[ScoreRow], pad_id: int, batch_rows: int | None = None
) -> list[float]:
    """Summed log-probability of each row's scored tokens (see :func:`row_logprobs`)."""
    return [sum(lp) for lp in row_logprobs(predictor, rows, pad_id, batch_rows)]


def top_k_between(
    predictor: MaskPredictor,
    sides: Sequence[tuple[Sequence[int], Sequence[int]]],
    k: int,
    banned: Sequence[int],
    pad_id: int,
) -> list[list[int]]:
    """The ``k`` likeliest tokens (``banned`` never) for one masked position between each
    ``(left, right)`` pair, likeliest first; all pairs in batched forward passes."""
    if not sides:
        return []
    rows = [[*left, predictor.mask_token_id, *right] for left, right in sides]
    at = torch.tensor([len(left) for left, _ in sides])
    banned_ids = torch.tensor(sorted(banned), dtype=torch.long)
    out: list[list[int]] = []
    per_pass = _rows_per_pass(predictor, max(len(r) for r in rows))
    device = _device(predictor)
    with torch.inference_mode():
        for first in range(0, len(rows), per_pass):
            x, attn = pad_batch(rows[first : first + per_pass], pad_id)
            logits = predictor(x.to(device), attn.to(device)).float().cpu()  # (N, W, V)
            picked = logits[torch.arange(len(x)), at[first : first + per_pass]]  # (N, V)
            picked = picked.index_fill(-1, banned_ids, float("-inf"))
            out += picked.topk(k, dim=-1).indices.tolist()
    return out


def window_scores(
    predictor: MaskPredictor,
    ids: Sequence[int],
    chunks: Sequence[tuple[int, int]],
    context: int,
    pad_id: int,
    stride: int | None = None,
) -> torch.Tensor:
    """Log-probability of every token of a long document, chunk by chunk: (L,).

    Each chunk [lo, hi) is fed with ``context`` tokens of its neighbours so a token at a cut
    still sees both sides. stride None: the text as it stands (cheap; meaningful for a
    refiner trained with edit noise). stride k: k rows per chunk, row j masking the tokens
    i with i % k == j, a pseudo-likelihood in which no token vouches for itself.

    No row passes the predictor's ``max_length``: the context shrinks to fit, and a chunk
    too long to keep ``min(context, max_length // 4)`` tokens of it on each side is cut into
    equal pieces that do (see :func:`fit_chunks`).
    """
    rows: list[ScoreRow] = []
    where: list[list[int]] = []  # document position of each scored token, per row
    for lo, hi, a, b in fit_chunks(chunks, context, len(ids), predictor.max_length):
        for phase in range(stride) if stride else [None]:
            picked = [i for i in range(lo, hi) if phase is None or i % stride == phase]  # type: ignore[operator]
            masked = [] if phase is None else [i - a for i in range(a, b) if i % stride == phase]  # type: ignore[operator]
            rows.append(ScoreRow(ids[a:b], masked, [i - a for i in picked]))
            where.append(picked)
    out = torch.zeros(len(ids))
    for positions, logp in zip(where, row_logprobs(predictor, rows, pad_id)):
        out[positions] = torch.tensor(logp)  # each token is scored in exactly one row
    return out


def token_scores(predictor: MaskPredictor, ids: Sequence[int], stride: int | None = None) -> torch.Tensor:
    """Log-probability the refiner gives each existing token of a document: (L,).

    The whole document is one chunk when it fits the model; a longer one is cut into pieces
    with context on both sides (see :func:`window_scores` for ``stride``). Any pad id does:
    padding is masked out of attention.
    """
    return window_scores(predictor, ids, [(0, len(ids))], len(ids), pad_id=0, stride=stride)


def fit_chunks(
    chunks: Sequence[tuple[int, int]], context: int, doc_len: int, max_length: int | None
) -> list[tuple[int, int, int, int]]:
    """``(lo, hi, a, b)`` per row: score tokens [lo, hi) from the fed tokens [a, b).

    Rows are at most ``max_length`` long (None: unbounded). A chunk longer than
    ``max_length - 2 * min(context, max_length // 4)`` is cut into equal pieces, so each
    keeps that much context per side where the document has it.
    """
    out = []
    for lo, hi in chunks:
        if hi <= lo:
            continue
        if max_length is None:
            out.append((lo, hi, max(0, lo - context), min(doc_len, hi + context)))
            continue
        longest = max(1, max_length - 2 * min(context, max_length // 4))
        n_pieces = -(-(hi - lo) // longest)  # ceil
        cuts = [lo + (hi - lo) * k // n_pieces for k in range(n_pieces + 1)]
        for p_lo, p_hi in itertools.pairwise(cuts):
            left, right = split_room(min(context, p_lo), min(context, doc_len - p_hi), max_length - (p_hi - p_lo))
            out.append((p_lo, p_hi, p_lo - left, p_hi + right))
    return out


def _true_token_logprobs(
    predictor: MaskPredictor, rows: Sequence[ScoreRow], pad_id: int, batch_rows: int | None
) -> Iterator[tuple[int, torch.Tensor]]:
    """Per forward pass: its first row's index and the log-probability of every row's own
    token at each position, (N, W), the ``masked`` positions fed as the mask."""
    if not rows:
        return
    mask = predictor.mask_token_id
    per_pass = batch_rows or _rows_per_pass(predictor, max(len(r.ids) for r in rows))
    device = _device(predictor)
    for first in range(0, len(rows), per_pass):
        part = rows[first : first + per_pass]
        x, attn = pad_batch([_with_masks(r, mask) for r in part], pad_id)
        truth, _ = pad_batch([r.ids for r in part], pad_id)
        with torch.inference_mode():
            logits = predictor(x.to(device), attn.to(device)).float().cpu()  # (N, W, V)
        yield first, torch.log_softmax(logits, -1).gather(-1, truth[..., None]).squeeze(-1)


def _with_masks(row: ScoreRow, mask: int) -> list[int]:
    fed = list(row.ids)
    for i in row.masked:
        fed[i] = mask
    return fed


def _rows_per_pass(predictor: MaskPredictor, width: int) -> int:
    """Rows of ``width`` tokens whose float32 logits fit the budget together."""
    config = getattr(getattr(predictor, "model", None), "config", None)
    vocab = int(getattr(config, "vocab_size", 0) or 1 << 16)  # a large guess when unknown
    return max(1, _MAX_LOGITS // (width * vocab))


def _device(predictor: MaskPredictor) -> torch.device:
    device: torch.device = getattr(predictor, "device", torch.device("cpu"))
    return device
