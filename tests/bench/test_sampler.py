"""bench sampler's sections on a tiny random refiner: speed is not asserted, only what holds
whatever the timing (which levers leave the output alone, the arithmetic of the figures, the
calibration rule)."""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator

import pytest
import torch

from bench import sampler
from refiner.model import RefinerModel, refiner_config
from refiner.predictor import HFMaskPredictor, native_predictor
from refiner.sampler import SamplerConfig, SamplerDefaults

VOCAB = refiner_config("tiny").vocab_size  # its last ids are the special tokens
SPAN = 4


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
    args = p.parse_args(["--repeats", "1"])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def _bench(pred: HFMaskPredictor, defaults: SamplerDefaults, **kw: object) -> sampler._Bench:
    base = SamplerConfig(steps=SPAN)
    return sampler._Bench(pred, sampler._FullLogits(pred), base, defaults.apply(SamplerConfig(steps=SPAN, cache=True)),
                          _args(span=SPAN, window=6, **kw))


def _cases(n: int = 3, seed: int = 0) -> list[sampler.Case]:
    rng = random.Random(seed)
    docs = [[rng.randrange(VOCAB - 8) for _ in range(40)] for _ in range(n)]
    return sampler._cases(docs, n, SPAN, 8, seed)


def test_levers_that_only_save_work_leave_the_baseline_output_alone(tiny: HFMaskPredictor) -> None:
    b = _bench(tiny, SamplerDefaults(factor=1.0, early_exit=0.9, cache_refresh=2))
    cases = _cases()
    base = b.base_run(cases, 6)
    assert base.row_passes == len(cases) * SPAN and base.calls == len(cases) * SPAN  # one token a pass
    rows = {r["lever"]: r for r in sampler._levers(b, cases, base)}
    # logits only where filled and batching compute the same numbers: the very same tokens
    assert rows["logits_only"]["tokens_equal"] == 1.0 and rows["batch"]["tokens_equal"] == 1.0
    assert rows["batch"]["calls"] == SPAN and rows["batch"]["nfe"] == len(cases) * SPAN
    for r in rows.values():
        assert 1 <= r["nfe"] <= len(cases) * SPAN
        assert r["tokens_per_pass"] == round(len(cases) * SPAN / r["nfe"], 2)
        assert 0.0 <= r["exact_match"] <= 100.0 and 0.0 <= r["tokens_equal"] <= 1.0


def test_calibration_keeps_the_margin_and_takes_the_most_aggressive_factor(
        tiny: HFMaskPredictor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampler, "FACTORS", (0.5, 2.0, 8.0))
    monkeypatch.setattr(sampler, "THRESHOLDS", (0.5,))
    monkeypatch.setattr(sampler, "EXIT_BARS", (0.9, 0.1))
    monkeypatch.setattr(sampler, "REFRESH", (1, 0))
    out = sampler.calibrate(_bench(tiny, SamplerDefaults()), _cases(4, seed=1))
    base, chosen = out["baseline"], out["defaults"]
    kept = [p["value"] for p in out["factor"] if sampler._keeps(p, base)]
    assert chosen["factor"] == (max(kept) if kept else None)
    for p in out["factor"]:  # the rule as stated: within 2 points and >= 60% of the baseline's tokens
        assert sampler._keeps(p, base) == (p["exact_match"] >= base["exact_match"] - 2 and p["tokens_equal"] >= 0.6)
    assert [p["refresh"] for p in out["cache_refresh"]] == [None, 1, 0]


def test_knee_is_the_most_frequent_refresh_near_the_fastest() -> None:
    curve = [{"refresh": None, "seconds": 9.0}, {"refresh": 1, "seconds": 4.0}, {"refresh": 2, "seconds": 2.1},
             {"refresh": 4, "seconds": 2.0}, {"refresh": 0, "seconds": 1.95}]
    assert sampler.knee(curve) == 2  # 1.95 / 2.1 >= 0.9; every step (4.0 s) is too slow
    assert sampler.knee([*curve[:2], {"refresh": 0, "seconds": 1.0}]) == 0


def test_long_generation_lifts_the_context_limit_only_while_it_runs(tiny: HFMaskPredictor) -> None:
    b = _bench(tiny, SamplerDefaults(factor=1.0), long_tokens=8, long_prompt=4)
    limit = tiny.max_length
    b.pred.max_length = b.full.max_length = 10  # shorter than prompt + generated tokens
    try:
        out = sampler._long(b, [list(range(8, 40))])
        assert out["beyond_trained_context"] and b.pred.max_length == 10 and b.full.max_length == 10
    finally:
        b.pred.max_length = b.full.max_length = limit
    assert out["baseline"]["nfe"] == 8 and 1 <= out["fast"]["nfe"] <= 8


def test_locality_times_every_length(tiny: HFMaskPredictor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampler, "LOCALITY_LENGTHS", (512, 2000, 8000))
    rng = random.Random(1)
    docs = [[rng.randrange(VOCAB - 8) for _ in range(3000)]]
    out = sampler._locality(tiny, docs, SamplerConfig(steps=4, cache=True), 16)
    assert set(out["by_length_s"]) == {str(n) for n in sampler.LOCALITY_LENGTHS}
    assert out["short_doc_s"] == out["by_length_s"]["512"] and out["long_doc_s"] == out["by_length_s"]["8000"]
    assert out["ratio"] == pytest.approx(out["long_doc_s"] / out["short_doc_s"], rel=0.01)
