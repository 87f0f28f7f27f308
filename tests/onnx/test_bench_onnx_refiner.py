"""``remask bench onnx_refiner`` on the tiny refiner's shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
from services.cli import main


def test_prints_each_length_with_agreement_and_speed(refiner_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = refiner_dir / "onnx"
    before = {f.name: f.stat().st_mtime_ns for f in cache.iterdir()} if cache.is_dir() else {}
    code = main(["bench", "onnx_refiner", "--json", "--refiner", str(refiner_dir), "--lengths", "8", "300",
                 "--repeats", "2", "--budget", "5"])
    figures = json.loads(capsys.readouterr().out)
    assert code == 0 and figures["model"] == f"shape of {refiner_dir}, random init"
    assert figures["shape"]["hidden_size"] == 32 and figures["attention"] == "com.microsoft.MultiHeadAttention"
    # 300 tokens: past the tiny preset's 256-position limit, which the benchmark raises
    assert sorted(figures["lengths"]) == ["300", "8"]
    for n, row in figures["lengths"].items():
        assert row["seq_len"] == int(n) and row["batch"] == 1
        assert row["max_abs_diff"] < 1e-3 and row["torch_ms"] > 0 and row["onnx_ms"] > 0
    # the export went to the benchmark's own model, not into the checkpoint's cache
    assert figures["export_s"] > 0
    assert before == ({f.name: f.stat().st_mtime_ns for f in cache.iterdir()} if cache.is_dir() else {})
