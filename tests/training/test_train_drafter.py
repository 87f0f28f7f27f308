"""Fill-in-the-middle layouts, drafter presets and a short drafter training run."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from train_fakes import VOCAB_SIZE, toy_corpus, toy_tokenizer  # noqa: F401  (fixtures)
from transformers import AutoModelForCausalLM

from training.fim import IGNORE, FimIds, FimSpec, fim_row, layout, split_pieces
from training.loop import LoopConfig
from training.tokenizer import load_tokenizer
from training.train_drafter import DRAFTER_PRESETS, drafter_config, middle_labels, train_drafter

IDS = FimIds(prefix=4, suffix=5, middle=6, eos=1, pad=0)
TEXT = "def area(width, height):\n    return width * height\n"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tok(toy_tokenizer: Path) -> Any:  # noqa: F811
    return load_tokenizer(toy_tokenizer)


def test_layouts() -> None:
    pre, mid, suf = [10, 11], [20], [30, 31]
    assert layout(pre, mid, suf, "psm", IDS) == [4, 10, 11, 5, 30, 31, 6, 20, 1]
    assert layout(pre, mid, suf, "spm", IDS) == [4, 5, 30, 31, 6, 10, 11, 20, 1]
    with pytest.raises(ValueError, match="unknown FIM order"):
        layout(pre, mid, suf, "msp", IDS)


def test_split_pieces() -> None:
    assert split_pieces([7, 8, 1, 9, 1, 3], eos=1) == [([7, 8], True), ([9], True), ([3], False)]


def parts(row: list[int], tok: Any, ids: FimIds) -> tuple[str, str, str, str]:
    """(order, prefix, middle, suffix) texts of a row holding one rearranged piece."""
    dec = tok.backend_tokenizer.decode
    p, s, m = row.index(ids.prefix), row.index(ids.suffix), row.index(ids.middle)
    end = row.index(ids.eos, m)
    if s == p + 1:  # SPM: <P> <S> suffix <M> prefix+middle <EOS>
        return "spm", "", dec(row[m + 1 : end]), dec(row[s + 1 : m])
    return "psm", dec(row[p + 1 : s]), dec(row[m + 1 : end]), dec(row[s + 1 : m])


@pytest.mark.parametrize("spm_share", [0.0, 1.0])
def test_fim_row_cuts_text_and_keeps_the_length(tok: Any, spm_share: float) -> None:
    ids = FimIds.from_tokenizer(tok)
    body = tok(TEXT * 3, add_special_tokens=False)["input_ids"]
    length = len(body) + 10
    row = body + [ids.eos] + [ids.eos] * 9  # one document, then empty pieces
    spec = FimSpec(rate=1.0, spm_share=spm_share)
    for seed in range(5):
        out, labels = fim_row(row, tok, ids, spec, np.random.default_rng(seed))
        assert len(out) == len(labels) == length
        assert out[0] == ids.prefix and out.count(ids.middle) == 1
        order, prefix, middle, suffix = parts(out, tok, ids)
        assert order == ("spm" if spm_share else "psm")
        if order == "psm":
            assert prefix + middle + suffix == TEXT * 3
        else:  # the middle continues the prefix: together they precede the suffix
            assert middle + suffix == TEXT * 3
        padded = [i for i, t in enumerate(labels) if t == IGNORE]
        assert all(out[i] == ids.pad for i in padded)
        assert [t for t, lab in zip(out, labels, strict=True) if lab != IGNORE] == out[
            : length - len(padded)
        ]


def test_each_document_piece_is_rearranged_on_its_own(tok: Any) -> None:
    ids = FimIds.from_tokenizer(tok)
    a = tok("first document text", add_special_tokens=False)["input_ids"]
    b = tok("second document, longer text here", add_special_tokens=False)["input_ids"]
    row = [*a, ids.eos, *b]
    out, _ = fim_row(row, tok, ids, FimSpec(rate=1.0, spm_share=0.0), np.random.default_rng(0))
    assert out.count(ids.prefix) == 2 and out.count(ids.middle) == 2
    first = out[: out.index(ids.eos) + 1]
    _, prefix, middle, suffix = parts(first, tok, ids)
    assert prefix + middle + suffix == "first document text"
    plain, labels = fim_row(row, tok, ids, FimSpec(rate=0.0), np.random.default_rng(0))
    assert plain == row and labels == row


def test_about_half_the_pieces_are_rearranged(tok: Any) -> None:
    ids = FimIds.from_tokenizer(tok)
    row = tok(TEXT, add_special_tokens=False)["input_ids"]
    rng = np.random.default_rng(0)
    rearranged = sum(fim_row(row, tok, ids, FimSpec(), rng)[0][0] == ids.prefix
                     for _ in range(400))
    assert 160 < rearranged < 240


def test_middle_labels() -> None:
    row = torch.tensor([[4, 10, 5, 30, 6, 20, 21, 1, 9, 9]])
    assert middle_labels(row, IDS).tolist() == [[-100] * 5 + [20, 21, 1] + [-100] * 2]


def test_presets(tok: Any) -> None:
    cfg = drafter_config("default", tok)
    assert cfg.tie_word_embeddings and cfg.vocab_size == VOCAB_SIZE
    assert (cfg.hidden_size, cfg.num_hidden_layers) == (256, 6)
    assert cfg.eos_token_id == tok.convert_tokens_to_ids("<|endoftext|>")
    with pytest.raises(KeyError, match="unknown drafter preset 'huge'"):
        drafter_config("huge", tok)


def test_gpu_preset_fits_20_mb_in_bf16_and_matches_the_refiner() -> None:
    from refiner.model import PRESETS, RefinerModel, refiner_config
    from training.throughput import build

    drafter = build("drafter", "gpu", {})
    refiner = RefinerModel(refiner_config("gpu", mask_token_id=2, filler_token_id=3))
    params = [sum(p.numel() for p in m.parameters()) for m in (drafter, refiner)]
    assert params[0] == params[1] and 8_000_000 < params[0] <= 9_000_000
    assert params[0] * 2 < 20_000_000  # bytes in bfloat16
    shape = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    assert [getattr(DRAFTER_PRESETS["gpu"], k) for k in shape] == [
        getattr(PRESETS["gpu"], k) for k in shape] == [256, 688, 8, 4]


@pytest.mark.slow
def test_drafter_training_reduces_loss(
    toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path  # noqa: F811
) -> None:
    out = tmp_path / "drafter"
    cfg = LoopConfig(out_dir=out, max_steps=30, batch_size=8, seq_len=32, lr=5e-3,
                     warmup_steps=3, eval_every=15, eval_batches=1, log_every=5,
                     progress=False, threads=1)
    info = train_drafter(toy_corpus, toy_tokenizer, "tiny", cfg).info
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < log[0]["loss"] - 0.5
    assert log[-1]["held_out_loss"] < log[2]["held_out_loss"] + 0.1  # step 30 vs step 15
    assert info["final_held_out_loss"] < math.log(VOCAB_SIZE) - 1.0
    assert "held_out_fim_loss" in log[-1] and info["fim"]["rate"] == 0.5
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
