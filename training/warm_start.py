"""Warm-start the refiner from a trained drafter: same shape, same tokenizer, its weights.

The refiner (:class:`refiner.model.RefinerModel`) and the drafter (a transformers
``LlamaForCausalLM``) of one preset are the same transformer: RMSNorm, rotary positions
with the same rotate-half convention, SwiGLU, tied embeddings. They differ in the attention
mask (none against causal) and in how two projections are stored (q, k, v fused into one
``qkv``; gate and up fused into ``gate_up``). So a drafter's weights load into a refiner
exactly, and with a causal mask the refiner then computes the drafter's logits. Training
the refiner from there (as DiffuLLaMA and Dream do at scale) starts from a model that
already knows the tokens and much of the syntax instead of from noise; it only has to
learn to use the right-hand context and to fill masks.

:func:`refiner_from_drafter` does the conversion and refuses what cannot be converted:
another tokenizer (the ids would mean other strings), grouped-query attention, another
head size or rotary base, a model that is not a Llama.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from backends.tokens import special_ids
from refiner.model import RefinerConfig, RefinerModel
from training.checkpoint import check_saved_weights
from training.data import tokenizer_hash
from training.tokenizer import load_tokenizer

INFO_FILE = "training.json"  # the drafter run's figures (training.loop.INFO_FILE)
# fields a refiner shares with the drafter it starts from; overrides may not change them
SHAPE_KEYS: tuple[str, ...] = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "rope_theta", "rms_norm_eps",
)


def _refuse(root: Path, why: str) -> ValueError:
    return ValueError(f"--init-from: the model in {root} cannot warm-start a refiner: {why}")


def drafter_shape(root: Path, config: LlamaConfig) -> dict[str, Any]:
    """The refiner fields of a Llama drafter's config; ``ValueError`` for what differs."""
    heads = config.num_attention_heads
    if config.num_key_value_heads != heads:
        raise _refuse(root, f"num_key_value_heads ({config.num_key_value_heads}) != "
                      f"num_attention_heads ({heads}); the refiner has no grouped-query "
                      "attention")
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    if head_dim * heads != config.hidden_size:
        raise _refuse(root, f"head_dim {head_dim} x {heads} heads != hidden_size "
                      f"{config.hidden_size}; the refiner's head_dim is hidden_size / heads")
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise _refuse(root, f"rope_type {rope.get('rope_type')!r}; the refiner has plain "
                      "rotary positions")
    theta = rope.get("rope_theta", getattr(config, "rope_theta", None))
    if theta is None:
        raise _refuse(root, "its config names no rope_theta")
    for flag in ("attention_bias", "mlp_bias"):
        if getattr(config, flag, False):
            raise _refuse(root, f"{flag} is set; the refiner's projections have no bias")
    if config.hidden_act != "silu":
        raise _refuse(root, f"hidden_act {config.hidden_act!r}; the refiner's MLP is SwiGLU")
    if not config.tie_word_embeddings:
        raise _refuse(root, "its output layer is not tied to the embeddings; the refiner's is")
    return {
        "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers, "num_attention_heads": heads,
        "rope_theta": float(theta), "rms_norm_eps": config.rms_norm_eps,
        "max_position_embeddings": config.max_position_embeddings,
        "tie_word_embeddings": True,
    }


