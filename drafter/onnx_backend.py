"""ONNX Runtime backend for the drafter, plugged in through the network seam.

Generation, FIM and scoring only ever call :meth:`drafter.model.Drafter.forward`; this module
supplies another implementation of that one method. Two graph variants exist:

* ``"kv_cache"`` (the default): ``input_ids``, ``position_ids`` (B, T), ``attention_mask``
  (B, P + T), ``logits_to_keep`` (K,) and ``past_key_values.{i}.key|value`` (B, kv_heads, P,
  head_dim) in; ``logits`` (B, K, V) and ``present.{i}.key|value`` (B, kv_heads, P + T,
  head_dim) out. The prompt goes in with P = 0, then one token per step.
* ``"full_prefix"``: no cache at all; every step re-runs the whole sequence. Simpler graph and
  no cache traffic, paid for with O(length) work per token. ``bench/drafter.py --variants``
  measures both; the cache wins even for short drafts after short prompts (``DEFAULT_VARIANT``).

``logits_to_keep`` holds the positions whose logits are wanted (the last one while drafting,
all of them when scoring): at a large vocabulary the LM head over a whole prompt costs more
than the rest of the network. It is the transformers argument of the same name, given as
indices; models without it return every position and the slice happens here.
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedModel

from backends import Backend
from backends.onnx_runtime import (
    MODEL_FILE,
    Device,
    ExportMeta,
    OptLevel,
    cached_export,
    export_dir,
    is_fresh,
    open_session,
    run_session,
    trace_to_onnx,
    weights_digest,
)
from drafter.generate import positions_from_mask
from drafter.model import Drafter

log = logging.getLogger(__name__)

KIND = "drafter"
Variant = Literal["kv_cache", "full_prefix"]
# `remask bench drafter --variants --threads 1`, default-shaped drafter, tokens/s for 16 / 64
# new tokens: 8-token prompt, full_prefix 68 / 39 against kv_cache 131 / 126; 64-token
# prompt, 26 / 20 against 131 / 163. Re-running the prefix never pays at these lengths.
DEFAULT_VARIANT: Variant = "kv_cache"
PARITY_ATOL = 1e-3


def _kv_layout(model: PreTrainedModel) -> list[tuple[int, int]]:
    """(kv_heads, head_dim) of every layer's cache, read from one probe forward pass."""
    with torch.inference_mode():
        out = model(input_ids=torch.zeros(1, 2, dtype=torch.long), use_cache=True)
    cache = out.past_key_values
    layers = getattr(cache, "layers", None)
    if not layers or any(getattr(layer, "keys", None) is None for layer in layers):
        raise ValueError(
            f"{type(model).__name__} does not keep a transformers DynamicCache of keys and "
            "values; export it with variant='full_prefix'"
        )
    return [(int(layer.keys.shape[1]), int(layer.keys.shape[3])) for layer in layers]


def _past_names(n_layers: int, prefix: str = "past_key_values") -> list[str]:
    return [f"{prefix}.{i}.{kv}" for i in range(n_layers) for kv in ("key", "value")]


class _DrafterGraph(nn.Module):
    """What gets traced: logits at ``logits_to_keep`` (and the new cache for ``kv_cache``)."""

    def __init__(self, model: PreTrainedModel, variant: Variant, keeps_logits: bool) -> None:
        super().__init__()
        self.model = model
        self.variant = variant
        self.keeps_logits = keeps_logits

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        logits_to_keep: torch.Tensor,
        *past: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        cache = None
        if self.variant == "kv_cache":
            pairs = list(zip(past[0::2], past[1::2]))
            cache = DynamicCache(ddp_cache_data=pairs, config=self.model.config)
        extra = {"logits_to_keep": logits_to_keep} if self.keeps_logits else {}
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=cache is not None,
            **extra,
        )
        logits = out.logits.float()  # (B, K, V), or (B, T, V) without logits_to_keep
        if cache is None:
            return (logits,)
        present = [t for layer in out.past_key_values.layers for t in (layer.keys, layer.values)]
        return (logits, *present)


