"""ONNX Runtime backend for the refiner's mask predictor.

The exported graph is the predictor's network: ``input_ids`` and ``attention_mask`` (B, L)
int64 in, ``logits`` (B, L, V) float32 out, with batch and length dynamic. Everything around
it (the length check, the Dream shift, special ids) stays in Python in
:class:`OnnxMaskPredictor`, which satisfies the :class:`~refiner.predictor.MaskPredictor`
protocol, so the sampler and the editing code cannot tell the two backends apart.

Attention is exported as ONNX Runtime's fused ``com.microsoft.MultiHeadAttention`` node (see
:mod:`refiner.onnx_attention`): written with standard ops it computed the whole score matrix
op by op and made long inputs slow. Models other than the native refiner keep whatever their
tracing gives.

Tracing freezes Python branches at the values of the example input. Models commonly skip
their attention mask when it is all ones (the native refiner does), so the example input
always has padding: the traced graph then always applies the mask, which is exact for unpadded
inputs too. Each new export is compared with eager PyTorch on probe inputs before it is cached.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backends.onnx_runtime import (
    MODEL_FILE,
    Device,
    ExportMeta,
    OptLevel,
    cached_export,
    drop_no_op_casts,
    export_dir,
    is_fresh,
    open_session,
    run_session,
    trace_to_onnx,
    weights_digest,
)
from backends.tokens import SpecialIds
from refiner.model import MODEL_TYPE
from refiner.onnx_attention import ORT_DOMAIN
from refiner.predictor import HFMaskPredictor, Kind, load_predictor

log = logging.getLogger(__name__)

KIND = "refiner"
VARIANT = "mask_predictor"  # (input_ids, attention_mask) -> logits, unshifted
FUSED_ATTENTION = f"{ORT_DOMAIN}.MultiHeadAttention"  # the native refiner's (refiner.onnx_attention)
PARITY_ATOL = 1e-3  # float32 ONNX vs eager; observed differences are ~1e-6


class _LogitsGraph(nn.Module):
    """What gets traced: the wrapped model's logits as float32, nothing else."""

    def __init__(self, model: nn.Module, pass_attention_mask: bool) -> None:
        super().__init__()
        self.model = model
        self.pass_attention_mask = pass_attention_mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pass_attention_mask:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        else:
            out = self.model(input_ids=input_ids)
        logits: torch.Tensor = out.logits  # (B, L, V)
        return logits.float()  # a no-op cast for float32 models: dropped after tracing


def _probe_inputs(
    vocab_size: int, batch: int, length: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids and a mask in which row r > 0 ends in 2r padding positions (capped so that
    every row keeps a real token)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (batch, length), generator=gen)
    mask = torch.ones(batch, length, dtype=torch.long)
    for row in range(1, batch):
        mask[row, max(1, length - 2 * row) :] = 0
    return ids, mask


def _vocab_size(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    return int(getattr(config, "vocab_size", 0) or 0) or 32


def export_predictor(predictor: HFMaskPredictor, path: Path) -> None:
    """Trace ``predictor``'s network to ``path`` and check it against eager on probe inputs.

    Raises ``RuntimeError`` if the exported graph disagrees with PyTorch (a model whose
    forward has a data-dependent branch the tracer cannot capture).
    """
    model = predictor.model
    if next(model.parameters()).dtype != torch.float32 or predictor.device.type != "cpu":
        model = copy.deepcopy(model).float().cpu()  # export in float32 on the CPU; the
        # caller's model keeps its dtype and device
    model.eval()
    graph = _LogitsGraph(model, predictor.pass_attention_mask).eval()
    vocab = _vocab_size(model)
    example = _probe_inputs(vocab, batch=2, length=8, seed=0)  # row 1 padded: see module doc
    dynamic = {0: "batch", 1: "seq"}
    trace_to_onnx(
        graph,
        example,
        path,
        input_names=("input_ids", "attention_mask"),
        output_names=("logits",),
        dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "logits": dynamic},
    )
    drop_no_op_casts(path)
    session = open_session(path, "cpu", announce=False)
    for batch, length in ((1, 5), (3, 13)):
        ids, mask = _probe_inputs(vocab, batch, length, seed=batch)
        with torch.inference_mode():
            expected = graph(ids, mask)
        (got,) = run_session(session, {"input_ids": ids, "attention_mask": mask})
        diff = float((got - expected).abs().max())
        if not diff < PARITY_ATOL * max(1.0, float(expected.abs().max())):
            raise RuntimeError(
                f"ONNX export of {predictor.name!r} disagrees with PyTorch on a ({batch}, "
                f"{length}) probe: max abs difference {diff:.3g}"
            )


