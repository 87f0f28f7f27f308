"""Infill never feeds either model more positions than its trained context, in every mode,
and by default uses that whole context (less the middle's room) for the drafter's prompt."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from drafter import Drafter
from refiner.model import RefinerModel, tokenizer_config
from refiner.predictor import native_predictor
from refiner.text import TextRefiner
from tests.drafter.conftest import PositionRecorder
from tests.refiner.test_context import Recorder
from workflows.infill import InfillParams, draft_context, draft_many, infill

SMALL = 32
PREFIX = "def add(a, b):\n    return a + b\n\n" * 30 + "def mul(a, b):\n    return "
SUFFIX = "\n\nprint(add(1, 2))\n" * 30


@pytest.fixture()
def small_models(shared_tokenizer) -> tuple[Drafter, PositionRecorder, TextRefiner, Recorder]:
    tok = shared_tokenizer
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=SMALL,
                      initializer_range=0.5, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    drafter = Drafter(LlamaForCausalLM(cfg).eval(), tok, name="small-drafter")
    model = RefinerModel(tokenizer_config("tiny", tok, max_position_embeddings=SMALL))
    refiner = TextRefiner(native_predictor(model), tok)
    return drafter, PositionRecorder(drafter.model), refiner, Recorder(model)


@pytest.mark.parametrize("mode", ["ar", "diffusion", "hybrid"])
def test_every_mode_fits_a_small_context(mode, small_models) -> None:
    drafter, d_rec, refiner, r_rec = small_models
    params = InfillParams(mode=mode, max_tokens=12, steps=4, remask_below=1.0, seed=0)
    res = infill(PREFIX, SUFFIX, params, refiner, drafter)
    assert (res.start, res.end) == (len(PREFIX), len(PREFIX))
    assert res.tokens or res.text == ""
    assert d_rec.most <= SMALL and max(r_rec.lengths, default=0) <= SMALL
    if mode != "diffusion":
        assert d_rec.positions and res.draft is not None
    if mode != "ar":
        assert r_rec.lengths and res.nfe >= 1


def test_a_middle_longer_than_the_context_still_drafts(small_models) -> None:
    drafter, d_rec, refiner, r_rec = small_models
    params = InfillParams(mode="hybrid", max_tokens=200, steps=4, remask_below=1.0, seed=0)
    res = infill(PREFIX, SUFFIX, params, refiner, drafter)
    assert d_rec.most <= SMALL and max(r_rec.lengths) <= SMALL
    assert res.draft is not None
    drafts = draft_many([(PREFIX, SUFFIX, params), ("x = ", "", params)], drafter)
    assert len(drafts) == 2 and d_rec.most <= SMALL


def test_the_default_prompt_uses_the_drafter_context_less_the_middle(tiny_drafter) -> None:
    ctx = tiny_drafter.context_length
    assert ctx == 512
    p, s = draft_context(PREFIX * 4, SUFFIX * 4, InfillParams(max_tokens=8), tiny_drafter)
    assert PREFIX.endswith(p[-40:]) and SUFFIX.startswith(s[:40])  # nearest the hole kept
    n = len(tiny_drafter.fim_prompt(p, s).ids)
    assert ctx - 8 - 8 <= n <= ctx - 8  # all of it but the middle's room (a token or so at cuts)
    p, s = draft_context(PREFIX * 4, SUFFIX * 4, InfillParams(max_tokens=8, context_tokens=100), tiny_drafter)
    overhead = len(tiny_drafter.fim_prompt("", "").ids)
    assert len(tiny_drafter.fim_prompt(p, s).ids) <= 100 + overhead + 2
    # a middle of more than half the context leaves the prompt half of it
    p, s = draft_context(PREFIX * 4, SUFFIX * 4, InfillParams(max_tokens=1000), tiny_drafter)
    assert len(tiny_drafter.fim_prompt(p, s).ids) <= ctx // 2


def test_text_that_encodes_longer_in_the_prompt_is_trimmed_again(tiny_drafter) -> None:
    """Control-token strings in user text count as one token when trimming but are encoded as
    plain text (many tokens) in the prompt: the measured prompt is trimmed until it fits."""
    tok = tiny_drafter.tokenizer
    prefix = "x = 1\n" + "<|endoftext|><|fim_middle|>" * 300
    assert len(tok(prefix, add_special_tokens=False)["input_ids"]) < len(tiny_drafter.encode(prefix)) // 4
    params = InfillParams(max_tokens=8)
    p, s = draft_context(prefix, "", params, tiny_drafter)
    n = len(tiny_drafter.fim_prompt(p, s).ids)
    assert 0 < n <= tiny_drafter.context_length - 8 and prefix.endswith(p) and len(p) > 100
