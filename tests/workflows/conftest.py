"""Tiny drafter + tiny refiner sharing one tokenizer, for pipeline tests."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from drafter import Drafter
from refiner.text import TextRefiner, tiny_text_refiner
from tests.conftest import build_tiny_tokenizer


@pytest.fixture(scope="session")
def shared_tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_drafter(shared_tokenizer) -> Drafter:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(shared_tokenizer), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=512, initializer_range=0.5,
                      eos_token_id=shared_tokenizer.eos_token_id, pad_token_id=shared_tokenizer.pad_token_id)
    return Drafter(LlamaForCausalLM(cfg).eval(), shared_tokenizer, name="tiny-drafter")


@pytest.fixture(scope="session")
def tiny_refiner(shared_tokenizer) -> TextRefiner:
    return tiny_text_refiner(shared_tokenizer, seed=0)