def export_meta(model_dir: str | os.PathLike[str]) -> ExportMeta:
    """The metadata a fresh refiner export of ``model_dir`` must carry."""
    return ExportMeta(kind=KIND, variant=VARIANT, source_sha256=weights_digest(model_dir),
                      attention=_attention(model_dir))


def _attention(model_dir: str | os.PathLike[str]) -> str:
    """How the checkpoint's attention is exported: fused for the native refiner, whatever
    tracing gives ("standard" ops) for other architectures."""
    try:
        model_type = json.loads((Path(model_dir) / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return "standard"
    return FUSED_ATTENTION if model_type == MODEL_TYPE else "standard"


def ensure_export(
    predictor: HFMaskPredictor, model_dir: str | os.PathLike[str], *, force: bool = False
) -> Path:
    """Path of a fresh export of ``predictor`` (loaded from ``model_dir``), built if needed."""
    return cached_export(
        model_dir, export_meta(model_dir), lambda p: export_predictor(predictor, p), force=force
    )


@dataclass
class OnnxMaskPredictor:
    """A :class:`~refiner.predictor.MaskPredictor` running an exported graph in ONNX Runtime.

    Logits come back as float32 on the device of ``input_ids``.
    """

    session: Any  # onnxruntime.InferenceSession
    mask_token_id: int
    max_length: int | None = None
    shift: bool = False  # Dream-style: logits at i predict i + 1 (see HFMaskPredictor)
    name: str = "model"
    special: SpecialIds | None = None
    providers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.providers = list(self.session.get_providers())

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) ids and (B, L) 0/1 mask -> (B, L, V) float32 logits."""
        if self.max_length is not None and input_ids.shape[1] > self.max_length:
            raise ValueError(
                f"sequence of {input_ids.shape[1]} tokens exceeds the model's maximum "
                f"length ({self.max_length})"
            )
        feeds = {"input_ids": input_ids.long(), "attention_mask": attention_mask.long()}
        (logits,) = run_session(self.session, feeds)  # (B, L, V)
        if self.shift:
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits.to(input_ids.device)

    @property
    def device(self) -> torch.device:
        """Where the logits are returned (the session itself may run on CUDA)."""
        return torch.device("cpu")


def onnx_predictor(
    predictor: HFMaskPredictor,
    model_dir: str | os.PathLike[str],
    device: Device | str = "cpu",
    *,
    threads: int | None = None,
    optimization: OptLevel = "all",
    force: bool = False,
) -> OnnxMaskPredictor:
    """The ONNX twin of a loaded torch predictor: exports it next to its weights if the
    cached export is missing or stale, then opens a session (CUDA when asked and present)."""
    path = ensure_export(predictor, model_dir, force=force)
    session = open_session(path, _ort_device(device), threads=threads, optimization=optimization)
    return OnnxMaskPredictor(
        session=session,
        mask_token_id=predictor.mask_token_id,
        max_length=predictor.max_length,
        shift=predictor.shift,
        name=predictor.name,
        special=predictor.special,
    )


def load_onnx_predictor(
    path: str | os.PathLike[str], kind: Kind = "auto", device: Device | str = "cpu"
) -> tuple[OnnxMaskPredictor, Any]:
    """:func:`~refiner.predictor.load_predictor`, run in ONNX Runtime from an export cached in
    ``<path>/onnx`` (built from the torch weights when missing or stale)."""
    # ONNX only traces the torch model: it stays on the CPU, ORT picks the device
    predictor, tokenizer = load_predictor(Path(path), kind=kind, device="cpu")
    return onnx_predictor(predictor, path, device=str(device)), tokenizer


def export_model_dir(model_dir: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Export the refiner checkpoint in ``model_dir`` (the ``remask export-onnx`` command)."""
    if not force and Path(model_dir).is_dir() and is_fresh(model_dir, export_meta(model_dir)):
        return export_dir(model_dir) / MODEL_FILE
    predictor, _ = load_predictor(Path(model_dir))
    return ensure_export(predictor, model_dir, force=force)


def _ort_device(device: Device | str | torch.device) -> str:
    """Map a torch-style device ("cuda:0", torch.device) onto the ONNX device names."""
    name = str(device)
    return "cuda" if name.startswith("cuda") else name
