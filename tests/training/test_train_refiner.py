"""The refiner's training noise (spans, filler, edit noise), its loss, and short training runs."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from train_fakes import VOCAB_SIZE, toy_corpus, toy_tokenizer  # noqa: F401  (fixtures)
from transformers import AutoModelForMaskedLM

import refiner.model  # noqa: F401  (registers the model type with the Auto classes)
from refiner.schedule import diffusion_loss
from training.loop import LoopConfig
from training.model_card import MARKER, write_card
from training.refiner_noise import (
    NoisedBatch,
    RefinerObjective,
    corrupt,
    insert_spans,
    loss_positions,
    noise_batch,
    refiner_loss,
)
from training.train_refiner import auc, train_refiner

V, MASK, FILLER, EOS = 64, 63, 62, 61
SPECIAL = torch.zeros(V, dtype=torch.bool)
SPECIAL[[MASK, FILLER, EOS, 60]] = True


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and the machine's cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def distinct_rows(b: int, length: int) -> torch.Tensor:
    """Rows whose tokens are all different (and not special), so shifts are visible."""
    return torch.stack([torch.randperm(59, generator=gen(r))[:length] for r in range(b)])


def test_filler_spans_shift_the_row_and_target_filler() -> None:
    ids = distinct_rows(16, 40)
    objective = RefinerObjective(span_prob=1.0, filler_share=1.0, span_max=6, filler_max=4)
    targets, span = insert_spans(ids, objective, FILLER, gen())
    assert targets.shape == ids.shape and span.shape == ids.shape
    for row in range(16):
        where = span[row].nonzero()[:, 0]
        s, end = int(where[0]), int(where[-1]) + 1
        assert where.tolist() == list(range(s, end))  # one contiguous span
        fill = (targets[row] == FILLER).nonzero()[:, 0].tolist()
        k = len(fill)
        m = end - s - k
        assert 1 <= k <= 4 and 1 <= m <= 6
        assert fill == list(range(s + m, end))  # the fillers close the span, inside it
        assert torch.equal(targets[row, : s + m], ids[row, : s + m])
        assert torch.equal(targets[row, end:], ids[row, s + m : 40 - k])  # shifted right by k


def test_exact_spans_keep_the_row() -> None:
    ids = distinct_rows(8, 30)
    objective = RefinerObjective(span_prob=1.0, filler_share=0.0, span_max=5)
    targets, span = insert_spans(ids, objective, FILLER, gen())
    assert torch.equal(targets, ids)
    assert all(1 <= int(n) <= 5 for n in span.sum(1))
    none, no_span = insert_spans(ids, replace(objective, span_prob=0.0), FILLER, gen())
    assert torch.equal(none, ids) and not no_span.any()


def test_noise_batch_invariants() -> None:
    ids = torch.randint(0, 60, (64, 64), generator=gen(1))
    ids[:, ::17] = EOS  # documents end inside the rows
    unigram = torch.ones(V)
    nb = noise_batch(ids, RefinerObjective(), MASK, FILLER, SPECIAL, unigram, gen(2))
    hidden = nb.masked | nb.span
    assert not (nb.masked & nb.span).any()
    assert (nb.input_ids[hidden] == MASK).all()
    visible = nb.visible
    assert not (nb.corrupted & ~visible).any()
    assert (nb.input_ids[nb.corrupted] != nb.targets[nb.corrupted]).all()
    clean = visible & ~nb.corrupted
    assert torch.equal(nb.input_ids[clean], nb.targets[clean])
    assert not nb.corrupted[nb.targets == EOS].any()  # special tokens are never corrupted
    assert not SPECIAL[nb.input_ids[nb.corrupted]].any()  # nor drawn as replacements
    share = nb.corrupted.sum() / visible.sum()
    assert 0.01 < float(share) < 0.10  # rate ~ U(0, 0.1) per row: about 5% on average
    assert ((nb.t > 0) & (nb.t <= 1)).all()


def test_swap_noise_swaps_neighbours() -> None:
    ids = distinct_rows(8, 32)
    objective = RefinerObjective(edit_rate_max=1.0, edit_mix=(0.0, 0.0, 1.0))
    out, corrupted = corrupt(ids, torch.ones_like(ids, dtype=torch.bool), objective,
                             (~SPECIAL).float(), torch.ones(V), gen(3))
    assert corrupted.any()
    for r, i in corrupted.nonzero().tolist():
        if i + 1 < 32 and out[r, i] == ids[r, i + 1]:
            assert out[r, i + 1] == ids[r, i]  # a swap moves both tokens
        else:
            assert out[r, i] == ids[r, i - 1] and out[r, i - 1] == ids[r, i]
    assert torch.equal(out.sort(1).values, ids.sort(1).values)  # same tokens, new places


def test_unigram_and_random_noise_draw_from_their_distributions() -> None:
    ids = distinct_rows(8, 32)
    everywhere = torch.ones_like(ids, dtype=torch.bool)
    only_seven = torch.zeros(V)
    only_seven[7] = 1.0
    objective = RefinerObjective(edit_rate_max=1.0, edit_mix=(0.0, 1.0, 0.0))
    out, corrupted = corrupt(ids, everywhere, objective, (~SPECIAL).float(), only_seven, gen(4))
    assert corrupted.any() and (out[corrupted] == 7).all()
    objective = replace(objective, edit_mix=(1.0, 0.0, 0.0))
    out, corrupted = corrupt(ids, everywhere, objective, (~SPECIAL).float(), only_seven, gen(5))
    assert len(set(out[corrupted].tolist())) > 10 and not SPECIAL[out[corrupted]].any()


def test_loss_weights() -> None:
    b, length = 2, 6
    targets = torch.arange(12).view(b, length)
    masked = torch.tensor([[1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0]], dtype=torch.bool)
    span = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    corrupted = torch.tensor([[0, 0, 0, 0, 1, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    t = torch.tensor([0.5, 0.25])
    nb = NoisedBatch(targets, targets, t, masked, span, corrupted)
    objective = RefinerObjective(edit_weight=2.0, clean_weight=0.1)
    logits = torch.zeros(b, length, V)  # uniform: every CE is log V
    out = refiner_loss(logits, nb, objective)
    # masked: 2 at 1/0.5 + 1 at 1/0.25; span: 2 x 1; corrupted: 3 x 2; clean: 4 x 0.1
    weight = (2 * 2 + 4) + 2 + 3 * 2.0 + 4 * 0.1
    assert float(out.loss) == pytest.approx(weight * math.log(V) / 12, rel=1e-5)
    assert out.figures["edit_ce"] == pytest.approx(math.log(V), rel=1e-5)


def test_masked_term_is_the_schedule_elbo() -> None:
    ids = torch.randint(0, 60, (4, 16), generator=gen(6))
    nb = noise_batch(ids, RefinerObjective(span_prob=0.0, edit_rate_max=0.0), MASK, FILLER,
                     SPECIAL, torch.ones(V), gen(7))
    logits = torch.randn(4, 16, V, generator=gen(8))
    only_masked = RefinerObjective(clean_weight=0.0, edit_weight=0.0)
    ours = refiner_loss(logits, nb, only_masked).loss
    theirs = diffusion_loss(logits, nb.targets, nb.masked, nb.t).loss
    assert float(ours) == pytest.approx(float(theirs), rel=1e-6)


def test_sampled_loss_positions_are_unbiased_and_sparse() -> None:
    ids = torch.randint(0, 60, (32, 64), generator=gen(9))
    objective = RefinerObjective(clean_keep=0.1, mask_keep=0.25)
    nb = noise_batch(ids, objective, MASK, FILLER, SPECIAL, torch.ones(V), gen(10))
    logits = torch.randn(32, 64, V, generator=gen(11))
    exact = loss_positions(nb, objective)  # no generator: every position, plain weights
    assert bool(exact.keep.all())
    full = float(refiner_loss(logits, nb, objective).loss)
    draws = [loss_positions(nb, objective, gen(100 + i)) for i in range(400)]
    # the selected-logits form ((N, V) at the kept positions) gives the same value
    first = draws[0]
    assert float(refiner_loss(logits[first.keep], nb, objective, first).loss) == pytest.approx(
        float(refiner_loss(logits, nb, objective, first).loss), rel=1e-6)
    sampled = [float(refiner_loss(logits, nb, objective, p).loss) for p in draws]
    assert sum(sampled) / len(sampled) == pytest.approx(full, rel=0.02)
    share = sum(float(p.keep.float().mean()) for p in draws) / len(draws)
    assert share < 0.5
    # corrupted and span tokens always carry their loss; clean ones about 10% of the time
    assert all(bool(p.keep[nb.corrupted | nb.span].all()) for p in draws[:20])
    clean = nb.visible & ~nb.corrupted
    clean_share = sum(float(p.keep[clean].float().mean()) for p in draws) / len(draws)
    assert clean_share == pytest.approx(0.1, abs=0.01)


def test_keep_shares_are_checked() -> None:
    with pytest.raises(ValueError, match="clean_keep"):
        RefinerObjective(clean_keep=0.0)
    with pytest.raises(ValueError, match="mask_keep"):
        RefinerObjective(mask_keep=1.5)


def test_auc() -> None:
    labels = torch.tensor([False, False, True, True])
    assert auc(torch.tensor([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert auc(torch.tensor([0.9, 0.8, 0.2, 0.1]), labels) == 0.0
    assert auc(torch.tensor([0.1, 0.8, 0.2, 0.9]), labels) == 0.75


def loop(out: Path, **kw: Any) -> LoopConfig:
    settings: dict[str, Any] = {
        "out_dir": out, "max_steps": 30, "batch_size": 8, "seq_len": 32, "lr": 5e-3,
        "warmup_steps": 3, "eval_every": 1000, "eval_batches": 1, "log_every": 5,
        "checkpoint_every": 1000, "progress": False, "threads": 1, "seed": 3,
    }
    return LoopConfig(**(settings | kw))


@pytest.mark.slow
def test_training_reduces_loss_and_saves_a_loadable_model(
    toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path  # noqa: F811
) -> None:
    out = tmp_path / "refiner"
    result = train_refiner(toy_corpus, toy_tokenizer, "tiny", loop(out))
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [5, 10, 15, 20, 25, 30]
    assert log[-1]["held_out_loss"] is not None  # the final evaluation joins the last line
    assert log[-1]["loss"] < log[0]["loss"] - 0.5
    info = json.loads((out / "training.json").read_text())
    assert info == result.info
    assert info["steps"] == 30 and info["tokens_seen"] == 30 * 8 * 32
    assert info["final_held_out_loss"] < math.log(VOCAB_SIZE) - 1.0
    assert info["hardware"]["device"] == "cpu" and info["model_config"]["vocab_size"] == 300
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert type(model).__name__ == "RefinerModel"
    assert (out / "tokenizer.json").is_file() and (out / "model.safetensors").is_file()
    assert "checkpoint.pt" in (out / ".gitignore").read_text()
    card = (out / "README.md").read_text()
    assert card.startswith(MARKER) and "| 30 | 7,680 |" in card and "edit_auc" in card
    assert (out / "loss_curve.svg").read_text().startswith("<svg")
    (out / "README.md").write_text("# hand-written card\n")
    assert write_card(out) is None  # a card written by hand is never overwritten
    assert (out / "README.md").read_text() == "# hand-written card\n"


@pytest.mark.slow
def test_resume_matches_an_uninterrupted_run(
    toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    whole, split = tmp_path / "whole", tmp_path / "split"
    train_refiner(toy_corpus, toy_tokenizer, "tiny", loop(whole, max_steps=8, checkpoint_every=4))

    from training.train_refiner import RefinerTask

    original = RefinerTask.train_loss

    def crash_at_step_6(self, forward, batch, step):  # type: ignore[no-untyped-def]
        if step == 6:
            raise KeyboardInterrupt("simulated crash")
        return original(self, forward, batch, step)

    monkeypatch.setattr(RefinerTask, "train_loss", crash_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        train_refiner(toy_corpus, toy_tokenizer, "tiny", loop(split, max_steps=8,
                                                               checkpoint_every=4))
    monkeypatch.setattr(RefinerTask, "train_loss", original)
    train_refiner(toy_corpus, toy_tokenizer, "tiny",
                  loop(split, max_steps=8, checkpoint_every=4, resume=True))

    a, b = load_file(whole / "model.safetensors"), load_file(split / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = ("elapsed",)

    def lines(d: Path) -> list[dict]:
        rows = [json.loads(x) for x in (d / "train_log.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k not in drop} for r in rows]

    assert lines(whole) == lines(split)  # the log was cut back to the checkpoint's step
