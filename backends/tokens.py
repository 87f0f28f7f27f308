"""Named special tokens of remask's shared tokenizer, and lookup of their ids.

The drafter and the refiner share one byte-level BPE tokenizer, so a draft's tokens are the
refiner's tokens. Every special token is named here; code asks for ids by name through
:func:`special_ids`, never by a number written inline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PAD = "<|pad|>"
EOS = "<|endoftext|>"
MASK = "<|mask|>"
FILLER = "<|filler|>"  # predicted for surplus span positions; dropped after denoising
FIM_PREFIX = "<|fim_prefix|>"
FIM_SUFFIX = "<|fim_suffix|>"
FIM_MIDDLE = "<|fim_middle|>"

# order fixes their ids in a freshly trained tokenizer: 0..6
SPECIAL_TOKENS: tuple[str, ...] = (PAD, EOS, MASK, FILLER, FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE)


@dataclass(frozen=True)
class SpecialIds:
    """Ids of the special tokens a mask predictor needs; ``None`` where a model has none."""

    mask: int
    pad: int | None = None
    eos: int | None = None
    filler: int | None = None


def special_ids(tokenizer: Any, config: Any | None = None) -> SpecialIds:
    """Resolve special ids from a tokenizer and (optionally) a model config.

    The mask id comes from the config's ``mask_token_id`` when present, else the tokenizer's
    ``mask_token_id``, else the token ``<|mask|>``; a model with none of these is an error.
    """
    mask = getattr(config, "mask_token_id", None) if config is not None else None
    if mask is None and tokenizer is not None:
        mask = getattr(tokenizer, "mask_token_id", None)
    if mask is None and tokenizer is not None:
        mask = _token_id(tokenizer, MASK)
    if mask is None:
        raise ValueError(
            "no mask token: neither the config's mask_token_id, the tokenizer's mask token "
            f"nor a {MASK!r} token exists"
        )

    def pick(attr: str, name: str) -> int | None:
        for src in (config, tokenizer):
            value = getattr(src, attr, None) if src is not None else None
            if isinstance(value, int):
                return value
        return _token_id(tokenizer, name) if tokenizer is not None else None

    return SpecialIds(
        mask=int(mask),
        pad=pick("pad_token_id", PAD),
        eos=pick("eos_token_id", EOS),
        filler=pick("filler_token_id", FILLER),
    )


def _token_id(tokenizer: Any, token: str) -> int | None:
    token_id = tokenizer.get_vocab().get(token)
    return None if token_id is None else int(token_id)
