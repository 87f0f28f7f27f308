"""The refiner's export: attention as ONNX Runtime's fused MultiHeadAttention node, no no-op casts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("onnxruntime")
import onnx

from backends.onnx_runtime import open_session, run_session, trace_to_onnx
from refiner.model import RefinerModel, refiner_config
from refiner.onnx_attention import fused_attention
from refiner.onnx_backend import export_meta, load_onnx_predictor
from refiner.predictor import load_predictor

VOCAB = 64  # the tiny preset
HEADS = 3


def _ops(path: Path) -> list[str]:
    return [node.op_type for node in onnx.load(str(path)).graph.node]


def test_each_layer_exports_one_fused_attention_node(refiner_dir: Path) -> None:
    load_onnx_predictor(refiner_dir)
    ops = _ops(refiner_dir / "onnx" / "model.onnx")
    layers = refiner_config("tiny").num_hidden_layers
    assert ops.count("MultiHeadAttention") == layers
    # nothing left of the unfused form: no score matrix softmax, no NaN guard
    assert "Softmax" not in ops and "IsNaN" not in ops


def test_the_logits_leave_the_graph_without_a_copy(refiner_dir: Path) -> None:
    load_onnx_predictor(refiner_dir)
    graph = onnx.load(str(refiner_dir / "onnx" / "model.onnx")).graph
    (producer,) = [n for n in graph.node if "logits" in n.output]
    assert producer.op_type == "MatMul"  # the output projection, not a float32 -> float32 Cast


def _holey_mask(batch: int, length: int) -> torch.Tensor:
    """Row 0 unpadded; the others with padding on the right, on the left and in the middle,
    each row a different amount: a mask taken as lengths or as one row's would fail."""
    mask = torch.ones(batch, length, dtype=torch.long)
    for row in range(1, batch):
        cut = 3 * row
        if row % 3 == 1:
            mask[row, length - cut :] = 0
        elif row % 3 == 2:
            mask[row, :cut] = 0
        else:
            mask[row, cut : 2 * cut] = 0
    return mask


def test_padded_rows_match_eager_wherever_the_padding_is(refiner_dir: Path) -> None:
    eager, _ = load_predictor(refiner_dir)
    onnx_predictor, _ = load_onnx_predictor(refiner_dir)
    gen = torch.Generator().manual_seed(5)
    ids = torch.randint(0, VOCAB, (5, 96), generator=gen)
    mask = _holey_mask(5, 96)
    got, want = onnx_predictor(ids, mask), eager(ids, mask)
    assert float((got - want).abs().max()) < 1e-3
    for row in range(1, 5):  # each row's own padding is applied, not another row's
        alone = eager(ids[row : row + 1], mask[row : row + 1])
        assert float((got[row] - alone[0]).abs().max()) < 1e-3


def test_eager_forward_of_the_fused_function_is_the_models_attention() -> None:
    torch.manual_seed(0)
    model = RefinerModel(refiner_config("tiny")).eval()
    attn = model.layers[0].attn
    q, k, v = (torch.randn(2, 4, 7, 8) for _ in range(3))
    key_mask = torch.ones(2, 1, 1, 7, dtype=torch.bool)
    key_mask[1, ..., 5:] = False
    with torch.no_grad():
        fused = attn.o_proj(fused_attention(q, k, v, key_mask, attn.n_head))
        assert torch.equal(fused, attn.attend(q, k, v, key_mask))


class _Unmasked(nn.Module):
    """The fused function with no key mask, as a model without padding would call it."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = fused_attention(q, k, v, None, HEADS)
        return out


def test_without_a_key_mask_every_key_is_attended(tmp_path: Path) -> None:
    path = tmp_path / "attention.onnx"
    q, k, v = (torch.randn(2, HEADS, 9, 16) for _ in range(3))
    dynamic = {0: "batch", 2: "seq"}
    trace_to_onnx(_Unmasked(), (q, k, v), path, ("q", "k", "v"), ("y",), {"q": dynamic, "k": dynamic, "v": dynamic})
    assert _ops(path).count("MultiHeadAttention") == 1
    q, k, v = (torch.randn(1, HEADS, 20, 16) for _ in range(3))  # other batch and length
    (got,) = run_session(open_session(path, announce=False), {"q": q, "k": k, "v": v})
    want = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(1, 20, 48)
    assert float((got - want).abs().max()) < 1e-5


def test_other_architectures_keep_standard_attention(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llada"}))
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    assert export_meta(tmp_path).attention == "standard"