def _example(
    layout: list[tuple[int, int]], vocab: int, batch: int, past: int, new: int, seed: int
) -> tuple[torch.Tensor, ...]:
    """Left-padded inputs like generation builds them: row 0 full, later rows padded."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, past + new, dtype=torch.long)
    for row in range(1, batch):
        mask[row, : min(row * 2, past + new - 1)] = 0
    ids = torch.randint(0, vocab, (batch, new), generator=gen)
    positions = positions_from_mask(mask)[:, past:]
    keep = torch.arange(new)
    kv = [
        torch.randn(batch, heads, past, dim, generator=gen)
        for heads, dim in layout
        for _ in ("key", "value")
    ]
    return (ids, mask, positions, keep, *kv)


def export_drafter(model: PreTrainedModel, path: Path, variant: Variant = DEFAULT_VARIANT) -> None:
    """Trace the drafter's network to ``path`` and check it against eager on probe inputs."""
    if next(model.parameters()).dtype != torch.float32 or model.device.type != "cpu":
        # export in float32 on the CPU; the caller's model keeps its dtype and device
        model = copy.deepcopy(model).float().cpu()  # type: ignore[no-untyped-call]  # transformers' override
    model.train(False)
    keeps = "logits_to_keep" in inspect.signature(model.forward).parameters
    layout = _kv_layout(model) if variant == "kv_cache" else []
    graph = _DrafterGraph(model, variant, keeps).eval()
    vocab = int(model.config.get_text_config(decoder=True).vocab_size)
    inputs = ["input_ids", "attention_mask", "position_ids", "logits_to_keep"]
    outputs = ["logits"]
    axes: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "new"},
        "attention_mask": {0: "batch", 1: "total"},
        "position_ids": {0: "batch", 1: "new"},
        "logits_to_keep": {0: "kept"},
        "logits": {0: "batch", 1: "kept" if keeps else "new"},
    }
    for name in _past_names(len(layout)):
        inputs.append(name)
        axes[name] = {0: "batch", 2: "past"}
    for name in _past_names(len(layout), "present"):
        outputs.append(name)
        axes[name] = {0: "batch", 2: "total"}
    # a non-empty past and a padded row: the tracer must see the general case (module doc)
    past = 3 if variant == "kv_cache" else 0
    trace_to_onnx(graph, _example(layout, vocab, 2, past, 4, 0), path, inputs, outputs, axes)
    session = open_session(path, "cpu", announce=False)
    probes = [(1, 0, 5), (3, 0, 7)] + ([(3, 6, 1), (2, 5, 3)] if variant == "kv_cache" else [])
    for batch, p, new in probes:
        example = _example(layout, vocab, batch, p, new, seed=batch + p)
        with torch.inference_mode():
            expected = graph(*example)
        got = run_session(session, dict(zip(inputs, example)))
        diff = max(float((g - e).abs().max()) for g, e in zip(got, expected))
        if not diff < PARITY_ATOL:
            raise RuntimeError(
                f"ONNX export of the drafter ({variant}) disagrees with PyTorch on a probe of "
                f"batch {batch}, past {p}, new {new}: max abs difference {diff:.3g}"
            )


def ensure_export(
    model: PreTrainedModel,
    model_dir: str | os.PathLike[str],
    variant: Variant = DEFAULT_VARIANT,
    *,
    force: bool = False,
) -> Path:
    """Path of a fresh export of the drafter in ``model_dir``, built if missing or stale."""
    meta = ExportMeta(kind=KIND, variant=variant, source_sha256=weights_digest(model_dir))
    return cached_export(model_dir, meta, lambda p: export_drafter(model, p, variant), force=force)


@dataclass
class _Prefix:
    """The ``full_prefix`` variant's stand-in for a cache: the sequence so far."""

    input_ids: torch.Tensor  # (B, P)
    position_ids: torch.Tensor  # (B, P)


