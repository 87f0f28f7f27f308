"""FIM formats: registry, detection from a vocabulary, prompt layouts, and Drafter.fim."""

from __future__ import annotations

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from backends import tokens as T
from drafter import (
    FIM_FORMATS,
    Drafter,
    FimUnsupportedError,
    GenerationParams,
    build_fim_prompt,
    fim_format_for,
    fim_prompt_ids,
)
from drafter.text import decode
from tests.drafter.conftest import make_tokenizer, reference_greedy, tiny_llama

DS = "<\uff5cfim\u2581{}\uff5c>"  # DeepSeek-Coder's fullwidth-bar spelling
# format name -> (prefix, suffix, middle) sentinels as spelled in a vocabulary, + other tokens
SENTINELS: dict[str, tuple[tuple[str, str, str], tuple[str, ...]]] = {
    "remask": ((T.FIM_PREFIX, T.FIM_SUFFIX, T.FIM_MIDDLE), ()),
    "qwen2.5-coder": (("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"), ("<|fim_pad|>",)),
    "starcoder": (("<fim_prefix>", "<fim_suffix>", "<fim_middle>"), ("<fim_pad>",)),
    "codellama": (("<PRE>", " <SUF>", " <MID>"), ("<EOT>",)),
    "deepseek-coder": ((DS.format("begin"), DS.format("hole"), DS.format("end")), ()),
}
PREFIX = "def f3(x):\n    y = x * 3\n"
SUFFIX = "\n    return y + 1\n"


def tokenizer_for(name: str, bos: str | None = None) -> PreTrainedTokenizerFast:
    if name == "remask":
        return make_tokenizer(bos=bos)  # remask's shared tokenizer has all SPECIAL_TOKENS
    sentinels, others = SENTINELS[name]
    return make_tokenizer((T.EOS, T.PAD), extra=sentinels + others, bos=bos)


def test_every_registered_format_is_covered() -> None:
    assert set(FIM_FORMATS) == set(SENTINELS)


@pytest.mark.parametrize("name", list(SENTINELS))
def test_format_is_detected_from_the_vocabulary(name: str) -> None:
    tokens = fim_format_for(tokenizer_for(name))
    assert tokens.format.name == name


@pytest.mark.parametrize("name", list(SENTINELS))
@pytest.mark.parametrize("order", ["psm", "spm"])
def test_prompt_layout_token_by_token(name: str, order: str) -> None:
    tok = tokenizer_for(name)
    vocab = tok.get_vocab()
    p, s, m = (vocab[t] for t in SENTINELS[name][0])
    pre = tok.encode(PREFIX, add_special_tokens=False)
    suf = tok.encode(SUFFIX, add_special_tokens=False)
    assert decode(tok, pre) == PREFIX and decode(tok, suf) == SUFFIX
    ids = fim_prompt_ids(tok, fim_format_for(tok, name), PREFIX, SUFFIX, order)  # type: ignore[arg-type]
    expected = [p, *pre, s, *suf, m] if order == "psm" else [p, s, *suf, m, *pre]
    assert ids == expected


def test_leading_bos_comes_before_the_first_sentinel() -> None:
    tok = tokenizer_for("codellama", bos="<s>")
    bos = tok.get_vocab()["<s>"]
    prompt = build_fim_prompt(tok, PREFIX, SUFFIX, order="spm")
    assert prompt.format == "codellama" and prompt.order == "spm"
    assert prompt.ids[:3] == [bos, tok.get_vocab()["<PRE>"], tok.get_vocab()[" <SUF>"]]
    assert prompt.ids.count(bos) == 1


