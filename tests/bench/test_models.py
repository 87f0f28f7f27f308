"""bench models: figures on both held-out splits, windows at the trained context, weights
saved in bfloat16 and sharded, a corpus without the package split."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from bench import models as bench_models

from .conftest import CONTEXT


def figures(corpus: Path, models: Path, *extra: str) -> dict[str, Any]:
    p = argparse.ArgumentParser()
    bench_models.add_arguments(p)
    args = p.parse_args(["--corpus", str(corpus), "--drafter", str(models / "drafter"),
                         "--refiner", str(models / "refiner"), "--windows", "4", *extra])
    return bench_models.run(args)


@pytest.fixture(scope="module")
def default_run(bench_corpus: Path, model_dirs: Path) -> dict[str, Any]:
    return figures(bench_corpus, model_dirs)


def test_both_held_out_splits_at_the_trained_context(default_run: dict[str, Any]) -> None:
    d, r = default_run["drafter"], default_run["refiner"]
    for m in (d, r):
        # the default window (512) is capped at the 48 positions the models were trained on
        assert (m["context"], m["seq_len"], m["windows"]) == (CONTEXT, CONTEXT, 4)
        assert m["trained_on"] == "cpu" and m["trained_seq_len"] == CONTEXT
    # the figures before issue 12, unchanged in shape: held_out code and prose
    assert set(d["code"]) == set(d["prose"]) == {"held_out_loss", "perplexity"}
    assert set(r["code"]["masked_token_accuracy"]) == {"0.15", "0.5", "0.9"}
    assert r["masked_token_accuracy"] == r["code"]["masked_token_accuracy"]
    assert r["edit_noise_detection_auc"] == r["code"]["edit_noise_detection_auc"]
    assert d["held_out_loss"] == round((d["code"]["held_out_loss"] + d["prose"]["held_out_loss"]) / 2, 4)
    # the package split: code only (this corpus has no package prose), other windows
    for m in (d, r):
        assert set(m["packages"]) - {"held_out_loss", "perplexity", "masked_token_accuracy",
                                     "edit_noise_detection_auc"} == {"code"}
        assert m["packages"]["code"]["held_out_loss"] != m["code"]["held_out_loss"]
    assert d["packages"]["perplexity"] == d["packages"]["code"]["perplexity"]
    assert r["packages"]["masked_token_accuracy"] == r["packages"]["code"]["masked_token_accuracy"]
    assert 0.0 <= r["packages"]["edit_noise_detection_auc"] <= 1.0


def test_a_shorter_window_is_used_and_recorded(bench_corpus: Path, model_dirs: Path,
                                              default_run: dict[str, Any]) -> None:
    out = figures(bench_corpus, model_dirs, "--seq-len", "16")
    assert out["drafter"]["seq_len"] == out["refiner"]["seq_len"] == 16
    assert out["drafter"]["code"] != default_run["drafter"]["code"]


def test_figures_do_not_depend_on_the_chunk_size(
    bench_corpus: Path, model_dirs: Path, default_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_models, "CHUNK_TOKENS", CONTEXT)  # one window per forward pass
    out = figures(bench_corpus, model_dirs)
    for name in ("drafter", "refiner"):
        for key in ("code", "prose", "packages"):
            got, want = out[name][key], default_run[name][key]
            assert got.keys() == want.keys()
            for k in want:
                if isinstance(want[k], float):
                    assert got[k] == pytest.approx(want[k], abs=2e-4), (name, key, k)


def test_bfloat16_shards_load_as_float32(bench_corpus: Path, model_dirs: Path, tmp_path: Path) -> None:
    """Weights saved in bfloat16 over several files give the figures of the same (rounded)
    weights in float32: the benchmark computes in float32 whatever the saved dtype."""
    model = AutoModelForCausalLM.from_pretrained(model_dirs / "drafter", dtype=torch.float32)
    rounded = model.to(torch.bfloat16)
    for name, dtype, shard in (("bf16", torch.bfloat16, "20KB"), ("fp32", torch.float32, "10GB")):
        target = tmp_path / name
        shutil.copytree(model_dirs / "drafter", target)
        (target / "model.safetensors").unlink()
        rounded.to(dtype).save_pretrained(target, max_shard_size=shard)
    assert (tmp_path / "bf16" / "model.safetensors.index.json").is_file()
    a = bench_models.drafter_figures(tmp_path / "bf16", bench_corpus, 512, 4)
    b = bench_models.drafter_figures(tmp_path / "fp32", bench_corpus, 512, 4)
    assert a["code"] == b["code"] and a["packages"] == b["packages"]


def test_a_corpus_without_packages_gives_the_old_figures(
    old_corpus: Path, model_dirs: Path, default_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = figures(old_corpus, model_dirs)
    assert "packages" not in out["drafter"] and "packages" not in out["refiner"]
    # the same held_out figures: the trained-on package's file in the new corpus is left out
    for name in ("drafter", "refiner"):
        assert out[name]["code"] == default_run[name]["code"]
        assert out[name]["prose"] == default_run[name]["prose"]
    assert "no held_out_packages split" in capsys.readouterr().err


def test_bad_arguments_are_named(bench_corpus: Path, model_dirs: Path) -> None:
    with pytest.raises(ValueError, match="--seq-len"):
        figures(bench_corpus, model_dirs, "--seq-len", "1")
    with pytest.raises(FileNotFoundError, match="no drafter model"):
        figures(bench_corpus, model_dirs / "nowhere")
