"""``remask export-onnx`` and ``remask bench drafter`` on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
from services.cli import main
from tests.onnx.conftest import save_tiny_drafter, save_tiny_refiner


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_export_refiner_then_reuse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = save_tiny_refiner(tmp_path)
    code, out, _ = _run(capsys, "export-onnx", "--model", str(root))
    report = json.loads(out)
    assert code == 0 and report["kind"] == "refiner" and report["variant"] == "mask_predictor"
    assert Path(report["path"]) == root / "onnx" / "model.onnx" and report["bytes"] > 10_000
    mtime = (root / "onnx" / "model.onnx").stat().st_mtime_ns
    _run(capsys, "export-onnx", "--model", str(root), "--kind", "refiner")
    assert (root / "onnx" / "model.onnx").stat().st_mtime_ns == mtime  # fresh: not rebuilt
    _run(capsys, "export-onnx", "--model", str(root), "--force")
    assert (root / "onnx" / "model.onnx").stat().st_mtime_ns != mtime


def test_export_drafter_is_detected(
    tmp_path: Path, tokenizer: object, capsys: pytest.CaptureFixture[str]
) -> None:
    root = save_tiny_drafter(tmp_path, tokenizer)
    code, out, _ = _run(capsys, "export-onnx", "--model", str(root))
    report = json.loads(out)
    assert code == 0 and report["kind"] == "drafter" and report["variant"] == "kv_cache"


def test_bad_requests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "export-onnx", "--model", str(tmp_path / "nope"))
    assert code == 2 and "does not exist" in err
    code, _, err = _run(capsys, "export-onnx", "--model", str(tmp_path))
    assert code == 2 and "config.json" in err
    root = save_tiny_refiner(tmp_path / "refiner")
    code, _, err = _run(capsys, "export-onnx", "--model", str(root), "--variant", "full_prefix")
    assert code == 2 and "drafters only" in err


def test_bench_drafter_prints_the_figures(
    tmp_path: Path, tokenizer: object, capsys: pytest.CaptureFixture[str]
) -> None:
    refiner = save_tiny_refiner(tmp_path / "refiner")
    drafter = save_tiny_drafter(tmp_path / "drafter", tokenizer)
    code, out, _ = _run(
        capsys, "bench", "drafter", "--json", "--refiner", str(refiner), "--drafter", str(drafter),
        "--repeats", "2", "--seq-len", "16", "--new-tokens", "4", "--prompt-tokens", "8",
    )
    figures = json.loads(out)
    assert code == 0 and figures["model"]["refiner"] == str(refiner)
    assert figures["torch"]["tokens_per_s"] > 0 and figures["onnx"]["tokens_per_s"] > 0
    assert figures["onnx"]["max_abs_diff"] < 1e-3 and figures["onnx"]["greedy_identical"]
    forward = figures["refiner_forward"]
    assert forward["seq_len"] == 16 and forward["max_abs_diff"] < 1e-3
    assert forward["torch_ms"] > 0 and forward["onnx_ms"] > 0
