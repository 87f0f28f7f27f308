"""ONNX Runtime plumbing for both models: the export cache, session options, providers.

Exporter. Graphs are written by ``torch.onnx.export(..., dynamo=False)``, the TorchScript
tracer, at :data:`OPSET`. With torch 2.13 both exporters give logits within 1e-6 of eager on
the refiner, but the ``torch.export`` path (``dynamo=True``) takes 15-20 s per export on a
2-core CPU, against under a second for the tracer: that is the difference between a test suite
and a CLI that feel instant and ones that do not. The tracer also takes the drafter's KV cache
as plain tensors through a small wrapper, where ``torch.export`` needs the transformers cache
classes registered as pytrees and specialises on an empty cache. The price: a deprecation
warning (silenced here) and tied embeddings stored twice. Tracing bakes in Python control
flow, so the model wrappers avoid data-dependent branches and every export is checked against
eager on probe inputs before it is cached.

Cache. An export lives next to its weights, ``<model_dir>/onnx/model.onnx``, with
``export.json`` recording what it was built from: the SHA-256 of the weight and config files,
the opset, the torch version, the exporter, the graph variant and how attention is written.
Any difference means the export is stale and is rebuilt. Files are written to a temporary
directory beside the target and moved in with ``os.replace``, the metadata last, so a reader
never sees half an export.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger(__name__)

OPSET = 17  # the tracer's best-tested opset; 18+ adds nothing these graphs use
EXPORTER = "torchscript"
EXPORT_DIR = "onnx"
MODEL_FILE = "model.onnx"
META_FILE = "export.json"
# files whose bytes define the network: a change to any of them makes an export stale (a
# sharded save's index too: it says which shard holds which tensor)
_SOURCE_GLOBS = ("config.json", "*.safetensors", "*.safetensors.index.json", "*.bin", "*.pt", "*.pth")

Device = Literal["auto", "cpu", "cuda"]
OptLevel = Literal["disable", "basic", "extended", "all"]

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def import_ort() -> Any:
    """Import onnxruntime, or explain which extra installs it."""
    try:
        import onnxruntime
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the ONNX backend needs onnxruntime: pip install 'remask[onnx]' "
            "(or 'remask[gpu]' for onnxruntime-gpu; never both)"
        ) from err
    return onnxruntime


# --- the export cache --------------------------------------------------------------------


@dataclass(frozen=True)
class ExportMeta:
    """What an export was built from; any field that differs makes it stale."""

    kind: str  # "refiner" or "drafter"
    variant: str  # the graph's input/output contract, e.g. "kv_cache" or "full_prefix"
    source_sha256: str
    opset: int = OPSET
    torch_version: str = torch.__version__
    exporter: str = EXPORTER
    # how attention is written in the graph: "standard" ONNX ops (what exports without this
    # field used), or the name of a runtime's fused operator
    attention: str = "standard"

    @classmethod
    def read(cls, path: Path) -> ExportMeta | None:
        """The metadata in ``path``, or ``None`` if it is missing or unreadable."""
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def weights_digest(model_dir: str | os.PathLike[str]) -> str:
    """SHA-256 over the names and bytes of a checkpoint's config and weight files."""
    root = Path(model_dir)
    files = sorted({p for pattern in _SOURCE_GLOBS for p in root.glob(pattern) if p.is_file()})
    if not files:
        raise FileNotFoundError(f"no config or weight files in {str(root)!r}")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def export_dir(model_dir: str | os.PathLike[str]) -> Path:
    """Where a checkpoint's export lives: ``<model_dir>/onnx``."""
    return Path(model_dir) / EXPORT_DIR


def is_fresh(model_dir: str | os.PathLike[str], expected: ExportMeta) -> bool:
    """True if ``model_dir`` holds an export built from exactly ``expected``."""
    out = export_dir(model_dir)
    return (out / MODEL_FILE).is_file() and ExportMeta.read(out / META_FILE) == expected


def cached_export(
    model_dir: str | os.PathLike[str],
    expected: ExportMeta,
    export: Callable[[Path], None],
    *,
    force: bool = False,
) -> Path:
    """Return the path of a fresh export, calling ``export(path)`` to (re)build it if needed.

    ``export`` writes an ONNX file (and any external-data files beside it) at the path it is
    given, inside a private temporary directory; the results are moved into place atomically.
    """
    out = export_dir(model_dir)
    target = out / MODEL_FILE
    if not force and is_fresh(model_dir, expected):
        log.debug("using cached ONNX export %s", target)
        return target
    found = ExportMeta.read(out / META_FILE)
    log.info(
        "exporting %s to ONNX at %s (%s)",
        expected.kind,
        target,
        "forced" if force else "stale export" if found else "no export yet",
    )
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    try:
        export(tmp / MODEL_FILE)
        for extra in sorted(tmp.iterdir()):  # external-data files first, the graph after
            if extra.name != MODEL_FILE:
                os.replace(extra, out / extra.name)
        os.replace(tmp / MODEL_FILE, target)
        meta_tmp = tmp / META_FILE
        meta_tmp.write_text(json.dumps(asdict(expected), indent=2) + "\n")
        os.replace(meta_tmp, out / META_FILE)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def trace_to_onnx(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
) -> None:
    """Export ``module`` called on ``args`` with the TorchScript tracer (see the module doc)."""
    with warnings.catch_warnings(), torch.no_grad():
        # the tracer warns that it is deprecated and that traced Python branches are frozen;
        # both are known and handled (wrappers have no data-dependent branches, and exports
        # are checked against eager before they are cached)
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()},
            opset_version=OPSET,
            do_constant_folding=True,
        )


