"""Plain-text encoding, incremental decoding and stop strings, with the tiny tokenizer."""

from __future__ import annotations

from transformers import PreTrainedTokenizerFast

from backends import tokens as T
from drafter.stopping import StopTracker
from drafter.text import IncrementalDecoder, decode, encode_text, leading_special_ids


def _vocab_id(tok: PreTrainedTokenizerFast, token: str) -> int:
    return int(tok.get_vocab()[token])


def test_special_token_strings_in_user_text_stay_text(tokenizer: PreTrainedTokenizerFast) -> None:
    text = f"a{T.FIM_PREFIX}b{T.EOS}"
    ids = encode_text(tokenizer, text)
    specials = {_vocab_id(tokenizer, t) for t in T.SPECIAL_TOKENS}
    assert specials.isdisjoint(ids)
    assert decode(tokenizer, ids) == text
    # whereas the tokenizer's default would have produced control tokens
    assert _vocab_id(tokenizer, T.FIM_PREFIX) in tokenizer.encode(text)


def test_byte_level_tokenizer_adds_no_leading_tokens(tokenizer: PreTrainedTokenizerFast) -> None:
    assert leading_special_ids(tokenizer) == []


def test_incremental_pieces_hold_partial_utf8(tokenizer: PreTrainedTokenizerFast) -> None:
    text = "ab 🙂 é!"
    ids = encode_text(tokenizer, text)
    dec = IncrementalDecoder(tokenizer)
    pieces = [dec.push(t) for t in ids]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)
    assert "" in pieces  # 🙂 is four byte tokens: the first three show nothing
    assert "🙂" in pieces


def test_stop_string_across_tokens_cuts_text_and_drops_tokens(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    ids = encode_text(tokenizer, "the licensee shall not disclose")
    pieces = [decode(tokenizer, [t]) for t in ids]
    assert pieces[:4] == ["the", " l", "icen", "se"]
    # "cens" starts inside "icen" and ends inside "se": the stop spans a token boundary
    tracker = StopTracker(tokenizer, stop=["cens"])
    released = []
    for t in ids:
        released += tracker.push(t, -1.0, 2.0)
        if tracker.stopped:
            break
    assert tracker.stopped and tracker.text == "the li"
    assert [r.text for r in released] == ["the", " l", "i"]  # "icen" cut where the stop starts
    assert [r.id for r in released] == ids[:3]
    assert [r.logprob for r in released] == [-1.0] * 3


def test_tokens_are_held_while_they_may_start_a_stop_string(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    ids = encode_text(tokenizer, "the cat")
    assert [decode(tokenizer, [t]) for t in ids] == ["the", " ca", "t"]
    tracker = StopTracker(tokenizer, stop=[" cab"])
    assert [r.text for r in tracker.push(ids[0], 0.0, 0.0)] == ["the"]
    assert tracker.push(ids[1], 0.0, 0.0) == []  # " ca" could begin " cab"
    out = tracker.push(ids[2], 0.0, 0.0)  # "t": no match, both released
    assert [r.text for r in out] == [" ca", "t"]
    assert not tracker.stopped
    assert tracker.finish() == []