def refiner_state_dict(llama: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """A Llama drafter's state dict renamed and fused into the refiner's layout."""
    out = {
        "embed_tokens.weight": llama["model.embed_tokens.weight"],
        "norm.weight": llama["model.norm.weight"],
        "lm_head.weight": llama["model.embed_tokens.weight"],  # tied
    }
    for i in range(layers):
        src, dst = f"model.layers.{i}.", f"layers.{i}."
        attn, mlp = src + "self_attn.", src + "mlp."
        # (3C, C): the refiner splits qkv(x) into q, k, v in this order
        out[dst + "attn.qkv.weight"] = torch.cat(
            [llama[attn + f"{p}_proj.weight"] for p in ("q", "k", "v")], dim=0)
        out[dst + "attn.o_proj.weight"] = llama[attn + "o_proj.weight"]
        # (2I, C): SwiGLU.forward chunks gate_up(x) into gate, then up
        out[dst + "mlp.gate_up.weight"] = torch.cat(
            [llama[mlp + "gate_proj.weight"], llama[mlp + "up_proj.weight"]], dim=0)
        out[dst + "mlp.down.weight"] = llama[mlp + "down_proj.weight"]
        out[dst + "attn_norm.weight"] = llama[src + "input_layernorm.weight"]
        out[dst + "mlp_norm.weight"] = llama[src + "post_attention_layernorm.weight"]
    return out


def refiner_from_drafter(
    drafter_dir: str | Path, tokenizer_dir: str | Path | None = None, **overrides: Any
) -> RefinerModel:
    """A float32 refiner holding the drafter's weights, of the drafter's shape.

    ``tokenizer_dir`` (default: the drafter's folder) gives the mask and filler ids, and
    must hold the very tokenizer the drafter was trained with (same ``tokenizer.json``
    sha256). ``overrides`` set other config fields (``max_position_embeddings``: the new
    training context); one that changes the shape is refused. Raises
    ``FileNotFoundError`` for a folder with no drafter or a missing weight file and
    ``ValueError`` naming what cannot be converted or read.
    """
    root = Path(drafter_dir)
    if not (root / "config.json").is_file():
        raise FileNotFoundError(f"--init-from: no drafter (config.json) in {root}")
    tokenizer_dir = Path(tokenizer_dir) if tokenizer_dir is not None else root
    if tokenizer_hash(root) != tokenizer_hash(tokenizer_dir):
        raise _refuse(root, f"it was trained with another tokenizer than {tokenizer_dir} "
                      "(tokenizer.json differs); its token ids would mean other strings")
    try:
        model_type = json.loads((root / "config.json").read_text(encoding="utf-8"))["model_type"]
        config = LlamaConfig.from_pretrained(root)
    except (OSError, ValueError, KeyError) as exc:
        raise _refuse(root, f"its config.json cannot be read ({exc!r})") from exc
    if model_type != "llama":
        raise _refuse(root, f"it is a {model_type!r} model, not a Llama drafter")
    shape = drafter_shape(root, config)
    differs = sorted(k for k in SHAPE_KEYS if k in overrides and overrides[k] != shape[k])
    if differs:
        raise _refuse(root, f"the refiner would differ from it in {differs}")
    tokenizer = load_tokenizer(tokenizer_dir)
    if len(tokenizer) != shape["vocab_size"]:
        raise _refuse(root, f"its vocabulary has {shape['vocab_size']} ids, the tokenizer "
                      f"{len(tokenizer)}")
    ids = special_ids(tokenizer)
    if ids.filler is None:
        raise ValueError("the tokenizer has no filler token; the refiner needs one")
    check_saved_weights(root)  # names a missing, cut-short or unreadable weight file
    try:
        drafter = LlamaForCausalLM.from_pretrained(root, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise _refuse(root, f"its weights cannot be loaded ({exc})") from exc
    fields = shape | {"mask_token_id": ids.mask, "filler_token_id": ids.filler,
                      "pad_token_id": ids.pad, "eos_token_id": ids.eos}
    model = RefinerModel(RefinerConfig(**(fields | overrides)))
    state = refiner_state_dict(drafter.state_dict(), shape["num_hidden_layers"])
    model.load_state_dict(state, strict=True)
    return model


def init_record(model_dir: str | Path) -> dict[str, Any]:
    """What ``training.json`` records of the model a run started from.

    The path, and from that model's own ``training.json`` (when it has one) its task,
    preset, corpus and tokenizer hashes and the steps and tokens it was trained for, so a
    warm-started model's history can be traced back.
    """
    root = Path(model_dir)
    record: dict[str, Any] = {"path": str(root), "task": None, "preset": None,
                              "corpus_sha256": None, "tokenizer_sha256": None,
                              "steps": None, "tokens_seen": None}
    info_path = root / INFO_FILE
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"--init-from: {info_path} cannot be read ({exc})") from exc
        data = info.get("data") or {}
        record |= {"task": info.get("task"), "preset": info.get("preset"),
                   "corpus_sha256": data.get("corpus_sha256"),
                   "tokenizer_sha256": data.get("tokenizer_sha256"),
                   "steps": info.get("steps"), "tokens_seen": info.get("tokens_seen")}
    return record
