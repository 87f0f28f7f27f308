"""Loading the drafter from bfloat16 shards, and clear errors for broken weight files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from backends.weights import SAFETENSORS_INDEX, WeightsError
from drafter import Drafter
from tests.drafter.conftest import make_tokenizer, tiny_llama


def _save_bf16_shards(root: Path) -> torch.nn.Module:
    """A tiny drafter saved as bfloat16 in several shards; returns the float32 original."""
    tok = make_tokenizer()
    model = tiny_llama(len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(root, max_shard_size="12KB")
    tok.save_pretrained(root)
    return model


def _shards(root: Path) -> list[Path]:
    return sorted(root.glob("model-*-of-*.safetensors"))


def test_bf16_shards_load_as_float32_with_the_saved_weights(tmp_path: Path) -> None:
    original = _save_bf16_shards(tmp_path)
    assert len(_shards(tmp_path)) > 1 and (tmp_path / SAFETENSORS_INDEX).is_file()
    d = Drafter.from_pretrained(tmp_path)
    loaded = dict(d.model.named_parameters())
    assert {p.dtype for p in loaded.values()} == {torch.float32}
    for name, param in original.named_parameters():
        # equal to the original rounded to bfloat16: every tensor came from its shard
        assert torch.equal(loaded[name], param.detach().to(torch.bfloat16).float()), name
    assert d.generate("the cat").token_ids  # and it runs


def test_a_truncated_shard_is_named(tmp_path: Path) -> None:
    _save_bf16_shards(tmp_path)
    shard = _shards(tmp_path)[1]
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(WeightsError, match=rf"{shard.name}.*corrupt or was cut short"):
        Drafter.from_pretrained(tmp_path)


def test_a_missing_shard_is_named(tmp_path: Path) -> None:
    _save_bf16_shards(tmp_path)
    shard = _shards(tmp_path)[0]
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=rf"{shard.name}.*is missing.*lists it"):
        Drafter.from_pretrained(tmp_path)


def test_a_broken_index_and_a_garbage_file_are_named(tmp_path: Path) -> None:
    _save_bf16_shards(tmp_path)
    index = tmp_path / SAFETENSORS_INDEX
    text = index.read_text()
    index.write_text(text[: len(text) // 2])
    with pytest.raises(WeightsError, match=rf"{SAFETENSORS_INDEX}' cannot be read"):
        Drafter.from_pretrained(tmp_path)
    # an index that lists a tensor no shard holds: the save is incomplete
    data = json.loads(text)
    data["weight_map"]["model.extra.weight"] = _shards(tmp_path)[0].name
    index.write_text(json.dumps(data))
    with pytest.raises(WeightsError, match="lack 1 tensors.*model.extra.weight"):
        Drafter.from_pretrained(tmp_path)


def test_a_single_file_that_is_not_safetensors_and_no_weights_at_all(tmp_path: Path) -> None:
    tok = make_tokenizer()
    tiny_llama(len(tok)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"not safetensors at all")
    with pytest.raises(WeightsError, match=r"model\.safetensors.*corrupt"):
        Drafter.from_pretrained(tmp_path)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="no model weights"):
        Drafter.from_pretrained(tmp_path)
