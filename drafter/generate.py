"""Generation with a KV cache, as small free functions: prefill, decode one token, the loop.

One loop serves three front ends: :func:`generate_batch` (and so single drafts), and
:func:`stream`. Prompts of different lengths share a batch by *left* padding: every row's last
prompt token sits in the last column, so one forward step extends all rows at once. Padding is
hidden by the attention mask and skipped by the position ids (each row counts positions from its
own first real token), which is why a batched greedy draft equals the same prompt drafted alone.

Rows finish on their own (an end token, a stop string, their token budget); a finished row
keeps riding along with a masked pad token until the whole batch is done, its outputs ignored.
No row is ever fed a position past the model's context (``Drafter.context_length``): a
prompt must fit, a row's budget ends where the context does, and finished rows stop counting.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from drafter.network import CausalLM, ForwardFn, Prompt
from drafter.outputs import Draft, DraftToken, FinishReason
from drafter.params import GenerationParams
from drafter.sampling import log_probs_and_entropy, sample_next
from drafter.stopping import StopTracker


def left_pad(
    prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-align prompts in one batch. -> input_ids (B, T) int64, attention_mask (B, T)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
    return ids.to(device), mask.to(device)


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of each token within its own row, pads at 0. (B, T) -> (B, T)."""
    return (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)


def prefill(
    forward: ForwardFn, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, Any]:
    """Run the prompts through the model, filling the cache. -> next-token logits (B, V), cache."""
    positions = positions_from_mask(attention_mask)
    logits, past = forward(input_ids, attention_mask, positions, None, last_only=True)
    return logits[:, -1], past


def decode_one_token(
    forward: ForwardFn,
    tokens: torch.Tensor,
    attention_mask: torch.Tensor,
    positions: torch.Tensor,
    past: Any,
) -> tuple[torch.Tensor, Any]:
    """Feed one token per row. tokens, positions: (B,); attention_mask: (B, P + 1), covering the
    cache. -> next-token logits (B, V), cache."""
    logits, past = forward(
        tokens[:, None], attention_mask, positions[:, None], past, last_only=True
    )
    return logits[:, -1], past


@dataclass
class _Row:
    """One prompt's state in the loop."""

    prompt: list[int]
    params: GenerationParams
    budget: int  # tokens this row may generate: max_new_tokens, capped by the context
    tracker: StopTracker
    generator: torch.Generator | None
    generated: int = 0
    finish: FinishReason | None = None


def _rows(
    drafter: CausalLM,
    prompts: Sequence[Prompt],
    params: GenerationParams | Sequence[GenerationParams] | None,
) -> list[_Row]:
    """Encode and check every prompt before any compute, so a bad request fails fast."""
    if params is None or isinstance(params, GenerationParams):
        per_row = [params or GenerationParams()] * len(prompts)
    else:
        per_row = list(params)
        if len(per_row) != len(prompts):
            raise ValueError(f"{len(per_row)} params for {len(prompts)} prompts")
    rows = []
    for prompt, p in zip(prompts, per_row):
        ids = drafter.prompt_ids(prompt)
        drafter.check_length(len(ids))
        budget = p.max_new_tokens
        if drafter.context_length is not None:
            # the last generated token is never fed back, so it may land one past the context
            budget = min(budget, drafter.context_length - len(ids) + 1)
        generator = None
        if p.seed is not None:
            generator = torch.Generator(device=drafter.device).manual_seed(p.seed)
        tracker = StopTracker(drafter.tokenizer, p.stop, context_ids=ids[-1:])
        rows.append(_Row(ids, p, budget, tracker, generator))
    return rows


