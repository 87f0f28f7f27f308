"""Fixtures for the ONNX backend tests: tiny models saved to disk, exported once per module.

The tokenizer is the project's shared one (``models/tokenizer``) so the drafter is a real
``Drafter`` with real text handling; the models are tiny and random, which is all a parity
test needs. Everything skips cleanly where onnxruntime is not installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("onnxruntime")

TOKENIZER = Path(__file__).resolve().parents[2] / "models" / "tokenizer"

# tiny models: starting threads costs more than the arithmetic, and the cores are shared
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    if not (TOKENIZER / "tokenizer.json").exists():
        pytest.skip("the shared tokenizer (models/tokenizer) is not there")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TOKENIZER)


def save_tiny_refiner(root: Path, seed: int = 0) -> Path:
    """A random 'tiny' refiner (64-token vocabulary, ids from the preset) in ``root``."""
    from refiner.model import RefinerModel, refiner_config

    torch.manual_seed(seed)
    RefinerModel(refiner_config("tiny")).save_pretrained(root)
    return root


def save_tiny_drafter(root: Path, tokenizer: Any, seed: int = 0) -> Path:
    """A random 2-layer Llama (grouped-query attention) over the shared tokenizer in ``root``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        initializer_range=0.3,  # decisive logits: greedy drafts vary from token to token
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def refiner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_refiner(tmp_path_factory.mktemp("tiny-refiner"))


@pytest.fixture(scope="session")
def drafter_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    return save_tiny_drafter(tmp_path_factory.mktemp("tiny-drafter"), tokenizer)
