"""Fill-in-the-middle (FIM) prompt formats: a registry, detection from a tokenizer, layouts.

A FIM model is trained on documents cut into prefix, middle and suffix and rearranged with
three sentinel tokens, so that it can generate the middle after seeing both sides. Model
families differ only in the sentinel strings and their end tokens; the two orders are

* PSM (prefix-suffix-middle): ``<P> prefix <S> suffix <M>`` then the middle;
* SPM (suffix-prefix-middle): ``<P> <S> suffix <M> prefix`` then the middle: the SPM variant
  of Bavarian et al. (2022) that Code Llama uses. The prefix sits right before the middle, so
  the middle continues it token for token. Not every family was trained on SPM (DeepSeek-Coder
  was trained on PSM only); the layout is available for all, PSM is the default.

Prompts are assembled from token ids: sentinels are placed as ids and the user's text is
encoded as plain text (see :func:`drafter.text.encode_text`), so a prefix that contains the
string ``<|fim_prefix|>`` stays text and can never open a second hole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from backends.tokens import EOS, FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, MASK
from drafter.text import encode_text, leading_special_ids

FimOrder = Literal["psm", "spm"]
FIM_ORDERS: tuple[FimOrder, ...] = ("psm", "spm")


class FimUnsupportedError(ValueError):
    """The tokenizer has no fill-in-the-middle tokens (or not those of the requested format)."""


@dataclass(frozen=True)
class FimFormat:
    """The sentinel tokens of one model family. Each role lists the spellings the family's
    vocabularies use, the first one found wins (Code Llama's tokens carry a SentencePiece "▁"
    in Hugging Face vocabularies and a plain space in the reference code)."""

    name: str
    prefix: tuple[str, ...]
    suffix: tuple[str, ...]
    middle: tuple[str, ...]
    end: tuple[str, ...] = ()  # tokens that end the middle, besides the tokenizer's EOS
    markers: tuple[str, ...] = ()  # must also be in the vocabulary: tells look-alikes apart
    prefix_at_start: bool = False  # Code Llama encodes the prefix as a text start ("<PRE> {p}")


@dataclass(frozen=True)
class FimTokens:
    """A format bound to one tokenizer: the ids of its sentinels and end tokens."""

    format: FimFormat
    prefix_id: int
    suffix_id: int
    middle_id: int
    end_ids: frozenset[int]  # the format's end tokens and its sentinels: any of them ends a middle

    @property
    def sentinel_ids(self) -> frozenset[int]:
        return frozenset((self.prefix_id, self.suffix_id, self.middle_id))


@dataclass(frozen=True)
class FimPrompt:
    """A ready FIM prompt: ids to feed the model, and ids that end the generated middle."""

    ids: list[int]
    stop_ids: frozenset[int]
    format: str
    order: FimOrder


FIM_FORMATS: dict[str, FimFormat] = {}
_ALIASES: dict[str, str] = {}


def register_fim_format(fmt: FimFormat, aliases: tuple[str, ...] = ()) -> FimFormat:
    """Add a format to the registry. Detection tries formats in registration order."""
    FIM_FORMATS[fmt.name] = fmt
    for alias in aliases:
        _ALIASES[alias] = fmt.name
    return fmt


# remask's own shared tokenizer. Same strings as Qwen2.5-Coder; the <|mask|> marker tells them apart
REMASK = register_fim_format(
    FimFormat("remask", (FIM_PREFIX,), (FIM_SUFFIX,), (FIM_MIDDLE,), end=(EOS,), markers=(MASK,))
)
QWEN_CODER = register_fim_format(
    FimFormat(
        "qwen2.5-coder",
        ("<|fim_prefix|>",),
        ("<|fim_suffix|>",),
        ("<|fim_middle|>",),
        # repository-level tokens: a model that writes one has left the hole
        end=("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>"),
    ),
    aliases=("qwen", "qwen-coder"),
)
STARCODER = register_fim_format(
    FimFormat(
        "starcoder",
        ("<fim_prefix>",),
        ("<fim_suffix>",),
        ("<fim_middle>",),
        end=("<|endoftext|>", "<fim_pad>", "<file_sep>"),
    ),
    aliases=("starcoder2", "santacoder"),
)
CODE_LLAMA = register_fim_format(
    FimFormat(
        "codellama",
        ("<PRE>", "\u2581<PRE>"),
        (" <SUF>", "\u2581<SUF>", "<SUF>"),
        (" <MID>", "\u2581<MID>", "<MID>"),
        end=("<EOT>", " <EOT>", "\u2581<EOT>"),
        prefix_at_start=True,
    ),
    aliases=("code-llama",),
)
# DeepSeek-Coder spells its sentinels with U+FF5C (fullwidth bar) and U+2581 (lower block)
DEEPSEEK_CODER = register_fim_format(
    FimFormat(
        "deepseek-coder",
        ("<\uff5cfim\u2581begin\uff5c>",),
        ("<\uff5cfim\u2581hole\uff5c>",),
        ("<\uff5cfim\u2581end\uff5c>",),
        end=("<\uff5cend\u2581of\u2581sentence\uff5c>", "<|EOT|>"),
    ),
    aliases=("deepseek",),
)


def fim_format_for(
    tokenizer: Any, name: str | None = None, *, model_name: str | None = None
) -> FimTokens:
    """Pick a FIM format for ``tokenizer``: the one called ``name``, else the first registered
    format whose sentinel tokens (and markers) are all in the tokenizer's vocabulary.

    Raises ``KeyError`` for an unknown name and :class:`FimUnsupportedError` (a ``ValueError``)
    naming the model when the tokenizer lacks the tokens.
    """
    who = model_name or getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__
    vocab: dict[str, int] = tokenizer.get_vocab()
    if name is not None:
        key = _ALIASES.get(name, name)
        if key not in FIM_FORMATS:
            raise KeyError(f"unknown FIM format {name!r}; known: {sorted(FIM_FORMATS)}")
        fmt = FIM_FORMATS[key]
        bound = _bind(fmt, vocab)
        if bound is None:
            raise FimUnsupportedError(
                f"model {who!r} does not support FIM format {fmt.name!r}: its tokenizer lacks "
                f"the tokens {_missing(fmt, vocab)}"
            )
        return bound
    for fmt in FIM_FORMATS.values():
        if all(m in vocab for m in fmt.markers) and (bound := _bind(fmt, vocab)):
            return bound
    raise FimUnsupportedError(
        f"model {who!r} has no fill-in-the-middle tokens: its tokenizer matches none of the "
        f"known FIM formats {list(FIM_FORMATS)}"
    )


def fim_prompt_ids(
    tokenizer: Any,
    tokens: FimTokens,
    prefix: str,
    suffix: str,
    order: FimOrder = "psm",
    leading_ids: list[int] | None = None,
) -> list[int]:
    """Token ids of a FIM prompt; the model's next tokens are the middle.

    leading_ids: ids before the first sentinel; default: what the tokenizer puts before any
        text (BOS for Code Llama and DeepSeek-Coder, nothing for StarCoder and Qwen).
    """
    if order not in FIM_ORDERS:
        raise ValueError(f"unknown FIM order {order!r}; known: {FIM_ORDERS}")
    lead = leading_special_ids(tokenizer) if leading_ids is None else leading_ids
    protected = tokens.sentinel_ids | tokens.end_ids
    pre = encode_text(
        tokenizer, prefix, at_start=tokens.format.prefix_at_start, protected_ids=protected
    )
    suf = encode_text(tokenizer, suffix, at_start=False, protected_ids=protected)
    p, s, m = tokens.prefix_id, tokens.suffix_id, tokens.middle_id
    if order == "psm":
        return [*lead, p, *pre, s, *suf, m]
    return [*lead, p, s, *suf, m, *pre]


def build_fim_prompt(
    tokenizer: Any,
    prefix: str,
    suffix: str,
    *,
    format: str | FimTokens | None = None,
    order: FimOrder = "psm",
    model_name: str | None = None,
) -> FimPrompt:
    """Pick the format (by name, or detect it) and lay out the prompt in one call."""
    tokens = (
        format
        if isinstance(format, FimTokens)
        else fim_format_for(tokenizer, format, model_name=model_name)
    )
    ids = fim_prompt_ids(tokenizer, tokens, prefix, suffix, order)
    eos = getattr(tokenizer, "eos_token_id", None)
    stop = tokens.end_ids | ({int(eos)} if isinstance(eos, int) else set())
    return FimPrompt(ids=ids, stop_ids=frozenset(stop), format=tokens.format.name, order=order)


def _bind(fmt: FimFormat, vocab: dict[str, int]) -> FimTokens | None:
    ids = [_first_in(vocab, spellings) for spellings in (fmt.prefix, fmt.suffix, fmt.middle)]
    if any(i is None for i in ids):
        return None
    p, s, m = (int(i) for i in ids if i is not None)
    end = {vocab[t] for t in fmt.end if t in vocab}
    return FimTokens(fmt, p, s, m, end_ids=frozenset(end | {p, s, m}))


def _first_in(vocab: dict[str, int], spellings: tuple[str, ...]) -> int | None:
    for spelling in spellings:
        if spelling in vocab:
            return vocab[spelling]
    return None


def _missing(fmt: FimFormat, vocab: dict[str, int]) -> list[str]:
    roles = (fmt.prefix, fmt.suffix, fmt.middle)
    return [spellings[0] for spellings in roles if _first_in(vocab, spellings) is None]
