"""Continued pre-training: a drafter run that starts from an earlier drafter's weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from train_fakes import renamed_tokenizer, toy_corpus, toy_tokenizer  # noqa: F401  (fixtures)
from transformers import LlamaForCausalLM

from training.loop import LoopConfig
from training.train_drafter import train_drafter


def loop(out: Path, steps: int, seq_len: int = 32) -> LoopConfig:
    return LoopConfig(out_dir=out, max_steps=steps, batch_size=4, seq_len=seq_len, lr=3e-3,
                      warmup_steps=2, eval_every=steps, eval_batches=1, log_every=steps,
                      progress=False, threads=1)


@pytest.mark.slow
def test_a_run_continues_from_earlier_weights_at_a_longer_context(
    toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path  # noqa: F811
) -> None:
    first = tmp_path / "first"
    before = train_drafter(toy_corpus, toy_tokenizer, "tiny", loop(first, 20)).info
    second = tmp_path / "second"
    info = train_drafter(toy_corpus, toy_tokenizer, "tiny", loop(second, 2, seq_len=64),
                         init_from=first).info
    assert info["init_from"]["path"] == str(first) and info["init_from"]["steps"] == 20
    assert info["init_from"]["corpus_sha256"] == before["data"]["corpus_sha256"]
    # two more steps from trained weights beat twenty from random ones' start, and the
    # first held-out figure of the new run is already far below a fresh model's
    fresh = train_drafter(toy_corpus, toy_tokenizer, "tiny",
                          loop(tmp_path / "fresh", 2, seq_len=64)).info
    assert info["final_held_out_loss"] < fresh["final_held_out_loss"] - 0.5
    assert info["final_held_out_loss"] < before["final_held_out_loss"] + 0.5
    config = json.loads((second / "config.json").read_text())
    assert config["max_position_embeddings"] == 64  # the new run's context


def test_init_from_refuses_another_tokenizer_or_shape(
    toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path  # noqa: F811
) -> None:
    first = tmp_path / "first"
    train_drafter(toy_corpus, toy_tokenizer, "tiny", loop(first, 1))
    with pytest.raises(FileNotFoundError, match="no drafter"):
        train_drafter(toy_corpus, toy_tokenizer, "tiny", loop(tmp_path / "a", 1),
                      init_from=tmp_path / "nowhere")
    other_tok = renamed_tokenizer(toy_tokenizer, tmp_path / "other-tokenizer")
    with pytest.raises(ValueError, match="another tokenizer"):
        train_drafter(toy_corpus, other_tok, "tiny", loop(tmp_path / "b", 1), init_from=first)
    wider = tmp_path / "wider"
    model = LlamaForCausalLM.from_pretrained(first, dtype=torch.float32)
    model.config.num_hidden_layers += 1
    LlamaForCausalLM(model.config).save_pretrained(wider)
    shutil.copyfile(first / "tokenizer.json", wider / "tokenizer.json")
    with pytest.raises(ValueError, match="num_hidden_layers"):
        train_drafter(toy_corpus, toy_tokenizer, "tiny", loop(tmp_path / "c", 1), init_from=wider)
