"""Drafter tokens/s and refiner forward latency: PyTorch eager against ONNX Runtime.

Models: ``models/drafter`` and ``models/refiner`` when they exist (or ``--drafter`` /
``--refiner``); otherwise randomly initialised models of the shipped default shape (the
refiner's ``"default"`` preset and a Llama drafter of the same size, over the shared tokenizer
in ``models/tokenizer``), saved to a temporary directory so both backends load them the way
they load real checkpoints. Random weights are fine for speed; the ``model`` field says which.

Timing: both backends run the same inputs in alternating blocks (so a noisy neighbour on a
shared CPU hits both alike) and the median is reported. ``--variants`` also times the
drafter's cache-free export (``full_prefix``, the whole sequence re-run per token) against the
KV-cache export for 16 and 64 new tokens.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from backends.onnx_runtime import default_threads
from bench.onnx_refiner import forward_figures
from drafter.generate import left_pad, positions_from_mask
from drafter.model import Drafter
from drafter.onnx_backend import DEFAULT_VARIANT, Variant, load_drafter
from drafter.params import GenerationParams
from refiner.model import RefinerModel, tokenizer_config
from refiner.onnx_backend import onnx_predictor
from refiner.predictor import load_predictor

DEFAULT_DRAFTER = Path("models/drafter")
DEFAULT_REFINER = Path("models/refiner")
TOKENIZER = Path("models/tokenizer")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--drafter", type=Path, default=None,
                   help="drafter directory (default: models/drafter, else a random one)")
    p.add_argument("--refiner", type=Path, default=None,
                   help="refiner directory (default: models/refiner, else a random one)")
    p.add_argument("--seq-len", type=int, default=128,
                   help="refiner forward: tokens per row (a span and its context windows)")
    p.add_argument("--batch", type=int, default=1, help="refiner forward: rows")
    p.add_argument("--prompt-tokens", type=int, default=64, help="drafter prompt length")
    p.add_argument("--new-tokens", type=int, default=32, help="drafter tokens per draft")
    p.add_argument("--repeats", type=int, default=15, help="refiner forwards timed per backend")
    p.add_argument("--budget", type=float, default=8.0,
                   help="seconds each timing loop may take: fewer repeats when a backend is slow")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads of both backends (default: each one's own default)")
    p.add_argument("--variants", action="store_true",
                   help="also time the cache-free drafter export against the KV-cache one")
    p.add_argument("--seed", type=int, default=0)


def _random_refiner(root: Path, tokenizer: Any, seed: int) -> None:
    """Save a randomly initialised refiner of the 'default' preset to ``root``."""
    torch.manual_seed(seed)
    RefinerModel(tokenizer_config("default", tokenizer)).save_pretrained(root)
    tokenizer.save_pretrained(root)


def _random_drafter(root: Path, tokenizer: Any, seed: int) -> None:
    """Save a random Llama drafter of the shipped default shape (the refiner's size)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=6,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(cfg).save_pretrained(root)
    tokenizer.save_pretrained(root)


def _default(path: Path) -> Path | None:
    return path if (path / "config.json").exists() else None


def _model_dirs(args: argparse.Namespace, tmp: Path) -> tuple[Path, str, Path, str]:
    """(refiner dir, its label, drafter dir, its label), building random models if needed."""
    refiner = args.refiner or _default(DEFAULT_REFINER)
    drafter = args.drafter or _default(DEFAULT_DRAFTER)
    tokenizer = None
    if refiner is None or drafter is None:
        if not (TOKENIZER / "tokenizer.json").exists():
            raise FileNotFoundError(f"no model to benchmark and no tokenizer in {str(TOKENIZER)!r}")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    if refiner is None:
        refiner = tmp / "refiner"
        _random_refiner(refiner, tokenizer, args.seed)
        refiner_label = "default preset, random init (no models/refiner)"
    else:
        refiner_label = str(refiner)
    if drafter is None:
        drafter = tmp / "drafter"
        _random_drafter(drafter, tokenizer, args.seed)
        drafter_label = "default shape, random init (no models/drafter)"
    else:
        drafter_label = str(drafter)
    return refiner, refiner_label, drafter, drafter_label


def _refiner_forward(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One length of ``remask bench onnx_refiner``, on this benchmark's refiner."""
    eager, _ = load_predictor(path)
    onnx = onnx_predictor(eager, path, threads=args.threads)  # as load_onnx_predictor, with threads
    return forward_figures(eager, onnx, args.batch, args.seq_len, args.repeats, args.budget, args.seed)


def _prompt(tokenizer: Any, n: int, seed: int) -> list[int]:
    """``n`` random non-special token ids: a fixed prompt whatever the model."""
    gen = torch.Generator().manual_seed(seed)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids = [int(t) for t in torch.randint(0, len(tokenizer), (4 * n,), generator=gen)]
    return [t for t in ids if t not in special][:n]


def _tokens_per_s(
    drafters: dict[str, Drafter], prompt: list[int], new: int, budget: float, repeats: int = 3
) -> dict[str, tuple[float, list[int]]]:
    """Greedy drafts of ``new`` tokens, alternating between drafters: (tokens/s, last ids).
    At most ``repeats`` rounds; no new round starts after ``budget`` seconds."""
    params = GenerationParams(max_new_tokens=new)
    tokens = dict.fromkeys(drafters, 0)
    seconds = dict.fromkeys(drafters, 0.0)
    last: dict[str, list[int]] = {}
    for d in drafters.values():
        d.generate(prompt, GenerationParams(max_new_tokens=2))  # warm-up
    deadline = time.perf_counter() + budget
    for _ in range(repeats):
        if time.perf_counter() > deadline:
            break
        for name, d in drafters.items():
            start = time.perf_counter()
            draft = d.generate(prompt, params)
            seconds[name] += time.perf_counter() - start
            tokens[name] += len(draft.token_ids)
            last[name] = draft.token_ids
    return {k: (tokens[k] / seconds[k], last[k]) for k in drafters}


def _logits_diff(a: Drafter, b: Drafter, prompt: list[int], steps: int = 8) -> float:
    """Max abs logit difference through the forward seam: a prefill, then cached steps fed
    with ``a``'s greedy tokens."""
    ids, mask = left_pad([prompt], a.pad_id)
    pos = positions_from_mask(mask)
    la, pa = a.forward(ids, mask, pos, None)
    lb, pb = b.forward(ids, mask, pos, None)
    worst = float((la - lb).abs().max())
    nxt = pos[:, -1:] + 1
    for _ in range(steps):
        tok = la[:, -1:].argmax(-1)  # (1, 1)
        mask = torch.cat([mask, mask.new_ones(1, 1)], dim=1)
        la, pa = a.forward(tok, mask, nxt, pa, last_only=True)
        lb, pb = b.forward(tok, mask, nxt, pb, last_only=True)
        worst = max(worst, float((la - lb).abs().max()))
        nxt = nxt + 1
    return worst


def _shadow(model_dir: Path, root: Path) -> Path:
    """A directory of symlinks to ``model_dir``'s files: its exports do not touch the real cache."""
    root.mkdir(parents=True)
    for f in model_dir.iterdir():
        if f.is_file():
            os.symlink(f.resolve(), root / f.name)
    return root


def _variants(
    model_dir: Path, tmp: Path, prompt: list[int], threads: int | None, budget: float
) -> dict[str, Any]:
    """tokens/s of the two drafter exports for 16 and 64 new tokens, exported into symlinked
    copies of ``model_dir`` so the real export cache is left alone."""
    out: dict[str, Any] = {}
    variants: tuple[Variant, ...] = ("full_prefix", "kv_cache")
    for variant in variants:
        shadow = _shadow(model_dir, tmp / variant)
        d = load_drafter(shadow, "onnx", variant=variant, threads=threads)
        for n in (16, 64):
            tps, _ = _tokens_per_s({variant: d}, prompt, n, budget, repeats=2)[variant]
            out.setdefault(variant, {})[f"{n}_new_tokens_per_s"] = round(tps, 1)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="remask-bench-") as tmp_name:
        tmp = Path(tmp_name)
        refiner, refiner_label, drafter, drafter_label = _model_dirs(args, tmp)
        figures: dict[str, Any] = {"model": {"refiner": refiner_label, "drafter": drafter_label}}
        refiner_figures = _refiner_forward(refiner, args)

        eager = load_drafter(drafter, "torch")
        onnx = load_drafter(drafter, "onnx", threads=args.threads)
        prompt = _prompt(eager.tokenizer, args.prompt_tokens, args.seed)
        drafters: dict[str, Drafter] = {"torch": eager, "onnx": onnx}
        speed = _tokens_per_s(drafters, prompt, args.new_tokens, args.budget)
        (torch_tps, torch_ids), (onnx_tps, onnx_ids) = speed["torch"], speed["onnx"]
        figures["torch"] = {"tokens_per_s": round(torch_tps, 1)}
        figures["onnx"] = {
            "tokens_per_s": round(onnx_tps, 1),
            "max_abs_diff": _logits_diff(eager, onnx, prompt),
            "greedy_identical": torch_ids == onnx_ids,
            "variant": DEFAULT_VARIANT,
        }
        figures["refiner_forward"] = refiner_figures
        if args.variants:
            figures["drafter_variants"] = _variants(
                drafter, tmp / "variants", prompt, args.threads, args.budget
            )
    figures["settings"] = {
        "torch_threads": torch.get_num_threads(),
        "onnx_threads": args.threads or default_threads(),
        "prompt_tokens": len(prompt),
        "new_tokens": args.new_tokens,
        "timing": "refiner: median of alternating blocks; drafter: up to 3 alternating drafts "
        "each; both within --budget seconds",
    }
    return figures
