"""bench sampler's sweep and locality figures, on a tiny random refiner (speed is not
asserted: only the shape and the arithmetic of the figures)."""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator

import pytest
import torch

from bench import sampler
from refiner.editing import SpanEdit
from refiner.model import RefinerModel, refiner_config
from refiner.predictor import HFMaskPredictor, native_predictor

VOCAB = refiner_config("tiny").vocab_size  # its last ids are the special tokens


@pytest.fixture(scope="module")
def tiny() -> Iterator[HFMaskPredictor]:
    # one thread: on a busy shared CPU, OpenMP's spinning threads make tiny models crawl
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield native_predictor(RefinerModel(refiner_config("tiny")))
    torch.set_num_threads(threads)


def _args(**kw: object) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    sampler.add_arguments(p)
    args = p.parse_args([])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_sweep_covers_every_threshold_and_step_budget(tiny: HFMaskPredictor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampler, "SWEEP_THRESHOLDS", (0.5, 0.9, 1.0))
    monkeypatch.setattr(sampler, "SWEEP_STEPS", (2, 4))
    rng = random.Random(0)
    docs = [[rng.randrange(VOCAB - 8) for _ in range(40)] for _ in range(3)]
    cases = [(d, SpanEdit.remask(16, 20)) for d in docs]
    out = sampler._sweep(tiny, 0, cases, _args(span=4, window=8, sweep_repeats=1))
    pts = out["points"]
    assert out["cases"] == 3 and out["timing"] == "best of 1 runs"
    assert {(p["threshold"], p["steps"]) for p in pts} == {
        (t, s) for t in sampler.SWEEP_THRESHOLDS for s in sampler.SWEEP_STEPS}
    for p in pts:
        # every span is filled within the step budget; speed-up is baseline time over the point's
        assert 1 <= p["nfe"] <= p["steps"]
        base, s = out["baseline"]["seconds"], p["seconds"]  # both rounded to the millisecond
        assert (base - 5e-4) / (s + 5e-4) - 0.01 <= p["speedup"] <= (base + 5e-4) / max(s - 5e-4, 1e-9) + 0.01
        assert 0.0 <= p["exact_match"] <= 100.0
    # the even schedule ("1.0") commits exactly its quota: one forward pass per step
    assert all(p["nfe"] == p["steps"] for p in pts if p["threshold"] == 1.0)


def test_locality_times_every_length(tiny: HFMaskPredictor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampler, "LOCALITY_LENGTHS", (512, 2000, 8000))
    rng = random.Random(1)
    docs = [[rng.randrange(VOCAB - 8) for _ in range(3000)]]
    out = sampler._locality(tiny, 0, docs, _args(window=16))
    assert set(out["by_length_s"]) == {str(n) for n in sampler.LOCALITY_LENGTHS}
    assert out["short_doc_s"] == out["by_length_s"]["512"] and out["long_doc_s"] == out["by_length_s"]["8000"]
    assert out["ratio"] == pytest.approx(out["long_doc_s"] / out["short_doc_s"], rel=0.01)
