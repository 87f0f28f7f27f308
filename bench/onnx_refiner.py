"""Refiner forward latency by input length: PyTorch eager against ONNX Runtime (fused attention).

Model: a refiner of the shape of ``--refiner`` (default ``models/refiner``, else the ``"cpu"``
preset) with random weights and its position limit raised to the longest length asked for.
Speed and the agreement of the two backends do not depend on the weights, and the shipped
refiner is trained on 512 tokens, too few for a 2,048-token row. The model is saved to a
temporary directory, so its ONNX export never touches a real checkpoint's cache.

Each length: one forward of ``--batch`` rows of random ids per call, both backends timed on
the same inputs in alternating blocks (a noisy neighbour on a shared CPU hits both alike),
medians reported; eager PyTorch also on one thread (OpenMP's busy-waiting can make its
multi-threaded default far slower on a CPU shared with other processes). ``max_abs_diff`` is
the largest logit difference on a batch whose rows are padded differently: the padding path
of the graph against eager's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from backends.onnx_runtime import default_threads
from refiner.model import RefinerModel, refiner_config
from refiner.onnx_backend import OnnxMaskPredictor, export_meta, onnx_predictor
from refiner.predictor import HFMaskPredictor, load_predictor

DEFAULT_REFINER = Path("models/refiner")
SHAPE_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--refiner", type=Path, default=None,
                   help="checkpoint whose shape is measured (default: models/refiner, else the 'cpu' preset)")
    p.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 2048], help="tokens per row")
    p.add_argument("--batch", type=int, default=1, help="rows per forward")
    p.add_argument("--repeats", type=int, default=12, help="forwards timed per backend and length")
    p.add_argument("--budget", type=float, default=20.0,
                   help="seconds each length's timing may take: fewer repeats when the input is long")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads of both backends (default: each one's own default)")
    p.add_argument("--seed", type=int, default=0)


def _alternate(
    fns: dict[str, Callable[[], Any]], repeats: int, budget: float, block: int = 3
) -> dict[str, float]:
    """Median seconds per call of each function, timed in alternating blocks after a warm-up;
    stops early (after whole rounds) once ``budget`` seconds have gone."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    deadline = time.perf_counter() + budget
    done = 0
    while done < repeats and time.perf_counter() < deadline:
        for name, fn in fns.items():
            for _ in range(min(block, repeats - done)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        done += block
    return {k: statistics.median(v) for k, v in times.items()}


def _single_threaded(fn: Callable[[], Any], restore: int) -> None:
    """Run ``fn`` with torch on one intra-op thread, then give it ``restore`` threads back."""
    torch.set_num_threads(1)
    try:
        fn()
    finally:
        torch.set_num_threads(restore)


def padded_batch(vocab: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three rows of random ids: one unpadded, one padded on the right, one on the left."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (3, length), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, length // 2 :] = 0
    mask[2, : length // 3] = 0
    return ids, mask


def forward_figures(
    eager: HFMaskPredictor, onnx: OnnxMaskPredictor, batch: int, length: int, repeats: int, budget: float,
    seed: int = 0,
) -> dict[str, Any]:
    """Eager and ONNX forward latency of ``batch`` rows of ``length`` tokens, and their largest
    logit difference on a padded batch."""
    config: Any = eager.model.config  # a transformers config behind the nn.Module type
    vocab = int(config.vocab_size)
    ids, mask = padded_batch(vocab, length, seed)
    diff = float((eager(ids, mask) - onnx(ids, mask)).abs().max())
    ids = torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed + 1))
    mask = torch.ones_like(ids)
    fns: dict[str, Callable[[], Any]] = {"torch": lambda: eager(ids, mask), "onnx": lambda: onnx(ids, mask)}
    threads = torch.get_num_threads()
    if threads > 1:
        fns["torch_1_thread"] = lambda: _single_threaded(lambda: eager(ids, mask), threads)
    med = _alternate(fns, repeats, budget)
    figures: dict[str, Any] = {
        "torch_ms": round(med["torch"] * 1e3, 2),
        "onnx_ms": round(med["onnx"] * 1e3, 2),
        "speedup": round(med["torch"] / med["onnx"], 2),
        "max_abs_diff": diff,
        "seq_len": length,
        "batch": batch,
    }
    if "torch_1_thread" in med:
        figures["torch_1_thread_ms"] = round(med["torch_1_thread"] * 1e3, 2)
        figures["speedup_vs_1_thread"] = round(med["torch_1_thread"] / med["onnx"], 2)
    return figures


def _shape(source: Path | None) -> tuple[dict[str, int], str]:
    """The measured shape (the config fields that set the compute) and where it came from."""
    path = source or (DEFAULT_REFINER if (DEFAULT_REFINER / "config.json").is_file() else None)
    if path is None:
        preset = refiner_config("cpu")
        return {k: int(getattr(preset, k)) for k in SHAPE_FIELDS}, "'cpu' preset"
    config = json.loads((path / "config.json").read_text())
    return {k: int(config[k]) for k in SHAPE_FIELDS}, str(path)


def _random_refiner(root: Path, shape: dict[str, int], max_length: int, seed: int) -> None:
    torch.manual_seed(seed)
    vocab = shape["vocab_size"]
    config = refiner_config("cpu", **shape, max_position_embeddings=max_length, mask_token_id=vocab - 1,
                            pad_token_id=vocab - 2, eos_token_id=vocab - 3, filler_token_id=vocab - 4)
    RefinerModel(config).save_pretrained(root)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    shape, source = _shape(args.refiner)
    with tempfile.TemporaryDirectory(prefix="remask-bench-") as tmp:
        root = Path(tmp)
        _random_refiner(root, shape, max(args.lengths), args.seed)
        eager, _ = load_predictor(root)
        start = time.perf_counter()
        onnx = onnx_predictor(eager, root, threads=args.threads)
        export_s = time.perf_counter() - start
        attention = export_meta(root).attention
        lengths = {
            str(n): forward_figures(eager, onnx, args.batch, n, args.repeats, args.budget, args.seed)
            for n in args.lengths
        }
    return {
        "model": f"shape of {source}, random init",
        "shape": shape,
        "attention": attention,
        "export_s": round(export_s, 2),
        "lengths": lengths,
        "settings": {
            "torch_threads": torch.get_num_threads(),
            "onnx_threads": args.threads or default_threads(),
            "timing": "median of alternating blocks, within --budget seconds per length",
        },
    }