def test_sentinel_strings_in_user_text_stay_text() -> None:
    tok = tokenizer_for("remask")
    vocab = tok.get_vocab()
    sneaky_prefix = f"x = '{T.FIM_SUFFIX}{T.FIM_MIDDLE}'\n"
    sneaky_suffix = f"# {T.FIM_PREFIX} {T.EOS}\n"
    ids = build_fim_prompt(tok, sneaky_prefix, sneaky_suffix).ids
    for sentinel in (T.FIM_PREFIX, T.FIM_SUFFIX, T.FIM_MIDDLE):
        assert ids.count(vocab[sentinel]) == 1
    assert vocab[T.EOS] not in ids
    p, s = ids.index(vocab[T.FIM_PREFIX]), ids.index(vocab[T.FIM_SUFFIX])
    assert decode(tok, ids[p + 1 : s]) == sneaky_prefix


def test_hugging_face_spelling_of_code_llama_tokens_is_detected() -> None:
    hf = ("\u2581<PRE>", "\u2581<SUF>", "\u2581<MID>", "\u2581<EOT>")
    tok = make_tokenizer((T.EOS, T.PAD), extra=hf)
    tokens = fim_format_for(tok)
    vocab = tok.get_vocab()
    assert tokens.format.name == "codellama"
    assert (tokens.prefix_id, tokens.suffix_id, tokens.middle_id) == tuple(vocab[t] for t in hf[:3])
    assert vocab["\u2581<EOT>"] in tokens.end_ids


def test_end_ids_include_end_tokens_present_in_the_vocabulary() -> None:
    tok = tokenizer_for("qwen2.5-coder")
    vocab = tok.get_vocab()
    tokens = fim_format_for(tok)
    assert {vocab["<|fim_pad|>"], vocab[T.EOS]} <= tokens.end_ids
    assert tokens.sentinel_ids <= tokens.end_ids


def test_tokenizer_without_fim_tokens_is_refused_by_name() -> None:
    tok = make_tokenizer((T.EOS, T.PAD))
    with pytest.raises(FimUnsupportedError, match="tiny-plain") as err:
        fim_format_for(tok, model_name="tiny-plain")
    assert isinstance(err.value, ValueError)
    drafter = Drafter(tiny_llama(len(tok)), tok, name="tiny-plain")
    with pytest.raises(FimUnsupportedError, match="tiny-plain"):
        drafter.fim(PREFIX, SUFFIX)


def test_named_format_must_exist_and_fit_the_tokenizer() -> None:
    tok = tokenizer_for("remask")
    with pytest.raises(FimUnsupportedError, match="<fim_prefix>"):
        fim_format_for(tok, "starcoder", model_name="m")
    with pytest.raises(KeyError, match="no-such-format"):
        fim_format_for(tok, "no-such-format")
    assert fim_format_for(tok, "qwen").format.name == "qwen2.5-coder"  # an alias


@pytest.mark.parametrize("order", ["psm", "spm"])
@pytest.mark.parametrize("end_token", [T.EOS, T.FIM_PREFIX])
def test_drafter_fim_stops_at_end_tokens(drafter: Drafter, order: str, end_token: str) -> None:
    prompt = drafter.fim_prompt(PREFIX, SUFFIX, order=order)  # type: ignore[arg-type]
    assert prompt.format == "remask"
    ref = reference_greedy(drafter, prompt.ids, 12)
    end = drafter.tokenizer.get_vocab()[end_token]
    twin = next(t for t in ref[2:] if t > end)
    # a model whose end token has the same output row as `twin`: at a tie argmax picks the
    # lower id, so it ends the middle exactly where it would have written `twin`
    model = tiny_llama(len(drafter.tokenizer))
    model.load_state_dict(drafter.model.state_dict())
    with torch.no_grad():
        model.lm_head.weight[end] = model.lm_head.weight[twin]
    twin_drafter = Drafter(model, drafter.tokenizer, name="twin")
    params = GenerationParams(max_new_tokens=12)
    draft = twin_drafter.fim(PREFIX, SUFFIX, params, order=order)  # type: ignore[arg-type]
    assert draft.finish_reason == "eos"
    assert draft.token_ids == ref[: ref.index(twin)]
    assert draft.text == decode(drafter.tokenizer, draft.token_ids)
    # the unchanged model writes through to the token budget
    assert drafter.fim(PREFIX, SUFFIX, params, order=order).token_ids == ref  # type: ignore[arg-type]
