"""Saved models: bf16 shards that load back to float32, the trained context, broken saves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from refiner.model import RefinerModel, refiner_config
from training.checkpoint import CheckpointError, check_saved_weights, weight_file_names
from training.loop import LoopConfig, save_final_model, save_model

LLAMA = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True)


def models() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [LlamaForCausalLM(LLAMA), RefinerModel(refiner_config("tiny", vocab_size=300))]


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("index", [0, 1], ids=["drafter", "refiner"])
def test_bf16_shards_load_back_as_float32(index: int, tmp_path: Path) -> None:
    model = models()[index]
    before = state(model)
    save_model(model, tmp_path, "bfloat16", "20KB")
    names = weight_file_names(tmp_path)
    shards = [n for n in names if n.startswith("model-")]
    assert "model.safetensors.index.json" in names and len(shards) >= 2
    assert all((tmp_path / n).stat().st_size <= 20_000 + 4096 for n in shards)
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"
    assert next(model.parameters()).dtype == torch.float32  # the trained model is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    loaded = type(model).from_pretrained(tmp_path, dtype=torch.float32)
    after = loaded.state_dict()
    assert after.keys() == before.keys()
    for key, value in after.items():
        assert value.dtype == torch.float32
        # exactly the bf16 rounding of the trained weights, nothing else
        assert torch.equal(value, before[key].to(torch.bfloat16).float()), key
        torch.testing.assert_close(value, before[key], rtol=2**-8, atol=0.0)


def test_float32_single_file(tmp_path: Path) -> None:
    model = models()[1]
    save_model(model, tmp_path, "float32", "15MB")
    assert weight_file_names(tmp_path) == ["model.safetensors"]
    loaded = RefinerModel.from_pretrained(tmp_path, dtype=torch.float32)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


class SavingTask:
    """Just what ``save_final_model`` calls."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def save_pretrained(self, directory: Path, dtype: str, max_shard_size: str) -> None:
        save_model(self.model, directory, dtype, max_shard_size)


def test_a_new_save_replaces_every_weight_file_of_the_old_one(tmp_path: Path) -> None:
    task: Any = SavingTask(models()[0])
    sharded = save_final_model(task, tmp_path, "bfloat16", "20KB")
    assert sharded["dtype"] == "bfloat16" and len(sharded["files"]) >= 3
    assert sharded["bytes"] == sum((tmp_path / n).stat().st_size for n in sharded["files"])
    single = save_final_model(task, tmp_path, "float32", "15MB")
    # no shard or index of the first save is left to be mixed with the new file
    assert weight_file_names(tmp_path) == ["model.safetensors"] == list(single["files"])
    assert single["bytes"] > sharded["bytes"]  # float32: twice the bytes of bfloat16
    assert (tmp_path / "config.json").is_file()


def test_save_dtype_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--save-dtype must be one of"):
        LoopConfig(out_dir=tmp_path, max_steps=1, save_dtype="int8").validate()
    assert LoopConfig(out_dir=tmp_path).seq_len == 512


def test_broken_saves_are_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no model weights in"):
        check_saved_weights(tmp_path)
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    model = models()[0]
    save_model(model, single, "bfloat16", "15MB")
    save_model(model, sharded, "bfloat16", "20KB")
    assert check_saved_weights(single) == [single / "model.safetensors"]
    assert len(check_saved_weights(sharded)) >= 2

    path = single / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut short, as by a crash or a full disk
    with pytest.raises(CheckpointError, match=f"'{path}' cannot be read"):
        check_saved_weights(single)
    path.write_bytes(b"not safetensors at all")
    with pytest.raises(CheckpointError, match=f"'{path}' cannot be read"):
        check_saved_weights(single)

    victim = next(p for p in sharded.iterdir() if p.name.startswith("model-00002-of-"))
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=f"'{victim}' is missing"):
        check_saved_weights(sharded)
    index = sharded / "model.safetensors.index.json"
    index.write_text("{not json")
    with pytest.raises(CheckpointError, match=f"'{index}' cannot be read"):
        check_saved_weights(sharded)


def test_a_shard_without_a_listed_tensor_is_refused(tmp_path: Path) -> None:
    save_model(models()[0], tmp_path, "bfloat16", "20KB")
    index = tmp_path / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    first = min(data["weight_map"].values())
    data["weight_map"]["model.layers.9.mlp.up_proj.weight"] = first
    index.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="lack 1 tensors .* model.layers.9.mlp.up_proj"):
        check_saved_weights(tmp_path)


def test_the_refiner_refuses_input_longer_than_its_context() -> None:
    model = RefinerModel(refiner_config("tiny", max_position_embeddings=16)).eval()
    ids = torch.zeros(1, 17, dtype=torch.long)
    for call in (lambda: model(input_ids=ids),
                 lambda: model.predict_at(ids, torch.ones_like(ids), torch.zeros(1, 1,
                                                                                 dtype=torch.long))):
        with pytest.raises(ValueError, match="17 tokens exceeds max_position_embeddings \\(16\\)"):
            call()
    logits, _ = model.predict_at(ids[:, :16], torch.ones(1, 16, dtype=torch.long),
                                 torch.tensor([[3]]))
    assert logits.shape == (1, 1, 64)
