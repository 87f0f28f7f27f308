"""Mask predictors: one protocol, several checkpoint families behind it.

A *mask predictor* maps ``input_ids`` and ``attention_mask`` of shape (B, L) to logits of
shape (B, L, V) for every position, and knows its mask token id. The sampler and the
editing primitives only ever see this protocol, so a stub returning fixed logits, the
native model, an ``AutoModelForMaskedLM``, a LLaDA checkpoint and a Dream checkpoint are
interchangeable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer

from backends.tokens import SpecialIds, special_ids
from backends.weights import check_weights
from refiner.model import MODEL_TYPE, RefinerModel

Kind = Literal["auto", "native", "masked_lm", "llada", "dream"]


@runtime_checkable
class MaskPredictor(Protocol):
    """Anything that predicts every position of a partly masked sequence."""

    mask_token_id: int
    max_length: int | None  # longest sequence the model accepts; None = unbounded

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) ids and (B, L) 0/1 mask -> (B, L, V) float logits."""
        ...


@dataclass
class HFMaskPredictor:
    """Adapter over a transformers model whose output has ``.logits``.

    ``shift`` handles Dream-style models, initialised from an AR model and trained so that
    the logits at position i predict token i + 1: shifting right by one aligns them with
    the position they fill (position 0 reuses its own logits; it is never a mask in practice).
    """

    model: torch.nn.Module
    mask_token_id: int
    max_length: int | None = None
    shift: bool = False
    pass_attention_mask: bool = True  # some remote-code models reject a 2-D mask
    name: str = "model"
    special: SpecialIds | None = None

    @torch.inference_mode()
    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self._check_length(input_ids)
        kwargs: dict[str, Any] = {}
        if self.pass_attention_mask and not bool(attention_mask.all()):
            kwargs["attention_mask"] = attention_mask
        logits: torch.Tensor = self.model(input_ids=input_ids, **kwargs).logits  # (B, L, V)
        if self.shift:
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits.float()

    def _check_length(self, input_ids: torch.Tensor) -> None:
        if self.max_length is not None and input_ids.shape[1] > self.max_length:
            raise ValueError(
                f"sequence of {input_ids.shape[1]} tokens exceeds the model's maximum "
                f"length ({self.max_length})"
            )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def supports_cache(self) -> bool:
        """Whether the model can run only the active positions against a context cache."""
        return hasattr(self.model, "predict_at") and not self.shift

    def predict_at(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
        cache: Any | None = None,
        build_cache: bool = False,
    ) -> tuple[torch.Tensor, Any | None]:
        """Logits at ``positions`` (B, P) only -> ((B, P, V), cache or None)."""
        if self.supports_cache:
            self._check_length(input_ids)
            logits, new = self.model.predict_at(  # type: ignore[operator]
                input_ids, attention_mask, positions, cache=cache, build_cache=build_cache
            )
            return logits.float(), new
        return logits_at(self, input_ids, attention_mask, positions), None


def logits_at(
    predictor: MaskPredictor, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor
) -> torch.Tensor:
    """Any predictor's logits at (B, P) ``positions``: the full pass, then a gather."""
    logits = predictor(input_ids, attention_mask)  # (B, L, V)
    return logits.gather(1, positions[..., None].expand(-1, -1, logits.shape[-1]))


def native_predictor(model: RefinerModel, name: str = "remask-refiner") -> HFMaskPredictor:
    """Wrap the native refiner model."""
    cfg = model.config
    if cfg.mask_token_id is None:
        raise ValueError("the refiner config has no mask_token_id")
    return HFMaskPredictor(
        model=model.train(False),
        mask_token_id=int(cfg.mask_token_id),
        max_length=int(cfg.max_position_embeddings),
        name=name,
        special=SpecialIds(
            mask=int(cfg.mask_token_id),
            pad=cfg.pad_token_id,
            eos=cfg.eos_token_id if isinstance(cfg.eos_token_id, int) else None,
            filler=cfg.filler_token_id,
        ),
    )


def detect_kind(path: str | Path) -> Kind:
    """Guess the checkpoint family from ``config.json`` (model_type and architectures)."""
    cfg_file = Path(path) / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"no config.json in model directory {str(path)!r}")
    cfg = json.loads(cfg_file.read_text())
    model_type = str(cfg.get("model_type", "")).lower()
    archs = " ".join(cfg.get("architectures") or []).lower()
    if model_type == MODEL_TYPE:
        return "native"
    if "llada" in model_type or "llada" in archs:
        return "llada"
    if "dream" in model_type or "dream" in archs:
        return "dream"
    return "masked_lm"


def load_predictor(
    path: str | Path,
    kind: Kind = "auto",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[HFMaskPredictor, Any]:
    """Load a mask predictor and its tokenizer from a local directory.

    ``kind="auto"`` reads ``config.json``: the native refiner, LLaDA-style and Dream-style
    checkpoints (both loaded with ``trust_remote_code``), else any ``AutoModelForMaskedLM``.
    The mask id always comes from the config or the tokenizer, never from a constant, and
    ``max_length`` from the config's ``max_position_embeddings``: the context the model was
    trained on, which no caller feeds it more of. Weights stored in another dtype or in
    shards are loaded and cast to ``dtype``. Raises ``FileNotFoundError`` for a missing
    directory, weights or shard, :class:`~backends.weights.WeightsError` (a ``ValueError``)
    naming a weight file that is corrupt or cut short.
    :func:`refiner.onnx_backend.load_onnx_predictor` runs the network in ONNX Runtime instead.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory {str(path)!r} does not exist")
    if kind == "auto":
        kind = detect_kind(path)
    remote = kind in ("llada", "dream")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=remote)
    except (OSError, ValueError):
        tokenizer = None  # a bare model directory; ids must then come from the config
    config = AutoConfig.from_pretrained(path, trust_remote_code=remote)
    special = special_ids(tokenizer, config)  # before loading weights: fail fast
    check_weights(path)  # a missing or broken weight file is named here, not in safetensors
    # weights may be stored in bfloat16 or float16 (and sharded): ``dtype`` casts them to the
    # compute dtype, float32 by default, as CPUs compute and the samplers compare in float32
    if kind in ("native", "masked_lm"):
        model = AutoModelForMaskedLM.from_pretrained(path, dtype=dtype)
    else:
        model = AutoModel.from_pretrained(path, trust_remote_code=True, dtype=dtype)
    model = model.to(device).eval()
    max_len = getattr(config, "max_position_embeddings", None) or getattr(
        config, "max_sequence_length", None
    )
    predictor = HFMaskPredictor(
        model=model,
        mask_token_id=special.mask,
        max_length=int(max_len) if max_len else None,
        shift=kind == "dream",
        name=path.name,
        special=special,
    )
    return predictor, tokenizer
