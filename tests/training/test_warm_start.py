"""A refiner warm-started from a drafter: the same function under a causal mask, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_fakes import renamed_tokenizer, toy_corpus, toy_tokenizer  # noqa: F401  (fixtures)
from transformers import LlamaForCausalLM

from backends.tokens import special_ids
from refiner.model import RefinerModel, rotary_tables
from training.data import copy_tokenizer
from training.loop import save_model
from training.tokenizer import load_tokenizer
from training.train_drafter import drafter_config
from training.warm_start import init_record, refiner_from_drafter

CONTEXT = 48


def save_drafter(directory: Path, tokenizer_dir: Path, seed: int = 0, **overrides: object) -> None:
    """A tiny drafter with large random weights (norms too), saved in bf16 shards.

    Large weights make every layer matter: at the default init (std 0.02) the logits are
    nearly uniform and a wrong mapping could still pass a tolerance check.
    """
    torch.manual_seed(seed)
    tok = load_tokenizer(tokenizer_dir)
    model = LlamaForCausalLM(drafter_config("tiny", tok, max_position_embeddings=CONTEXT,
                                            **overrides))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 1.0) + (p.dim() == 1))
    save_model(model, directory, "bfloat16", "20KB")
    copy_tokenizer(tokenizer_dir, directory)


def causal_logits(model: RefinerModel, ids: torch.Tensor) -> torch.Tensor:
    """The refiner's layers run with an explicit causal mask: (B, L) -> (B, L, V)."""
    b, t = ids.shape
    x = model.embed_tokens(ids)
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    cos, sin = rotary_tables(torch.arange(t).expand(b, t), head_dim, model.config.rope_theta,
                             x.dtype)
    causal = torch.ones(t, t, dtype=torch.bool).tril()[None, None]  # (1, 1, L, L)
    for layer in model.layers:
        x = layer(x, cos, sin, causal)
    return model.lm_head(model.norm(x)).float()


@pytest.fixture
def drafter_dir(toy_tokenizer: Path, tmp_path: Path) -> Path:  # noqa: F811
    root = tmp_path / "drafter"
    save_drafter(root, toy_tokenizer)
    return root


@torch.no_grad()
def test_converted_drafter_is_the_same_function_under_a_causal_mask(
    drafter_dir: Path, toy_tokenizer: Path  # noqa: F811
) -> None:
    assert (drafter_dir / "model.safetensors.index.json").is_file()  # sharded, bf16
    llama = LlamaForCausalLM.from_pretrained(drafter_dir, dtype=torch.float32).eval()
    refiner = refiner_from_drafter(drafter_dir, toy_tokenizer).eval()
    assert next(refiner.parameters()).dtype == torch.float32
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(7, llama.config.vocab_size, (2, 40), generator=gen)
    want = llama(input_ids=ids).logits
    got = causal_logits(refiner, ids)
    assert want.std() > 1.0  # far from uniform: every weight shapes the output
    torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)
    # without the mask (how the refiner runs) every position sees the later tokens too
    both_ways = refiner(input_ids=ids).logits
    assert (both_ways - want).abs().amax(-1).min() > 0.1


def test_converted_config_ids_and_ties(drafter_dir: Path, toy_tokenizer: Path) -> None:  # noqa: F811
    refiner = refiner_from_drafter(drafter_dir, toy_tokenizer, max_position_embeddings=32)
    cfg = refiner.config
    ids = special_ids(load_tokenizer(toy_tokenizer))
    assert (cfg.mask_token_id, cfg.filler_token_id, cfg.pad_token_id, cfg.eos_token_id) == (
        ids.mask, ids.filler, ids.pad, ids.eos)
    assert (cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers,
            cfg.num_attention_heads) == (32, 64, 2, 4)
    assert cfg.max_position_embeddings == 32  # the new training context, not the drafter's
    assert refiner.lm_head.weight.data_ptr() == refiner.embed_tokens.weight.data_ptr()
    with pytest.raises(ValueError, match="differ from it in \\['hidden_size'\\]"):
        refiner_from_drafter(drafter_dir, toy_tokenizer, hidden_size=64)


def test_refusals_name_the_cause(
    drafter_dir: Path, toy_tokenizer: Path, tmp_path: Path  # noqa: F811
) -> None:
    with pytest.raises(FileNotFoundError, match="no drafter"):
        refiner_from_drafter(tmp_path / "nowhere", toy_tokenizer)
    other_tok = renamed_tokenizer(toy_tokenizer, tmp_path / "other-tokenizer")
    with pytest.raises(ValueError, match="another tokenizer"):
        refiner_from_drafter(drafter_dir, other_tok)

    gqa = tmp_path / "gqa"
    save_drafter(gqa, toy_tokenizer, num_key_value_heads=2)
    with pytest.raises(ValueError, match="num_key_value_heads \\(2\\) != num_attention_heads"):
        refiner_from_drafter(gqa, toy_tokenizer)
    head = tmp_path / "head"
    save_drafter(head, toy_tokenizer, head_dim=16)
    with pytest.raises(ValueError, match="head_dim 16"):
        refiner_from_drafter(head, toy_tokenizer)
    theta = tmp_path / "theta"
    save_drafter(theta, toy_tokenizer)
    with pytest.raises(ValueError, match="rope_theta"):
        refiner_from_drafter(theta, toy_tokenizer, rope_theta=500000.0)

    refiner_dir = tmp_path / "refiner"
    refiner_from_drafter(drafter_dir, toy_tokenizer).save_pretrained(refiner_dir)
    copy_tokenizer(toy_tokenizer, refiner_dir)
    with pytest.raises(ValueError, match="'remask_refiner' model, not a Llama"):
        refiner_from_drafter(refiner_dir, toy_tokenizer)


def test_init_record_reads_the_drafter_run(drafter_dir: Path) -> None:
    assert init_record(drafter_dir) == {
        "path": str(drafter_dir), "task": None, "preset": None, "corpus_sha256": None,
        "tokenizer_sha256": None, "steps": None, "tokens_seen": None}
    (drafter_dir / "training.json").write_text(json.dumps({
        "task": "drafter", "preset": "tiny", "steps": 7, "tokens_seen": 700,
        "data": {"corpus_sha256": "c" * 64, "tokenizer_sha256": "t" * 64}}))
    record = init_record(drafter_dir)
    assert record["steps"] == 7 and record["corpus_sha256"] == "c" * 64
    assert record["tokenizer_sha256"] == "t" * 64 and record["preset"] == "tiny"
