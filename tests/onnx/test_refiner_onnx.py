"""The refiner's ONNX mask predictor against PyTorch: logits, the protocol, the sampler."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from refiner.predictor import HFMaskPredictor, MaskPredictor, load_predictor
from refiner.sampler import SamplerConfig, denoise
from refiner.text import TextRefiner

pytest.importorskip("onnxruntime")
from refiner.onnx_backend import OnnxMaskPredictor, load_onnx_predictor, onnx_predictor

VOCAB, MASK = 64, 63  # the tiny preset


@pytest.fixture(scope="module")
def pair(refiner_dir: Path) -> tuple[HFMaskPredictor, OnnxMaskPredictor]:
    eager, _ = load_predictor(refiner_dir)
    onnx, _ = load_onnx_predictor(refiner_dir)
    return eager, onnx


def _inputs(batch: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (batch, length), generator=gen)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[-1, max(1, length - 1 - length // 3) :] = 0  # the last row ends in padding
    return ids, mask


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("length", [5, 17, 64])
def test_logits_match_torch(pair, batch: int, length: int) -> None:
    eager, onnx = pair
    ids, mask = _inputs(batch, length, seed=batch * 100 + length)
    got, want = onnx(ids, mask), eager(ids, mask)
    assert got.shape == (batch, length, VOCAB) and got.dtype == torch.float32
    assert float((got - want).abs().max()) < 1e-3
    # the mask is honoured, not ignored: unpadded input gives other logits on the padded row
    if mask[-1].sum() < length:
        assert not torch.allclose(onnx(ids, torch.ones_like(mask))[-1], got[-1], atol=1e-4)


def test_satisfies_the_protocol(pair) -> None:
    _, onnx = pair
    assert isinstance(onnx, MaskPredictor)
    assert onnx.mask_token_id == MASK and onnx.max_length == 256
    assert onnx.special is not None and onnx.special.pad == 62
    assert onnx.providers == ["CPUExecutionProvider"]


def test_too_long_input_is_refused(pair) -> None:
    _, onnx = pair
    with pytest.raises(ValueError, match="maximum length"):
        onnx(torch.zeros(1, 300, dtype=torch.long), torch.ones(1, 300, dtype=torch.long))


def test_dream_shift_is_applied(pair, refiner_dir: Path) -> None:
    eager, _ = pair
    shifted = HFMaskPredictor(model=eager.model, mask_token_id=MASK, shift=True)
    onnx = onnx_predictor(shifted, refiner_dir)  # same network: the cached export is reused
    ids, mask = _inputs(2, 9, seed=7)
    assert float((onnx(ids, mask) - shifted(ids, mask)).abs().max()) < 1e-3


def test_denoise_gives_the_same_text(pair) -> None:
    eager, onnx = pair
    ids, mask = _inputs(3, 24, seed=3)
    editable = torch.zeros_like(ids, dtype=torch.bool)
    editable[:, 4:12] = True
    ids[editable] = MASK
    config = SamplerConfig(steps=8)
    a = denoise(eager, ids, editable, mask, config)
    b = denoise(onnx, ids, editable, mask, config)
    assert torch.equal(a.ids, b.ids) and a.nfe == b.nfe


def test_providers_are_logged(refiner_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="backends.onnx_runtime"):
        load_onnx_predictor(refiner_dir)
    assert any("providers ['CPUExecutionProvider']" in r.getMessage() for r in caplog.records)


def test_unknown_backend_is_refused(refiner_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        TextRefiner.from_pretrained(refiner_dir, backend="tensorrt")  # type: ignore[arg-type]
