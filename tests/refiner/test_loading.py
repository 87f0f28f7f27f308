"""Loading the refiner from bfloat16 shards, and clear errors for broken weight files."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from backends.weights import SAFETENSORS_INDEX, WeightsError
from refiner.model import RefinerModel, refiner_config
from refiner.predictor import load_predictor


def _save_bf16_shards(root: Path, dtype: torch.dtype = torch.bfloat16) -> RefinerModel:
    """A tiny refiner (trained context 48) saved in ``dtype`` as several shards."""
    torch.manual_seed(0)
    model = RefinerModel(refiner_config("tiny", max_position_embeddings=48))
    copy.deepcopy(model).to(dtype).save_pretrained(root, max_shard_size="10KB")
    return model


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_shards_load_as_float32(tmp_path: Path, dtype: torch.dtype) -> None:
    original = _save_bf16_shards(tmp_path, dtype)
    assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) > 1
    pred, tokenizer = load_predictor(tmp_path)
    assert tokenizer is None  # a bare model directory: ids come from the config
    loaded = dict(pred.model.named_parameters())
    assert {p.dtype for p in loaded.values()} == {torch.float32}
    for name, param in original.named_parameters():
        assert torch.equal(loaded[name], param.detach().to(dtype).float()), name
    assert pred.max_length == 48  # the trained context, from the config
    ids = torch.randint(0, 60, (1, 48))
    logits = pred(ids, torch.ones_like(ids))
    assert logits.dtype == torch.float32 and logits.shape == (1, 48, 64)


def test_a_truncated_shard_is_named(tmp_path: Path) -> None:
    _save_bf16_shards(tmp_path)
    shard = max(tmp_path.glob("model-*-of-*.safetensors"))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(WeightsError, match=rf"{shard.name}.*corrupt or was cut short"):
        load_predictor(tmp_path)


def test_a_missing_shard_and_missing_weights_are_named(tmp_path: Path) -> None:
    _save_bf16_shards(tmp_path)
    shard = min(tmp_path.glob("model-*-of-*.safetensors"))
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=rf"{shard.name}.*is missing.*{SAFETENSORS_INDEX}"):
        load_predictor(tmp_path)
    for path in tmp_path.glob("model*"):
        path.unlink()
    with pytest.raises(FileNotFoundError, match="no model weights"):
        load_predictor(tmp_path)
