"""A model's calibrated sampler defaults: stored beside its weights, applied where a config leaves a setting unset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refiner.sampler import SAMPLER_FILE, SamplerConfig, SamplerDefaults
from refiner.text import TextRefiner, tiny_text_refiner

MODELS = Path(__file__).resolve().parents[2] / "models" / "refiner"


def test_defaults_fill_only_what_a_config_leaves_unset() -> None:
    d = SamplerDefaults(factor=2.0, early_exit=0.5, cache_refresh=4)
    cfg = d.apply(SamplerConfig(steps=8, cache=True))
    assert (cfg.factor, cfg.early_exit, cfg.cache_refresh, cfg.steps) == (2.0, 0.5, 4, 8)
    # a caller's own value wins, 0 included (factor 0: the rule is off)
    mine = d.apply(SamplerConfig(factor=0.0, early_exit=0.9, cache_refresh=0))
    assert (mine.factor, mine.early_exit, mine.cache_refresh) == (0.0, 0.9, 0)
    assert SamplerDefaults().apply(SamplerConfig()) == SamplerConfig()  # the fallbacks change nothing


def test_a_directory_without_the_file_gets_the_fallbacks(tmp_path: Path) -> None:
    assert SamplerDefaults.beside(tmp_path) == SamplerDefaults()
    (tmp_path / SAMPLER_FILE).write_text(json.dumps({"factor": 3.0, "early_exit": None, "cache_refresh": 2,
                                                     "measured": {"cases": 24}}))
    assert SamplerDefaults.beside(tmp_path) == SamplerDefaults(factor=3.0, cache_refresh=2)


def test_text_refiner_loaded_from_a_directory_uses_its_defaults(tiny_tokenizer: object, tmp_path: Path) -> None:
    r = tiny_text_refiner(tiny_tokenizer)
    r.predictor.model.save_pretrained(tmp_path)  # type: ignore[attr-defined]
    tiny_tokenizer.save_pretrained(tmp_path)  # type: ignore[attr-defined]
    assert TextRefiner.from_pretrained(tmp_path).sampler(SamplerConfig()).factor is None
    (tmp_path / SAMPLER_FILE).write_text(json.dumps({"factor": 2.5, "early_exit": 0.7, "cache_refresh": 4}))
    loaded = TextRefiner.from_pretrained(tmp_path)
    cfg = loaded.sampler(SamplerConfig(steps=4))
    assert (cfg.factor, cfg.early_exit, cfg.cache_refresh) == (2.5, 0.7, 4)
    assert loaded.sampler(SamplerConfig(factor=0.0)).factor == 0.0  # a request can turn it off


@pytest.mark.skipif(not (MODELS / SAMPLER_FILE).is_file(), reason="models/refiner has no calibrated defaults")
def test_shipped_refiner_defaults_are_valid_settings() -> None:
    stored = json.loads((MODELS / SAMPLER_FILE).read_text())
    d = SamplerDefaults.beside(MODELS)
    SamplerConfig(factor=d.factor, early_exit=d.early_exit, cache_refresh=d.cache_refresh)  # in bounds
    assert stored["measured"]["by"].startswith("remask bench sampler --calibrate")
