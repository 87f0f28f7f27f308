"""The shared loop: learning-rate schedule, budgets, atomic checkpoints, resume errors."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from train_fakes import toy_corpus, toy_tokenizer  # noqa: F401  (fixtures)

from training import checkpoint as ckpt
from training.checkpoint import CHECKPOINT_FILE, CheckpointError, load_checkpoint
from training.loop import LoopConfig, budget_progress, learning_rate
from training.train_refiner import train_refiner


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def loop(out: Path, **kw: Any) -> LoopConfig:
    settings: dict[str, Any] = {
        "out_dir": out, "max_steps": 4, "batch_size": 4, "seq_len": 16, "warmup_steps": 2,
        "eval_every": 1000, "eval_batches": 1, "checkpoint_every": 2, "progress": False,
        "threads": 1,
    }
    return LoopConfig(**(settings | kw))


def test_warmup_then_cosine_to_ten_percent() -> None:
    cfg = LoopConfig(out_dir=Path("."), lr=1e-3, warmup_steps=10, max_steps=100)
    assert learning_rate(cfg, 0, 0.0) == pytest.approx(1e-4)  # 1/10 of the way up
    assert learning_rate(cfg, 9, 0.09) < 1e-3
    assert learning_rate(cfg, 50, 0.5) == pytest.approx(1e-3 * 0.55)
    assert learning_rate(cfg, 100, 1.0) == pytest.approx(1e-4)  # floor: 10% of the peak
    assert budget_progress(cfg, 25, 0.0) == 0.25
    timed = LoopConfig(out_dir=Path("."), time_budget=200.0)
    assert budget_progress(timed, 1000, 50.0) == 0.25  # seconds, not steps


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"max_steps": None, "time_budget": None}, "give a budget"),
     ({"max_steps": 0}, "--max-steps must be positive"),
     ({"max_steps": None, "time_budget": 0.0}, "--time-budget must be positive"),
     ({"max_steps": None, "time_budget": -5.0}, "--time-budget must be positive"),
     ({"lr": 0.0}, "--lr must be positive")],
)
def test_bad_budgets(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        loop(Path("."), **kw).validate()


@pytest.mark.slow
def test_time_budget_stops_the_run(
    toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path  # noqa: F811
) -> None:
    out = tmp_path / "timed"
    info = train_refiner(toy_corpus, toy_tokenizer, "tiny",
                         loop(out, max_steps=None, time_budget=1.0)).info
    assert info["steps"] > 0 and info["wall_time_s"] < 3.0
    assert info["tokens_seen"] == info["steps"] * 4 * 16


@pytest.mark.slow
def test_crash_while_checkpointing_keeps_the_previous_checkpoint(
    toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    out = tmp_path / "run"
    real_save = torch.save
    calls = []

    def save_half_then_die(obj: Any, handle: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            real_save(obj, handle)
            return
        buf = io.BytesIO()
        real_save(obj, buf)
        handle.write(buf.getvalue()[: len(buf.getvalue()) // 2])  # half a checkpoint ...
        raise OSError("No space left on device")  # ... then the write fails

    monkeypatch.setattr(ckpt.torch, "save", save_half_then_die)
    with pytest.raises(OSError, match="No space left"):
        train_refiner(toy_corpus, toy_tokenizer, "tiny", loop(out))
    monkeypatch.setattr(ckpt.torch, "save", real_save)

    state = load_checkpoint(out / CHECKPOINT_FILE, "refiner")
    assert state["step"] == 2  # the first checkpoint, whole
    assert not list(out.glob(".*.tmp"))  # the half-written file was removed
    info = train_refiner(toy_corpus, toy_tokenizer, "tiny", loop(out, resume=True)).info
    assert info["steps"] == 4


@pytest.mark.slow
def test_stale_temporary_is_removed_and_fresh_run_refuses_to_overwrite(
    toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path  # noqa: F811
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    stale = out / f".{CHECKPOINT_FILE}.x1y2.tmp"  # what a killed run leaves behind
    stale.write_bytes(b"PK\x03\x04 half")
    train_refiner(toy_corpus, toy_tokenizer, "tiny", loop(out, max_steps=2))
    assert not stale.exists()
    with pytest.raises(ValueError, match="pass --resume"):
        train_refiner(toy_corpus, toy_tokenizer, "tiny", loop(out, max_steps=2))


@pytest.mark.slow
def test_unreadable_checkpoints(
    toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path  # noqa: F811
) -> None:
    out = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        train_refiner(toy_corpus, toy_tokenizer, "tiny", loop(out, resume=True))
    train_refiner(toy_corpus, toy_tokenizer, "tiny", loop(out, max_steps=2))
    path = out / CHECKPOINT_FILE
    good = path.read_bytes()
    for broken in (good[: len(good) // 2], b"not a checkpoint at all"):
        path.write_bytes(broken)
        with pytest.raises(CheckpointError, match=f"checkpoint {path} cannot be read"):
            train_refiner(toy_corpus, toy_tokenizer, "tiny", loop(out, resume=True))
    path.write_bytes(good)
    with pytest.raises(CheckpointError, match="another model shape"):
        train_refiner(toy_corpus, toy_tokenizer, "tiny", loop(out, resume=True),
                      hidden_size=64)
    with pytest.raises(CheckpointError, match="not a drafter one"):
        load_checkpoint(path, "drafter")
    log = (out / "train_log.jsonl").read_text().splitlines()
    assert json.loads(log[-1])["step"] == 2


@pytest.mark.parametrize("model", ["refiner", "drafter"])
def test_throughput_measures_full_steps(model: str) -> None:
    from training.throughput import measure

    figures = measure(model, "tiny", seq_len=16, batch_size=2, threads=1, steps=2, warmup=1)
    assert figures["tokens_per_s_best"] >= figures["tokens_per_s_median"] > 0
    assert figures["parameters"] > 0 and figures["seq_len"] == 16
    # longer than the tiny preset's default context (256): the context follows seq_len
    assert measure(model, "tiny", seq_len=300, batch_size=1, threads=1, steps=1,
                   warmup=0)["seq_len"] == 300