def decode_rows(
    drafter: CausalLM, rows: list[_Row], stop_ids: frozenset[int]
) -> Iterator[tuple[int, list[DraftToken]]]:
    """The decode loop. Yields ``(row, tokens)`` whenever a row releases tokens or finishes;
    a row's finish reason is on ``rows[i].finish`` once it is done."""
    input_ids, mask = left_pad([r.prompt for r in rows], drafter.pad_id, drafter.device)
    positions = mask.sum(dim=-1)  # (B,) position of the next token of each row
    logits, past = prefill(drafter.forward, input_ids, mask)  # (B, V)
    while True:
        logp, entropy = log_probs_and_entropy(logits)  # (B, V), (B,)
        chosen = logits.argmax(dim=-1)  # (B,) greedy rows keep this
        for i, row in enumerate(rows):
            if row.finish is not None:
                chosen[i] = drafter.pad_id
            elif not row.params.greedy:
                p = row.params
                chosen[i] = sample_next(
                    logits[i : i + 1], p.temperature, p.top_k, p.top_p, row.generator
                )[0]
        picked = logp.gather(-1, chosen[:, None]).squeeze(-1).tolist()  # (B,)
        ids, entropies = chosen.tolist(), entropy.tolist()
        for i, row in enumerate(rows):
            if row.finish is not None:
                continue
            if ids[i] in stop_ids:
                row.finish = "eos"
                yield i, row.tracker.finish()
                continue
            row.generated += 1
            released = row.tracker.push(ids[i], picked[i], entropies[i])
            if row.tracker.stopped:
                row.finish = "stop"
            elif row.generated >= row.budget:
                row.finish = "length"
                released += row.tracker.finish()
            if released or row.finish is not None:
                yield i, released
        if all(r.finish is not None for r in rows):
            return
        # A finished row rides along as a pad that nothing attends to (mask 0) at position 0,
        # and its positions stop counting: a row that ended on its token budget sits at the
        # end of the model's context, so one more position would be one the model never saw.
        done = torch.tensor([r.finish is not None for r in rows], device=mask.device)
        chosen = chosen.masked_fill(done, drafter.pad_id)
        mask = torch.cat([mask, (~done).long()[:, None]], dim=-1)  # (B, P + 1)
        fed = positions.masked_fill(done, 0)  # (B,)
        logits, past = decode_one_token(drafter.forward, chosen, mask, fed, past)
        positions = positions + (~done).long()


def generate_batch(
    drafter: CausalLM,
    prompts: Sequence[Prompt],
    params: GenerationParams | Sequence[GenerationParams] | None = None,
    *,
    stop_ids: frozenset[int] | None = None,
) -> list[Draft]:
    """Draft every prompt in one batch. ``params``: shared, or one per prompt (each row stops
    on its own stop strings and budget). ``stop_ids``: end tokens besides the model's EOS."""
    if not prompts:
        return []
    rows = _rows(drafter, prompts, params)
    tokens: list[list[DraftToken]] = [[] for _ in rows]
    for i, released in decode_rows(drafter, rows, drafter.eos_ids | (stop_ids or frozenset())):
        tokens[i].extend(released)
    return [Draft.from_tokens(t, r.finish or "length") for t, r in zip(tokens, rows)]


class DraftStream:
    """Iterator over the tokens of one draft, yielded as soon as each is certain.

    A token is held back only while its text could be the start of a stop string or ends in
    the middle of a UTF-8 character. The tokens and their text are exactly those of the
    :class:`Draft` that :func:`generate_batch` returns for the same request; ``finish_reason``
    is set once the iterator is exhausted, and :meth:`draft` gives the whole draft.
    """

    def __init__(self, events: Iterator[tuple[int, list[DraftToken]]], row: _Row) -> None:
        self._events = events
        self._row = row
        self._ready: deque[DraftToken] = deque()
        self._seen: list[DraftToken] = []

    def __iter__(self) -> DraftStream:
        return self

    def __next__(self) -> DraftToken:
        while not self._ready:
            _, released = next(self._events)  # StopIteration ends the stream
            self._ready.extend(released)
            self._seen.extend(released)
        return self._ready.popleft()

    @property
    def finish_reason(self) -> FinishReason | None:
        """Why the draft ended; ``None`` while tokens may still come."""
        return self._row.finish

    def draft(self) -> Draft:
        """Consume the rest of the stream and return the whole draft."""
        for _ in self:
            pass
        return Draft.from_tokens(self._seen, self._row.finish or "length")


def stream(
    drafter: CausalLM,
    prompt: Prompt,
    params: GenerationParams | None = None,
    *,
    stop_ids: frozenset[int] | None = None,
) -> DraftStream:
    """Stream one draft token by token. The prompt is checked now; the model runs on demand."""
    rows = _rows(drafter, [prompt], params)
    events = decode_rows(drafter, rows, drafter.eos_ids | (stop_ids or frozenset()))
    return DraftStream(events, rows[0])