def drop_no_op_casts(path: Path) -> None:
    """Remove the Cast nodes of the ONNX graph at ``path`` that cast to the type they are given.

    The tracer records ``.float()`` on a float32 tensor as a Cast, and ONNX Runtime keeps one
    that produces a graph output: a copy of the whole output on every call (3-4% of a refiner
    forward at 128 tokens). ONNX Runtime's own model tools remove them, outputs included.
    """
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(path)))
    model.remove_useless_cast_nodes()
    model.save_model_to_file(str(path))


# --- sessions ----------------------------------------------------------------------------


def default_threads() -> int:
    """Cores this process may run on (its affinity mask, not the machine's core count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 1)


def providers_for(device: Device | str) -> list[str]:
    """Execution providers for a device request, best first.

    ``"cuda"`` wants the CUDA provider (``onnxruntime-gpu``) and falls back to the CPU with a
    warning when it is missing; ``"auto"`` takes CUDA when present, silently; ``"cpu"`` never
    touches a GPU.
    """
    if device not in ("auto", "cpu", "cuda") and not str(device).startswith("cuda"):
        raise ValueError(f"unknown ONNX device {device!r}; use 'auto', 'cpu' or 'cuda'")
    if device == "cpu":
        return [CPU]
    available = import_ort().get_available_providers()
    if CUDA in available:
        return [CUDA, CPU]
    if device != "auto":
        log.warning(
            "CUDA was asked for but onnxruntime has no CUDAExecutionProvider (available: %s); "
            "running on the CPU. Install the 'gpu' extra (onnxruntime-gpu) instead of 'onnx'.",
            ", ".join(available),
        )
    return [CPU]


def session_options(
    threads: int | None = None, optimization: OptLevel = "all", spin: bool = False
) -> Any:
    """Session options for a single-request, latency-bound transformer graph.

    * intra-op threads: the cores this process may use (:func:`default_threads`); the kernels
      that matter (MatMul, Softmax) split across them.
    * inter-op: sequential execution on one thread; a transformer is a chain of layers with
      no independent branches worth running side by side.
    * graph optimisation: ``"all"``. ``"extended"`` fuses RMSNorm into
      SimplifiedLayerNormalization and SiLU into QuickGelu; ``"all"`` adds CPU layout
      transforms. The three levels from ``"basic"`` up measured within noise of each other
      (57-60 ms for a 128-token forward of the default refiner on one core): the time is in
      the MatMuls, which every level runs with the same kernels.
    * spinning: off (see the comment below); ``spin=True`` trades CPU for latency on a
      machine the process has to itself.
    """
    rt = import_ort()
    levels = {
        "disable": rt.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": rt.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": rt.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": rt.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if optimization not in levels:
        raise ValueError(f"unknown optimisation level {optimization!r}; known: {sorted(levels)}")
    so = rt.SessionOptions()
    so.graph_optimization_level = levels[optimization]
    so.intra_op_num_threads = threads or default_threads()
    so.inter_op_num_threads = 1
    # idle pool threads sleep instead of spinning: on a CPU shared with other processes a
    # spinning pool waits on descheduled threads (measured 95 vs 59 ms per refiner forward)
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    so.execution_mode = rt.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only: ORT's own warnings duplicate ours
    return so


def open_session(
    path: str | os.PathLike[str],
    device: Device | str = "cpu",
    threads: int | None = None,
    optimization: OptLevel = "all",
    *,
    announce: bool = True,
) -> ort.InferenceSession:
    """An inference session on ``path``; logs the providers actually in use (at INFO, or at
    DEBUG without ``announce``: the throwaway sessions that check a new export)."""
    rt = import_ort()
    wanted = providers_for(device)
    session = rt.InferenceSession(
        str(path), sess_options=session_options(threads, optimization), providers=wanted
    )
    used = session.get_providers()
    if CUDA in wanted and CUDA not in used:
        log.warning("CUDAExecutionProvider failed to start for %s; running on the CPU", path)
    level = logging.INFO if announce else logging.DEBUG
    log.log(level, "ONNX Runtime session on %s: providers %s", path, used)
    return session


def run_session(
    session: ort.InferenceSession, feeds: Mapping[str, torch.Tensor]
) -> list[torch.Tensor]:
    """Run ``session`` on torch tensors, returning torch tensors (CPU).

    Only the inputs the graph declares are fed: the tracer drops inputs a graph never reads
    (a model that ignores its attention mask has no ``attention_mask`` input).
    """
    names = {i.name for i in session.get_inputs()}
    arrays = {
        k: np.ascontiguousarray(v.detach().cpu().numpy()) for k, v in feeds.items() if k in names
    }
    return [torch.from_numpy(np.asarray(out)) for out in session.run(None, arrays)]
