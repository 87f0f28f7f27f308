"""The export cache: reused while fresh, rebuilt when stale, never left half-written."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")
from backends import onnx_runtime as ort_backend
from backends.onnx_runtime import ExportMeta, cached_export, providers_for, session_options
from refiner.onnx_backend import export_meta, load_onnx_predictor
from refiner.predictor import load_predictor
from tests.onnx.conftest import save_tiny_refiner


def _export_files(root: Path) -> tuple[bytes, dict]:
    out = root / "onnx"
    return (out / "model.onnx").read_bytes(), json.loads((out / "export.json").read_text())


def test_metadata_records_the_source(tmp_path: Path) -> None:
    root = save_tiny_refiner(tmp_path)
    load_onnx_predictor(root)
    _, meta = _export_files(root)
    assert meta["kind"] == "refiner" and meta["opset"] == ort_backend.OPSET
    assert meta["torch_version"] == torch.__version__
    assert meta["source_sha256"] == ort_backend.weights_digest(root)
    assert sorted(p.name for p in (root / "onnx").iterdir()) == ["export.json", "model.onnx"]


def test_fresh_export_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = save_tiny_refiner(tmp_path)
    load_onnx_predictor(root)

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("a fresh export was rebuilt")

    monkeypatch.setattr("refiner.onnx_backend.export_predictor", no_export)
    load_onnx_predictor(root)


def test_new_weights_make_the_export_stale(tmp_path: Path) -> None:
    root = save_tiny_refiner(tmp_path, seed=0)
    load_onnx_predictor(root)
    graph_before, meta_before = _export_files(root)
    save_tiny_refiner(root, seed=1)  # retrained: same shapes, other weights
    onnx, _ = load_onnx_predictor(root)
    graph_after, meta_after = _export_files(root)
    assert meta_after["source_sha256"] != meta_before["source_sha256"]
    assert graph_after != graph_before
    eager, _ = load_predictor(root)
    ids = torch.randint(0, 60, (2, 11))
    mask = torch.ones_like(ids)
    assert float((onnx(ids, mask) - eager(ids, mask)).abs().max()) < 1e-3


@pytest.mark.parametrize("field", ["torch_version", "opset", "variant", "attention"])
def test_other_builds_are_stale(tmp_path: Path, field: str) -> None:
    root = save_tiny_refiner(tmp_path)
    load_onnx_predictor(root)
    meta_file = root / "onnx" / "export.json"
    meta = json.loads(meta_file.read_text())
    meta[field] = 1 if field == "opset" else "something else"
    meta_file.write_text(json.dumps(meta))
    expected = export_meta(root)
    assert expected.attention == "com.microsoft.MultiHeadAttention"
    assert not ort_backend.is_fresh(root, expected)
    load_onnx_predictor(root)
    assert ort_backend.is_fresh(root, expected)


def test_an_export_from_before_fused_attention_is_stale(tmp_path: Path) -> None:
    """export.json files written before the attention field read as "standard" attention, so
    the native refiner's old unfused graphs are rebuilt."""
    root = save_tiny_refiner(tmp_path)
    load_onnx_predictor(root)
    meta_file = root / "onnx" / "export.json"
    meta = json.loads(meta_file.read_text())
    del meta["attention"]
    meta_file.write_text(json.dumps(meta))
    assert ExportMeta.read(meta_file) == replace(export_meta(root), attention="standard")
    assert not ort_backend.is_fresh(root, export_meta(root))


def test_a_failed_export_leaves_the_old_one(tmp_path: Path) -> None:
    root = save_tiny_refiner(tmp_path)
    load_onnx_predictor(root)
    before = _export_files(root)
    meta = ExportMeta(kind="refiner", variant="other", source_sha256="0" * 64)

    def broken(path: Path) -> None:
        path.write_bytes(b"half a graph")
        raise RuntimeError("tracing failed")

    with pytest.raises(RuntimeError, match="tracing failed"):
        cached_export(root, meta, broken)
    assert _export_files(root) == before
    assert sorted(p.name for p in (root / "onnx").iterdir()) == ["export.json", "model.onnx"]


def test_cuda_request_without_cuda_falls_back_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with caplog.at_level(logging.WARNING, logger="backends.onnx_runtime"):
        assert providers_for("cuda") == ["CPUExecutionProvider"]
    assert "CUDA was asked for" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="backends.onnx_runtime"):
        assert providers_for("auto") == ["CPUExecutionProvider"]
        assert providers_for("cpu") == ["CPUExecutionProvider"]
    assert caplog.text == ""
    with pytest.raises(ValueError, match="unknown ONNX device"):
        providers_for("tpu")


def test_cuda_is_preferred_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    assert providers_for("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers_for("cpu") == ["CPUExecutionProvider"]


def test_session_options() -> None:
    import onnxruntime

    so = session_options(threads=3, optimization="extended")
    assert so.intra_op_num_threads == 3 and so.inter_op_num_threads == 1
    assert so.graph_optimization_level == onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session_options().intra_op_num_threads == ort_backend.default_threads()
    with pytest.raises(ValueError, match="optimisation level"):
        session_options(optimization="max")  # type: ignore[arg-type]


def test_the_digest_covers_every_shard_and_the_index(tmp_path: Path) -> None:
    from refiner.model import RefinerModel, refiner_config

    torch.manual_seed(0)
    RefinerModel(refiner_config("tiny")).to(torch.bfloat16).save_pretrained(tmp_path, max_shard_size="10KB")
    shards = sorted(tmp_path.glob("model-*-of-*.safetensors"))
    index = tmp_path / "model.safetensors.index.json"
    assert len(shards) > 1 and index.is_file()
    before = ort_backend.weights_digest(tmp_path)
    index.write_text(index.read_text() + "\n")
    after_index = ort_backend.weights_digest(tmp_path)
    data = bytearray(shards[-1].read_bytes())
    data[-1] ^= 1  # one bit of one tensor in the last shard
    shards[-1].write_bytes(bytes(data))
    assert len({before, after_index, ort_backend.weights_digest(tmp_path)}) == 3
