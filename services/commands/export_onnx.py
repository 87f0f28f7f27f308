"""``remask export-onnx``: export a checkpoint to ONNX, cached next to its weights.

The export lands in ``<model>/onnx/model.onnx`` with ``export.json`` beside it (source hash,
opset, torch version). An up-to-date export is left alone unless ``--force`` is given; the
models load it with ``backend="onnx"`` and rebuild it themselves when it is stale, so running
this command is only a way to do that work ahead of time (at build or deploy time).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

KINDS = ("refiner", "drafter")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "export-onnx",
        help="export a refiner or drafter checkpoint to ONNX (cached in <model>/onnx)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, type=Path, help="checkpoint directory")
    p.add_argument(
        "--kind",
        choices=KINDS,
        default=None,
        help="which model it is (default: read from config.json: causal LMs are drafters)",
    )
    p.add_argument(
        "--variant",
        choices=("kv_cache", "full_prefix"),
        default=None,
        help="drafter graph: with a KV cache (default) or re-running the whole prefix",
    )
    p.add_argument("--force", action="store_true", help="re-export even if the cache is fresh")
    p.set_defaults(func=run)


def detect_kind(model_dir: Path) -> str:
    """``"drafter"`` for causal LMs (by their architectures), else ``"refiner"``."""
    cfg_file = model_dir / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"no config.json in model directory {str(model_dir)!r}")
    archs = json.loads(cfg_file.read_text()).get("architectures") or []
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
    return "drafter" if causal else "refiner"


def run(args: argparse.Namespace) -> int:
    from backends.onnx_runtime import EXPORT_DIR, META_FILE

    model_dir: Path = args.model
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model directory {str(model_dir)!r} does not exist")
    kind = args.kind or detect_kind(model_dir)
    if args.variant is not None and kind != "drafter":
        raise ValueError("--variant applies to drafters only")
    start = time.perf_counter()
    if kind == "drafter":
        from drafter import onnx_backend as drafter_onnx

        variant = args.variant or drafter_onnx.DEFAULT_VARIANT
        path = drafter_onnx.export_model_dir(model_dir, variant, force=args.force)
    else:
        from refiner import onnx_backend as refiner_onnx

        path = refiner_onnx.export_model_dir(model_dir, force=args.force)
    meta = json.loads((model_dir / EXPORT_DIR / META_FILE).read_text())
    report = {
        "path": str(path),
        "seconds": round(time.perf_counter() - start, 2),
        "bytes": sum(f.stat().st_size for f in path.parent.iterdir() if f.is_file()),
        **meta,
    }
    print(json.dumps(report, indent=2))
    return 0