class OnnxForward:
    """:meth:`Drafter.forward` over an ONNX Runtime session (either variant)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        specs = session.get_inputs()
        self.keeps_logits = any(s.name == "logits_to_keep" for s in specs)
        past = [s for s in specs if s.name.startswith("past_key_values.")]  # export order
        self.variant: Variant = "kv_cache" if past else "full_prefix"
        # (kv_heads, head_dim) per cache tensor: the static dims of the graph's inputs
        self._kv_dims = [(int(s.shape[1]), int(s.shape[3])) for s in past]

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        past: Any | None,
        *,
        last_only: bool = False,
        cache: bool = True,
    ) -> tuple[torch.Tensor, Any | None]:
        """Same contract as :meth:`Drafter.forward`; the cache object is opaque to callers."""
        batch, new = input_ids.shape
        feeds: dict[str, torch.Tensor] = {"attention_mask": attention_mask.long()}
        if self.variant == "full_prefix" and past is not None:
            input_ids = torch.cat([past.input_ids, input_ids], dim=1)  # (B, P + T)
            position_ids = torch.cat([past.position_ids, position_ids], dim=1)
        total = input_ids.shape[1]
        wanted = torch.arange(total - (1 if last_only else new), total)  # positions to return
        keep = wanted - (total - new) if self.variant == "kv_cache" else wanted
        feeds |= {"input_ids": input_ids.long(), "position_ids": position_ids.long()}
        feeds["logits_to_keep"] = keep
        if self.variant == "kv_cache":
            if past is None:
                past = [torch.zeros(batch, h, 0, d) for h, d in self._kv_dims]
            feeds |= dict(zip(_past_names(len(past) // 2), past))
        logits, *present = run_session(self.session, feeds)
        if not self.keeps_logits:
            logits = logits[:, keep]  # the graph returned every fed position
        if not cache:
            return logits, None
        if self.variant == "kv_cache":
            return logits, present
        return logits, _Prefix(input_ids, position_ids)


def repeat_cache(past: Any, n: int) -> Any:
    """Either variant's cache of one row repeated for ``n`` rows."""
    if isinstance(past, _Prefix):
        return _Prefix(past.input_ids.repeat_interleave(n, 0), past.position_ids.repeat_interleave(n, 0))
    return [t.repeat_interleave(n, 0) for t in past]


class OnnxDrafter(Drafter):
    """A :class:`Drafter` whose network runs in ONNX Runtime; everything else is shared.

    ``model`` still provides the config and the generation config; its weights are not used
    (``load_drafter`` moves them to the meta device to free the memory).
    """

    def __init__(
        self, model: PreTrainedModel, tokenizer: Any, network: OnnxForward, name: str | None = None
    ) -> None:
        super().__init__(model, tokenizer, name=name)
        self.network = network

    @property
    def device(self) -> torch.device:
        """Tensors go in and come back on the CPU (the session may still run on CUDA)."""
        return torch.device("cpu")

    @property
    def providers(self) -> list[str]:
        return list(self.network.session.get_providers())

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        past: Any | None,
        *,
        last_only: bool = False,
        cache: bool = True,
    ) -> tuple[torch.Tensor, Any | None]:
        self.check_positions(position_ids)
        return self.network(
            input_ids, attention_mask, position_ids, past, last_only=last_only, cache=cache
        )

    def repeat_cache(self, past: Any, n: int) -> Any:
        return repeat_cache(past, n)


def load_drafter(
    path: str | os.PathLike[str],
    backend: Backend = "torch",
    device: Device | str = "cpu",
    *,
    variant: Variant = DEFAULT_VARIANT,
    threads: int | None = None,
    optimization: OptLevel = "all",
    force_export: bool = False,
    trust_remote_code: bool = False,
) -> Drafter:
    """Load the drafter in ``path`` on the chosen backend.

    ``backend="onnx"`` exports the model next to its weights (``<path>/onnx``) when the cached
    export is missing or stale, then runs it in ONNX Runtime: CUDA when ``device`` asks for it
    and ``onnxruntime-gpu`` is installed, else the CPU (with a warning if CUDA was asked for).
    """
    if backend == "torch":
        return Drafter.from_pretrained(path, device=device, trust_remote_code=trust_remote_code)
    if backend != "onnx":
        raise ValueError(f"unknown backend {backend!r}; use 'torch' or 'onnx'")
    base = Drafter.from_pretrained(path, device="cpu", trust_remote_code=trust_remote_code)
    onnx_path = ensure_export(base.model, path, variant, force=force_export)
    session = open_session(onnx_path, device, threads=threads, optimization=optimization)
    nn.Module.to(base.model, torch.device("meta"))  # the session holds its own weights
    return OnnxDrafter(base.model, base.tokenizer, OnnxForward(session), name=base.name)


def export_model_dir(
    model_dir: str | os.PathLike[str], variant: Variant = DEFAULT_VARIANT, *, force: bool = False
) -> Path:
    """Export the drafter checkpoint in ``model_dir`` (the ``remask export-onnx`` command)."""
    meta = ExportMeta(kind=KIND, variant=variant, source_sha256=weights_digest(model_dir))
    if not force and is_fresh(model_dir, meta):
        return export_dir(model_dir) / MODEL_FILE
    base = Drafter.from_pretrained(model_dir, device="cpu")
    return ensure_export(base.model, model_dir, variant, force=force)
