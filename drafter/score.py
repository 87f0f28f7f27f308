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
from typing import NamedTuple, TypeVar

import torch

from drafter.network import CausalLM, ContinuationLM
from drafter.outputs import Score
from drafter.sampling import log_probs_and_entropy
from drafter.text import IncrementalDecoder

# float32 logits held at once while scoring windows: (rows, context, vocab) stays under 256 MB
_MAX_LOGITS = 1 << 26

T = TypeVar("T")


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
    return score_many(drafter, [ids], start)[0]


def score_many(drafter: CausalLM, texts: Sequence[Sequence[int]], start: Sequence[int] = ()) -> list[Score]:
    """:func:`score_ids` of several texts, their windows batched into shared forward passes.

    Rows are right-padded: a causal row never attends to the padding after it, and positions
    count from each row's own start, so every text scores as it does alone (up to float
    rounding of a wider batch).
    """
    start = [int(t) for t in start]
    fulls = [start + [int(t) for t in ids] for ids in texts]
    first = max(len(start) - 1, 0)  # logits at position j predict token j + 1
    pieces = [(row, w) for row, full in enumerate(fulls)
              for w in plan_windows(len(full), first, drafter.context_length)]
    picked: list[list[float]] = [[] for _ in texts]
    entropies: list[list[float]] = [[] for _ in texts]
    for batch in _batches(pieces, _rows_per_pass(drafter, [w for _, w in pieces])):
        for (row, _), (p, e) in zip(batch, _score_windows(drafter, [(fulls[row], w) for row, w in batch])):
            picked[row] += p  # a row's windows come in text order
            entropies[row] += e
    return [_score(drafter, full[len(start):], start, p, e) for full, p, e in zip(fulls, picked, entropies)]


def _score(drafter: CausalLM, ids: list[int], start: list[int], picked: list[float], entropies: list[float]) -> Score:
    """A text's score from the log-probs of its predicted tokens."""
    if not ids:
        return Score(text="", token_ids=[], logprobs=[], entropies=[], offsets=[])
    nan = [float("nan")] * (len(ids) - len(picked))  # 1 when there is no start token, else 0
    text, offsets = _decoded_text(drafter, ids, start)
    return Score(text=text, token_ids=ids, logprobs=nan + picked, entropies=nan + entropies, offsets=offsets)


def _score_windows(
    drafter: CausalLM, pieces: list[tuple[list[int], Window]]
) -> list[tuple[list[float], list[float]]]:
    """Log-prob of each kept prediction's target and its entropy, per ``(text, window)``."""
    device = drafter.device
    width = max(w.end - w.start for _, w in pieces)
    input_ids = torch.full((len(pieces), width), drafter.pad_id, dtype=torch.long)
    mask = torch.zeros((len(pieces), width), dtype=torch.long)
    for row, (full, w) in enumerate(pieces):
        input_ids[row, : w.end - w.start] = torch.tensor(full[w.start : w.end])
        mask[row, : w.end - w.start] = 1  # right padding: causal rows never see it
    positions = torch.arange(width)[None].expand(len(pieces), width)  # (n, W)
    logits, _ = drafter.forward(
        input_ids.to(device), mask.to(device), positions.to(device), None, cache=False
    )  # (n, W, V)
    out: list[tuple[list[float], list[float]]] = []
    for row, (full, w) in enumerate(pieces):
        kept = logits[row, w.first - w.start : w.end - 1 - w.start]  # (M, V)
        logp, entropy = log_probs_and_entropy(kept)  # (M, V), (M,)
        targets = torch.tensor(full[w.first + 1 : w.end], device=logp.device)  # (M,)
        out.append((logp.gather(-1, targets[:, None]).squeeze(-1).tolist(), entropy.tolist()))
    return out


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


def _batches(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


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


def score_continuations(
    drafter: ContinuationLM, prompt: Sequence[int], continuations: Sequence[Sequence[int]]
) -> list[list[float]]:
    """Log-prob of every token of each continuation after ``prompt``, the prompt run once.

    The prompt's cache is repeated for one batch of the continuations (right-padded, so a
    row never attends to the padding after it): a search's candidates all follow the same
    FIM prompt, which costs its tokens once instead of once per candidate. Where a prompt and
    its longest continuation pass the context, each row is scored whole in windows
    (:func:`score_many`) instead.
    """
    prompt = [int(t) for t in prompt]
    rows = [[int(t) for t in c] for c in continuations]
    width = max((len(r) for r in rows), default=0)
    if not prompt or width == 0 or (drafter.context_length is not None
                                    and len(prompt) + width > drafter.context_length):
        scores = score_many(drafter, [prompt[1:] + r for r in rows], prompt[:1])
        return [s.logprobs[len(s.logprobs) - len(r):] if r else [] for s, r in zip(scores, rows)]
    device = drafter.device
    ids = torch.tensor([prompt], device=device)  # (1, P)
    last, past = drafter.forward(
        ids, torch.ones_like(ids), torch.arange(len(prompt), device=device)[None], None, last_only=True
    )  # (1, 1, V): predicts every continuation's first token
    batch = torch.full((len(rows), width), drafter.pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), len(prompt) + width), dtype=torch.long)
    mask[:, : len(prompt)] = 1
    for i, row in enumerate(rows):
        batch[i, : len(row)] = torch.tensor(row)
        mask[i, len(prompt) : len(prompt) + len(row)] = 1
    positions = torch.arange(len(prompt), len(prompt) + width)[None].expand(len(rows), width)  # (B, W)
    logits, _ = drafter.forward(
        batch.to(device), mask.to(device), positions.to(device), drafter.repeat_cache(past, len(rows)), cache=False
    )  # (B, W, V): position j predicts token j + 1
    logp = torch.log_softmax(torch.cat([last.expand(len(rows), 1, -1), logits[:, :-1]], dim=1), dim=-1)  # (B, W, V)
    picked = logp.gather(-1, batch.to(logp.device)[:, :, None]).squeeze(-1)  # (B, W)
    return [picked[i, : len(row)].tolist() for i, row in enumerate(rows)]
