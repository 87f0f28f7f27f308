"""bench quality's infill loop, with a stub infill: the modes take turns on every case and
each mode's figures count only its own answers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

import workflows.infill
from bench.quality import run_infill


def test_modes_take_turns_and_are_scored_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    answers = {"ar": "x = 1", "diffusion": "x = (", "hybrid": "y = 2"}

    def fake_infill(prefix: str, suffix: str, params: Any, refiner: Any, drafter: Any) -> Any:
        calls.append((params.mode, prefix))
        return SimpleNamespace(text=answers[params.mode])

    monkeypatch.setattr(workflows.infill, "infill", fake_infill)
    cases = {"single_line": [("a\n", "x = 1", "\n"), ("b\n", "y = 2", "\n")],
             "multi_line": [("c\n", "x = 1", "\n")]}
    out = run_infill(cases, refiner=None, drafter=None, seed=0)
    modes = ["ar", "diffusion", "hybrid"]
    # one warm-up per mode, then every case in all three modes before the next case
    assert [m for m, _ in calls[:3]] == modes
    assert calls[3:] == [(m, p) for p in ("a\n", "b\n", "c\n") for m in modes]
    assert out["ar"]["single_line"]["exact_match"] == 50.0
    assert out["hybrid"]["single_line"]["exact_match"] == 50.0
    assert out["diffusion"]["single_line"] == {"exact_match": 0.0, "parses": 0.0,
                                               "mean_latency_ms": out["diffusion"]["single_line"]["mean_latency_ms"]}
    assert out["ar"]["multi_line"]["exact_match"] == 100.0 and out["ar"]["multi_line"]["parses"] == 100.0
