"""Training throughput of a model shape: full optimizer steps on random tokens, in tokens/s.

Each measurement builds the model, runs ``warmup`` untimed steps (allocations, compilation)
and then ``steps`` timed ones of exactly what the trainer does: noise (refiner) or FIM
(drafter, skipped here: it needs a tokenizer), forward, loss, backward, clipping, AdamW.
It prints one JSON object per setting, so settings can be compared on a quiet machine::

    python -m training.throughput --model refiner --preset default \\
        --seq-len 256 512 --batch-size 8 16 32 --threads 1 2

Figures on a machine whose cores are busy with other work are pessimistic, and more so
with more threads: an OpenMP thread that waits for a busy core stalls every matmul.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from refiner.model import RefinerModel, refiner_config
from training.loop import LoopConfig, make_forward, make_optimizer
from training.refiner_noise import RefinerObjective, loss_positions, noise_batch, refiner_loss
from training.train_drafter import DRAFTER_PRESETS, causal_lm_loss

SPECIALS = 7  # ids 0..6, as in the shared tokenizer


def build(model: str, preset: str, overrides: dict[str, Any]) -> nn.Module:
    """A fresh model with the shared tokenizer's special ids (0..6)."""
    if model == "refiner":
        ids = {"pad_token_id": 0, "eos_token_id": 1, "mask_token_id": 2, "filler_token_id": 3}
        return RefinerModel(refiner_config(preset, **(ids | overrides)))
    fields = {k: getattr(DRAFTER_PRESETS[preset], k)
              for k in DRAFTER_PRESETS[preset].__dataclass_fields__}
    cfg = LlamaConfig(**(fields | {"vocab_size": 8192, "tie_word_embeddings": True,
                                   "eos_token_id": 1, "bos_token_id": 1, "pad_token_id": 0}
                         | overrides))
    return LlamaForCausalLM(cfg)


def measure(
    model_name: str = "refiner",
    preset: str = "default",
    seq_len: int = 512,
    batch_size: int = 16,
    threads: int = 2,
    compile: bool = False,
    steps: int = 5,
    warmup: int = 2,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Time ``steps`` optimizer steps; return the setting and its tokens per second."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    # the context is the sequence length, as in training (the refiner refuses longer input)
    model = build(model_name, preset, {"max_position_embeddings": seq_len} | (overrides or {}))
    vocab: int = getattr(model, "config").vocab_size  # noqa: B009  (nn.Module has no config)
    optimizer = make_optimizer(model, LoopConfig(out_dir=Path("."), max_steps=1))
    module: nn.Module = torch.compile(model) if compile else model  # type: ignore[assignment]
    forward = make_forward(module, torch.device("cpu"))
    special = torch.zeros(vocab, dtype=torch.bool)
    special[:SPECIALS] = True
    objective = RefinerObjective()
    unigram = torch.ones(vocab)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        batch = torch.randint(SPECIALS, vocab, (batch_size, seq_len), generator=gen)
        if model_name == "refiner":
            nb = noise_batch(batch, objective, 2, 3, special, unigram, gen)
            positions = loss_positions(nb, objective, gen)
            logits = forward(nb.input_ids, logits_at=positions.keep)
            loss = refiner_loss(logits, nb, objective, positions).loss
        else:
            loss = causal_lm_loss(forward(batch), batch)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    best, median = min(times), sorted(times)[len(times) // 2]
    tokens = batch_size * seq_len
    return {
        "model": model_name, "preset": preset, "overrides": overrides or {},
        "parameters": sum(p.numel() for p in model.parameters()),
        "seq_len": seq_len, "batch_size": batch_size, "threads": threads, "compile": compile,
        "step_ms_median": round(median * 1000, 1), "step_ms_best": round(best * 1000, 1),
        "tokens_per_s_median": round(tokens / median), "tokens_per_s_best": round(tokens / best),
    }


def _override(text: str) -> tuple[str, int]:
    key, _, value = text.partition("=")
    return key, int(value)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--model", choices=("refiner", "drafter"), default="refiner")
    p.add_argument("--preset", default="default")
    p.add_argument("--seq-len", type=int, nargs="+", default=[256, 512])
    p.add_argument("--batch-size", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--compile", action="store_true", help="also measure torch.compile")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--set", type=_override, nargs="*", default=[], metavar="FIELD=INT",
                   help="model config overrides, e.g. hidden_size=192 num_hidden_layers=4")
    args = p.parse_args(argv)
    compiles = (False, True) if args.compile else (False,)
    for seq_len, batch, threads, comp in itertools.product(
        args.seq_len, args.batch_size, args.threads, compiles
    ):
        print(json.dumps(measure(args.model, args.preset, seq_len, batch, threads, comp,
                                 args.steps, overrides=dict(args.set))), flush=True)


if __name__ == "__main__":
    main()
