"""Whole held-out packages are evaluated beside the held-out files, under held_out_pkg_*."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from train_fakes import toy_corpus, toy_tokenizer  # noqa: F401  (fixtures)

from training.corpus import HELD_OUT_PACKAGES, iter_documents
from training.data import load_training_data
from training.loop import LoopConfig
from training.tokenizer import TokenizerTrainConfig, train_tokenizer
from training.train_drafter import train_drafter
from training.train_refiner import train_refiner


@pytest.fixture(scope="module")
def package_tokenizer(fake_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pkgtok") / "tokenizer"
    train_tokenizer(fake_corpus, out, TokenizerTrainConfig(vocab_size=300))
    return out


def loop(out: Path) -> LoopConfig:
    return LoopConfig(out_dir=out, max_steps=4, batch_size=2, seq_len=16, warmup_steps=1,
                      eval_every=2, eval_batches=2, log_every=2, progress=False, threads=1)


def test_the_package_split_gives_its_own_fixed_batches(
    fake_corpus: Path, package_tokenizer: Path
) -> None:
    assert any(d.package == "click" for d in iter_documents(fake_corpus, HELD_OUT_PACKAGES))
    data = load_training_data(fake_corpus, package_tokenizer, 16, 2, 0, 3)
    assert len(data.held_out_packages) == 3
    assert all(b.shape == (2, 16) for b in data.held_out_packages)
    assert data.info["held_out_packages_evaluated"]
    assert data.info["held_out_packages_tokens"] >= 16
    held = {tuple(r) for b in data.held_out for r in b.tolist()}
    assert not held & {tuple(r) for b in data.held_out_packages for r in b.tolist()}


@pytest.mark.slow
@pytest.mark.parametrize("model", ["drafter", "refiner"])
def test_runs_log_both_held_out_sets(
    model: str, fake_corpus: Path, package_tokenizer: Path, tmp_path: Path
) -> None:
    train = train_drafter if model == "drafter" else train_refiner
    info = train(fake_corpus, package_tokenizer, "tiny", loop(tmp_path)).info
    log = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    metrics = {"drafter": ["loss", "fim_loss"],
               "refiner": ["loss", "masked_acc_0.15", "edit_auc"]}[model]
    for row in (log[0], log[-1]):  # every evaluation, the final one too
        assert row["step"] in (2, 4)
        for name in metrics:
            main = "held_out_loss" if name == "loss" else f"held_out_{name}"
            assert isinstance(row[main], float) and isinstance(row[f"held_out_pkg_{name}"], float)
    assert log[-1]["held_out_pkg_loss"] != log[-1]["held_out_loss"]  # other windows
    assert info["final_held_out_pkg_loss"] == round(log[-1]["held_out_pkg_loss"], 4)
    assert sorted(info["final_held_out_pkg"]) == sorted(metrics)
    assert sorted(info["final_held_out"]) == sorted(metrics)  # the old keys, unchanged


def test_a_corpus_without_packages_logs_no_pkg_figures(
    toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path  # noqa: F811
) -> None:
    info = train_refiner(toy_corpus, toy_tokenizer, "tiny", loop(tmp_path)).info
    assert not info["data"]["held_out_packages_evaluated"]
    assert "final_held_out_pkg_loss" not in info
    log = (tmp_path / "train_log.jsonl").read_text()
    assert "held_out_loss" in log and "pkg" not in log
