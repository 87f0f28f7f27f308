"""Between text and token ids: encoding user text safely and decoding a growing token stream.

Two rules hold everywhere in the drafter:

* User text is always *plain text*. A user who types ``<|fim_prefix|>`` or ``<|endoftext|>``
  gets those characters, never the control token, so no request can inject a sentinel. Control
  tokens enter a prompt only as ids, placed by code (see :mod:`drafter.fim`).
* Generated text is decoded *incrementally*, one piece per token, and the pieces always join
  to the decoded text: streaming and the final draft show the same characters.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

# marks that tokenizers put on a word-initial token when they insert a "dummy" space before the
# text (SentencePiece's "▁", byte-level BPE with add_prefix_space's "Ġ")
_DUMMY_PREFIX_MARKS = ("\u2581", "\u0120")
# encoded before mid-document text and cut off again, so the dummy space goes with the anchor
# and not with the text (the idea behind Code Llama's reference infilling encoder)
_ANCHOR = "\n"
# a replacement character at the end of a decode means the last token ended inside a UTF-8
# sequence: wait for the token that completes it
_INCOMPLETE = "\ufffd"


def decode(tokenizer: Any, ids: Sequence[int]) -> str:
    """Decode ids exactly: special tokens kept as their strings, no whitespace clean-up."""
    if not ids:
        return ""
    text: str = tokenizer.decode(
        list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
    )
    return text


def control_ids(tokenizer: Any) -> set[int]:
    """Ids of every special token: the declared ones and added tokens flagged special."""
    ids = {int(i) for i in getattr(tokenizer, "all_special_ids", [])}
    for idx, tok in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(tok, "special", False):
            ids.add(int(idx))
    return ids


def leading_special_ids(tokenizer: Any) -> list[int]:
    """The ids a tokenizer puts before every text by default (BOS for Llama-family models).

    Prompts built from text start with these, so the model sees the start of a document the way
    it saw it in training; an empty list for tokenizers that add nothing (GPT-2, Qwen, ...).
    """
    plain = tokenizer.encode("a", add_special_tokens=False)
    full = tokenizer.encode("a", add_special_tokens=True)
    for i in range(len(full) - len(plain) + 1):
        if full[i : i + len(plain)] == plain:
            return [int(t) for t in full[:i]]
    return []


def adds_dummy_prefix(tokenizer: Any) -> bool:
    """Whether encoding "a" yields a word-initial token, i.e. the tokenizer inserts a space."""
    ids = tokenizer.encode("a", add_special_tokens=False)
    if not ids:
        return False
    first = tokenizer.convert_ids_to_tokens(ids[:1])[0]
    return isinstance(first, str) and first.startswith(_DUMMY_PREFIX_MARKS)


def encode_text(
    tokenizer: Any,
    text: str,
    *,
    at_start: bool = True,
    protected_ids: Collection[int] = (),
) -> list[int]:
    """Encode ``text`` as plain text: no BOS/EOS added, special-token strings stay characters.

    at_start: ``False`` for text that continues a document (a FIM suffix): the dummy space that
        SentencePiece-style tokenizers insert before a text is left out.
    protected_ids: ids that must never come out of user text (a FIM format's sentinels); if a
        tokenizer still produces one (a sentinel registered as a non-special added token), the
        text is re-encoded bypassing added tokens altogether.
    """
    if not text:
        return []
    ids = _encode_plain(tokenizer, text, set(protected_ids))
    if at_start or not adds_dummy_prefix(tokenizer):
        return ids
    anchor = _encode_plain(tokenizer, _ANCHOR, set(protected_ids))
    anchored = _encode_plain(tokenizer, _ANCHOR + text, set(protected_ids))
    if anchored[: len(anchor)] == anchor:
        return anchored[len(anchor) :]
    return ids  # the anchor merged with the text: no clean cut, keep the ordinary encoding


def _encode_plain(tokenizer: Any, text: str, protected: set[int]) -> list[int]:
    ids = [
        int(t) for t in tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)
    ]
    forbidden = control_ids(tokenizer) | protected
    if forbidden.isdisjoint(ids):
        return ids
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(
            "the tokenizer turns plain text into control tokens and has no fast backend to "
            "encode it without them"
        )
    # run the backend's pipeline without its added-token matcher: normalise, pre-tokenise, BPE
    if backend.normalizer is not None:
        text = backend.normalizer.normalize_str(text)
    pieces = [text]
    if backend.pre_tokenizer is not None:
        pieces = [p for p, _ in backend.pre_tokenizer.pre_tokenize_str(text)]
    return [int(tok.id) for p in pieces for tok in backend.model.tokenize(p)]


class IncrementalDecoder:
    """Decode a token stream one token at a time into text pieces that join up exactly.

    Each new token is decoded together with the tokens of the previous piece, and the new piece
    is the difference. The context matters for tokenizers whose decoders treat the first token
    specially (SentencePiece drops a leading space), and a token that ends inside a multi-byte
    UTF-8 character yields ``""`` until a later token completes the character.
    """

    def __init__(self, tokenizer: Any, context_ids: Sequence[int] = ()) -> None:
        """context_ids: the tokens just before the stream (the end of the prompt)."""
        self._tokenizer = tokenizer
        self._ids: list[int] = [int(t) for t in context_ids]
        self._piece_start = 0  # start of the tokens whose text was emitted last
        self._emitted = len(self._ids)  # tokens before this index have been emitted as text
        self._emitted_text = decode(tokenizer, self._ids)  # text of ids[_piece_start:_emitted]

    @property
    def pending(self) -> int:
        """Tokens received whose text is held back (an incomplete UTF-8 character)."""
        return len(self._ids) - self._emitted

    def push(self, token_id: int) -> str:
        """Add one token; return the text it completes (possibly ``""``)."""
        self._ids.append(int(token_id))
        return self._take(final=False)

    def flush(self) -> str:
        """Text of tokens still held back, incomplete characters shown as U+FFFD."""
        return self._take(final=True) if self.pending else ""

    def _take(self, final: bool) -> str:
        full = decode(self._tokenizer, self._ids[self._piece_start :])
        if full.endswith(_INCOMPLETE) and not final:
            return ""
        if full.startswith(self._emitted_text):
            piece = full[len(self._emitted_text) :]
        else:  # the decoder rewrote the context: fall back to the new tokens alone
            piece = decode(self._tokenizer, self._ids[self._emitted :])
        self._piece_start, self._emitted = self._emitted, len(self._ids)
        self._emitted_text = decode(self._tokenizer, self._ids[self._piece_start :])
        return piece
