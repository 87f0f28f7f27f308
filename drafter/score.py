"""Score an existing text under the drafter: per-token log-probs and entropies.

This is how a pipeline finds the weak tokens of a text the drafter did not write (a user's
document, a human edit): the same two numbers a draft carries for each of its tokens.

A text that fits the model's context is scored in one forward pass. A longer one is scored
in overlapping windows of the context's length, never in one pass: positions past the
context are positions the model never saw in training. Each window after the first starts
``overlap`` tokens before the first token it scores, so every token is predicted from at
least that much text (half the context), the strided evaluation used for perplexity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from drafter.network import CausalLM
from drafter.outputs import Score
from drafter.sampling import log_probs_and_entropy
from drafter.text import IncrementalDecoder

# float32 logits held at once while scoring windows: (rows, context, vocab) stays under 256 MB
_MAX_LOGITS = 1 << 26


class Window(NamedTuple):
    """One forward pass of a long text: tokens [start, end) of it, fed from position 0.

    Its logits at text positions [first, end - 1) are kept: each predicts the next token.
    """

    start: int
    end: int
    first: int


def plan_windows(length: int, first: int, context: int | None) -> list[Window]:
    """Windows that predict text positions [first, length - 1) without passing ``context``.

    A text that fits is one window. Otherwise every window holds ``context`` tokens (the last
    may be shorter) and starts ``overlap = context // 2`` tokens before the first position it
    keeps, so no prediction sees less than that much context (bar the text's own start).
    """
    if length - 1 <= first:
        return []
    if context is None or length <= context:
        return [Window(0, length, first)]
    if context < 2:
        raise ValueError(f"a context of {context} tokens cannot score a text: it needs 2")
    overlap = max(0, min(context // 2, context - 2))
    windows = []
    start, keep = 0, first
    while keep < length - 1:
        end = min(start + context, length)
        windows.append(Window(start, end, keep))
        keep = end - 1
        start = max(0, keep - overlap)
    return windows


def score_ids(drafter: CausalLM, ids: Sequence[int], start: Sequence[int] = ()) -> Score:
    """Score ``ids`` after the context ``start`` (the document start: BOS or EOS).

    Token ``i`` is scored by the logits at the position before it, so with an empty ``start``
    the first token has no prediction and gets ``nan``. A text longer than the drafter's
    context is scored in overlapping windows (see the module docstring).
    """
    ids = [int(t) for t in ids]
    start = [int(t) for t in start]
    if not ids:
        return Score(text="", token_ids=[], logprobs=[], entropies=[], offsets=[])
    full = start + ids
    # logits at position j predict token j + 1: keep the N (or N - 1) that predict our tokens
    first = max(len(start) - 1, 0)
    windows = plan_windows(len(full), first, drafter.context_length)
    picked: list[float] = []
    entropies: list[float] = []
    for batch in _batches(windows, _rows_per_pass(drafter, windows)):
        p, e = _score_windows(drafter, full, batch)
        picked += p
        entropies += e
    missing = len(ids) - len(picked)  # 1 when there is no start token, else 0
    nan = [float("nan")] * missing
    text, offsets = _decoded_text(drafter, ids, start)
    return Score(
        text=text,
        token_ids=ids,
        logprobs=nan + picked,
        entropies=nan + entropies,
        offsets=offsets,
    )


def _score_windows(
    drafter: CausalLM, full: list[int], windows: list[Window]
) -> tuple[list[float], list[float]]:
    """Log-prob of each kept prediction's target and its entropy, windows in text order."""
    device = drafter.device
    width = max(w.end - w.start for w in windows)
    input_ids = torch.full((len(windows), width), drafter.pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), width), dtype=torch.long)
    for row, w in enumerate(windows):
        input_ids[row, : w.end - w.start] = torch.tensor(full[w.start : w.end])
        mask[row, : w.end - w.start] = 1  # right padding: causal rows never see it
    positions = torch.arange(width)[None].expand(len(windows), width)  # (n, W)
    logits, _ = drafter.forward(
        input_ids.to(device), mask.to(device), positions.to(device), None, cache=False
    )  # (n, W, V)
    picked: list[float] = []
    entropies: list[float] = []
    for row, w in enumerate(windows):
        kept = logits[row, w.first - w.start : w.end - 1 - w.start]  # (M, V)
        logp, entropy = log_probs_and_entropy(kept)  # (M, V), (M,)
        targets = torch.tensor(full[w.first + 1 : w.end], device=logp.device)  # (M,)
        picked += logp.gather(-1, targets[:, None]).squeeze(-1).tolist()
        entropies += entropy.tolist()
    return picked, entropies


def _rows_per_pass(drafter: CausalLM, windows: list[Window]) -> int:
    """How many windows one forward pass takes: the logits are (rows, context, vocab)."""
    if not windows:
        return 1
    config = getattr(drafter.model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config(decoder=True)
    vocab = int(getattr(config, "vocab_size", 0) or 1 << 16)
    width = max(w.end - w.start for w in windows)
    return max(1, _MAX_LOGITS // (width * vocab))


def _batches(windows: list[Window], size: int) -> list[list[Window]]:
    return [windows[i : i + size] for i in range(0, len(windows), size)]


def _decoded_text(
    drafter: CausalLM, ids: list[int], start: list[int]
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
