"""Fill-in-the-middle augmentation for the drafter, at the character level of document pieces.

A training window is cut at its end-of-text tokens into *pieces*, each a part of one
document. A share ``rate`` of the pieces is rearranged (the rest stay plain left-to-right
text). A rearranged piece is decoded to text, cut at two uniformly random *character*
positions into prefix, middle and suffix, each part is tokenised on its own, and the parts
are laid out with the sentinels in one of two orders:

    PSM  <|fim_prefix|> prefix <|fim_suffix|> suffix <|fim_middle|> middle <|endoftext|>
    SPM  <|fim_prefix|> <|fim_suffix|> suffix <|fim_middle|> prefix middle <|endoftext|>

(SPM is the variant of Bavarian et al. 2022 used by Code Llama and StarCoder: the prefix sits
right before the middle.) These are the layouts of :func:`drafter.fim.fim_prompt_ids` with the
"remask" format; the end-of-text token after the middle teaches the model where to stop.

Why characters, not tokens: at inference the editor's cursor falls anywhere, often inside
what would be one token, and the prefix and suffix are tokenised separately. Cutting text
and tokenising the parts the same way in training shows the model exactly those token
sequences. The price, re-tokenising about 2 pieces per window, is microseconds against a
training step of hundreds of milliseconds.

The result keeps the window's length L: the last piece is shortened before it is
rearranged to leave room for the sentinels, the rare overflow is cut off, and the rest is
padded with ``<|pad|>`` whose label is -100 (ignored by the loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from backends.tokens import EOS, FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, PAD

IGNORE = -100  # label of padding: cross_entropy's default ignore_index


@dataclass(frozen=True)
class FimSpec:
    """How much and how to rearrange."""

    rate: float = 0.5  # share of document pieces rearranged ("about half the samples")
    spm_share: float = 0.5  # of those, the share in SPM order; the rest PSM
    min_chars: int = 4  # shorter pieces stay plain: nothing to cut
    margin: int = 2  # extra tokens kept free in the last piece: re-tokenising may add some


@dataclass(frozen=True)
class FimIds:
    """Token ids the layouts use."""

    prefix: int
    suffix: int
    middle: int
    eos: int
    pad: int

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> FimIds:
        vocab: dict[str, int] = tokenizer.get_vocab()
        missing = [t for t in (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE, EOS, PAD) if t not in vocab]
        if missing:
            raise ValueError(f"the tokenizer lacks the tokens {missing} that FIM training needs")
        return cls(vocab[FIM_PREFIX], vocab[FIM_SUFFIX], vocab[FIM_MIDDLE], vocab[EOS], vocab[PAD])


def layout(
    prefix: list[int], middle: list[int], suffix: list[int], order: str, ids: FimIds
) -> list[int]:
    """The sentinel layout of one rearranged piece, ending with EOS (see module docstring)."""
    if order == "psm":
        return [ids.prefix, *prefix, ids.suffix, *suffix, ids.middle, *middle, ids.eos]
    if order == "spm":
        return [ids.prefix, ids.suffix, *suffix, ids.middle, *prefix, *middle, ids.eos]
    raise ValueError(f"unknown FIM order {order!r}; known: psm, spm")


def split_pieces(row: list[int], eos: int) -> list[tuple[list[int], bool]]:
    """Cut a window at EOS: [(tokens of the piece, whether an EOS followed it)]."""
    pieces: list[tuple[list[int], bool]] = []
    current: list[int] = []
    for tid in row:
        if tid == eos:
            pieces.append((current, True))
            current = []
        else:
            current.append(tid)
    if current:
        pieces.append((current, False))
    return pieces


def cut_text(text: str, rng: np.random.Generator) -> tuple[str, str, str]:
    """Prefix, middle, suffix at two uniform character positions (the middle may be empty)."""
    a, b = sorted(int(x) for x in rng.integers(0, len(text) + 1, size=2))
    return text[:a], text[a:b], text[b:]


def rearrange_piece(
    tokens: list[int], tokenizer: Any, ids: FimIds, spec: FimSpec, rng: np.random.Generator
) -> list[int] | None:
    """One piece as a FIM sample, or ``None`` when it is too short to cut."""
    text = tokenizer.backend_tokenizer.decode(tokens, skip_special_tokens=False)
    if len(text) < spec.min_chars:
        return None
    order = "spm" if rng.random() < spec.spm_share else "psm"
    prefix, middle, suffix = cut_text(text, rng)
    encoded = tokenizer.backend_tokenizer.encode_batch([prefix, middle, suffix],
                                                       add_special_tokens=False)
    pre, mid, suf = (list(e.ids) for e in encoded)
    return layout(pre, mid, suf, order, ids)


def fim_row(
    row: list[int], tokenizer: Any, ids: FimIds, spec: FimSpec, rng: np.random.Generator
) -> tuple[list[int], list[int]]:
    """Rearrange a share of one window's pieces: (input ids, labels), both of length L."""
    length = len(row)
    out: list[int] = []
    pieces = split_pieces(row, ids.eos)
    for i, (tokens, has_eos) in enumerate(pieces):
        tail = [ids.eos] if has_eos else []
        if tokens and rng.random() < spec.rate:
            if i == len(pieces) - 1:
                # room for 3 sentinels + EOS + margin, so the middle keeps its end and EOS
                room = length - len(out) - 4 - spec.margin
                tokens = tokens[: max(room, 0)]
            fim = rearrange_piece(tokens, tokenizer, ids, spec, rng) if tokens else None
            if fim is not None:
                out.extend(fim)  # ends with EOS already
                continue
        out.extend(tokens + tail)
    out = out[:length]
    labels = out + [IGNORE] * (length - len(out))
    return out + [ids.pad] * (length - len(out)), labels


def fim_batch(
    batch: torch.Tensor, tokenizer: Any, ids: FimIds, spec: FimSpec, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) windows -> (input ids (B, L), labels (B, L) with -100 on padding)."""
    rows, labels = [], []
    for row in batch.tolist():
        r, lab = fim_row(row, tokenizer, ids, spec, rng)
        rows.append(r)
        labels.append(lab)
    return torch.tensor(rows, dtype=batch.dtype), torch.tensor(labels, dtype=batch.dtype)
