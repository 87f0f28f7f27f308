"""The drafter's ONNX backend against PyTorch: logits through the seam, identical greedy drafts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from drafter import Drafter, GenerationParams
from drafter.generate import left_pad, positions_from_mask

pytest.importorskip("onnxruntime")
from drafter.onnx_backend import OnnxDrafter, load_drafter

PROMPTS = ["def parse(path):\n    with open(path) as fh:", "The licensee shall not", ""]


@pytest.fixture(scope="module")
def eager(drafter_dir: Path) -> Drafter:
    return load_drafter(drafter_dir, "torch")


@pytest.fixture(scope="module", params=["kv_cache", "full_prefix"])
def onnx(request: pytest.FixtureRequest, drafter_dir: Path, tmp_path_factory) -> OnnxDrafter:
    # each variant exports into its own copy: one model directory caches one export
    root = tmp_path_factory.mktemp(request.param)
    for f in drafter_dir.iterdir():
        if f.is_file():
            (root / f.name).write_bytes(f.read_bytes())
    d = load_drafter(root, "onnx", variant=request.param)
    assert isinstance(d, OnnxDrafter) and d.network.variant == request.param
    return d


def test_logits_and_cache_match_torch(eager: Drafter, onnx: OnnxDrafter) -> None:
    """A padded batch through the seam: prefill with full logits, then cached steps."""
    prompts = [eager.prompt_ids(p) for p in PROMPTS]
    ids, mask = left_pad(prompts, eager.pad_id)
    pos = positions_from_mask(mask)
    la, pa = eager.forward(ids, mask, pos, None)
    lb, pb = onnx.forward(ids, mask, pos, None)
    assert lb.shape == la.shape == (3, ids.shape[1], len(eager.tokenizer))
    real = mask.bool()  # padded positions see no keys at all: their logits mean nothing
    assert float((la - lb).abs()[real].max()) < 1e-3
    nxt = mask.sum(-1, keepdim=True)
    for _ in range(4):
        tok = la[:, -1:].argmax(-1)  # (B, 1)
        mask = torch.cat([mask, mask.new_ones(3, 1)], dim=1)
        la, pa = eager.forward(tok, mask, nxt, pa, last_only=True)
        lb, pb = onnx.forward(tok, mask, nxt, pb, last_only=True)
        assert lb.shape == (3, 1, la.shape[-1])
        assert float((la - lb).abs().max()) < 1e-3
        nxt = nxt + 1


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_drafts_are_identical(eager: Drafter, onnx: OnnxDrafter, prompt: str) -> None:
    params = GenerationParams(max_new_tokens=24)
    a, b = eager.generate(prompt, params), onnx.generate(prompt, params)
    assert len(a.token_ids) > 0
    assert b.token_ids == a.token_ids and b.text == a.text
    assert b.finish_reason == a.finish_reason
    assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-3


def test_batched_and_streamed_drafts_are_identical(eager: Drafter, onnx: OnnxDrafter) -> None:
    params = GenerationParams(max_new_tokens=12)
    a = eager.generate_batch(PROMPTS, params)
    b = onnx.generate_batch(PROMPTS, params)
    assert [d.token_ids for d in b] == [d.token_ids for d in a]
    streamed = [t.id for t in onnx.stream(PROMPTS[0], params)]
    assert streamed == a[0].token_ids


def test_scores_match(eager: Drafter, onnx: OnnxDrafter) -> None:
    text = "The licensee shall not disclose confidential information."
    a, b = eager.score(text), onnx.score(text)
    assert b.token_ids == a.token_ids
    assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-3


def test_weights_are_released(onnx: OnnxDrafter) -> None:
    """The session holds the weights; the torch copy only keeps the config."""
    assert all(p.device.type == "meta" for p in onnx.model.parameters())
    assert onnx.device == torch.device("cpu") and onnx.providers == ["CPUExecutionProvider"]


def test_unknown_backend_is_refused(drafter_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        load_drafter(drafter_dir, "tensorrt")  # type: ignore[arg-type]
