"""Score an existing text under the drafter: per-token log-probs and entropies, one forward pass.

This is how a pipeline finds the weak tokens of a text the drafter did not write (a user's
document, a human edit): the same two numbers a draft carries for each of its tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from drafter.outputs import Score
from drafter.sampling import log_probs_and_entropy
from drafter.text import IncrementalDecoder

if TYPE_CHECKING:
    from drafter.model import Drafter


def score_ids(drafter: Drafter, ids: Sequence[int], start: Sequence[int] = ()) -> Score:
    """Score ``ids`` after the context ``start`` (the document start: BOS or EOS).

    Token ``i`` is scored by the logits at the position before it, so with an empty ``start``
    the first token has no prediction and gets ``nan``.
    """
    ids = [int(t) for t in ids]
    start = [int(t) for t in start]
    full = start + ids
    drafter.check_length(len(full), what="text (with its start token)")
    if not ids:
        return Score(text="", token_ids=[], logprobs=[], entropies=[], offsets=[])
    device = drafter.device
    input_ids = torch.tensor([full], dtype=torch.long, device=device)  # (1, S + N)
    mask = torch.ones_like(input_ids)
    positions = torch.arange(len(full), device=device)[None]  # (1, S + N)
    logits, _ = drafter.forward(input_ids, mask, positions, None, cache=False)
    # logits at position j predict token j + 1: keep the N (or N - 1) that predict our tokens
    first = max(len(start) - 1, 0)
    logp, entropy = log_probs_and_entropy(logits[0, first : len(full) - 1])  # (M, V), (M,)
    targets = torch.tensor(full[first + 1 :], device=device)  # (M,)
    picked = logp.gather(-1, targets[:, None]).squeeze(-1)  # (M,)
    missing = len(ids) - len(targets)  # 1 when there is no start token, else 0
    nan = [float("nan")] * missing
    text, offsets = _decoded_text(drafter, ids, start)
    return Score(
        text=text,
        token_ids=ids,
        logprobs=nan + picked.tolist(),
        entropies=nan + entropy.tolist(),
        offsets=offsets,
    )


def _decoded_text(
    drafter: Drafter, ids: list[int], start: list[int]
) -> tuple[str, list[tuple[int, int]]]:
    """The text of ``ids`` and each token's character span in it, decoded incrementally."""
    decoder = IncrementalDecoder(drafter.tokenizer, start[-1:])
    pieces = [decoder.push(t) for t in ids]
    if decoder.pending:
        pieces[-1] += decoder.flush()
    offsets: list[tuple[int, int]] = []
    pos = 0
    for piece in pieces:
        offsets.append((pos, pos + len(piece)))
        pos += len(piece)
    return "".join(pieces), offsets
