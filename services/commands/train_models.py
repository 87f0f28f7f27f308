"""``remask train drafter`` and ``remask train refiner``: train the default models.

Both take the same options; the run's figures (``training.json``) are printed as JSON at
the end. Examples::

    remask train refiner --corpus data/corpus --tokenizer models/tokenizer \\
        --out models/refiner --preset default --seed 0 --time-budget 3000
    remask train drafter --corpus data/corpus --tokenizer models/tokenizer \\
        --out models/drafter --preset default --seed 0 --max-steps 2000 --resume
    remask train refiner --corpus data/corpus --tokenizer models/tokenizer \\
        --out models/refiner --init-from models/drafter --max-steps 2000

``--seq-len`` (512) is also the context the saved model declares and accepts
(``max_position_embeddings``). Weights are saved as safetensors in ``--save-dtype``
(bfloat16) and split into shards above ``--max-shard-size`` (15MB); training runs in float32.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from training.checkpoint import SAVE_DTYPES
from training.loop import LoopConfig

_LOOP = LoopConfig(out_dir=Path("."))
# peak learning rate per model; both small models train well at 2e-3 with warmup and clipping
_DEFAULT_LR: dict[str, float] = {"refiner": 2e-3, "drafter": 2e-3}


def add_model_commands(which: Any) -> None:
    """Add ``drafter`` and ``refiner`` under ``remask train``."""
    for name, helptext in (
        ("drafter", "train the AR drafter (Llama causal LM with FIM augmentation)"),
        ("refiner", "train the masked-diffusion refiner (with edit noise and filler spans)"),
    ):
        p = which.add_parser(name, help=helptext)
        _add_arguments(p, name)
        p.set_defaults(func=run_model, model=name)


def _add_arguments(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("--corpus", required=True, type=Path, help="corpus folder (remask corpus build)")
    p.add_argument("--tokenizer", required=True, type=Path,
                   help="tokenizer folder (remask train tokenizer)")
    p.add_argument("--out", required=True, type=Path,
                   help="folder for the model, its checkpoint, log and training.json")
    p.add_argument("--preset", default=None,
                   help="model shape: tiny, cpu, default, gpu (default: default; a refiner "
                   "with --init-from takes the drafter's shape)")
    p.add_argument("--seed", type=int, default=0, help="weights, data order, noise (%(default)s)")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--time-budget", type=float, metavar="SECONDS",
                        help="train for this many seconds of wall time")
    budget.add_argument("--max-steps", type=int, metavar="N", help="train for N optimizer steps")
    p.add_argument("--init-from", type=Path, default=None, metavar="DIR",
                   help="start from the weights of the drafter saved in DIR instead of random "
                   "ones (same tokenizer; drafter: same shape; refiner: converted from it)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt (same preset, seed, batch, seq-len)")
    p.add_argument("--batch-size", type=int, default=_LOOP.batch_size,
                   help="sequences per step (%(default)s)")
    p.add_argument("--seq-len", type=int, default=_LOOP.seq_len,
                   help="tokens per sequence, and the context the saved model accepts "
                   "(%(default)s)")
    p.add_argument("--lr", type=float, default=_DEFAULT_LR[name], help="peak learning rate (%(default)s)")
    p.add_argument("--warmup-steps", type=int, default=_LOOP.warmup_steps,
                   help="linear warmup steps (%(default)s)")
    p.add_argument("--eval-every", type=int, default=_LOOP.eval_every,
                   help="steps between held-out evaluations (%(default)s)")
    p.add_argument("--eval-batches", type=int, default=_LOOP.eval_batches,
                   help="held-out batches per evaluation (%(default)s)")
    p.add_argument("--checkpoint-every", type=int, default=_LOOP.checkpoint_every,
                   help="steps between checkpoints (%(default)s)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice, one per core)")
    p.add_argument("--save-dtype", choices=sorted(SAVE_DTYPES), default=_LOOP.save_dtype,
                   help="dtype of the saved weights; training runs in float32 (%(default)s)")
    p.add_argument("--max-shard-size", default=_LOOP.max_shard_size, metavar="SIZE",
                   help="split saved weights into safetensors shards of at most SIZE "
                   "(%(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def loop_config(args: argparse.Namespace) -> LoopConfig:
    """The loop settings of a parsed command line."""
    return LoopConfig(
        out_dir=args.out, seed=args.seed, max_steps=args.max_steps,
        time_budget=args.time_budget, batch_size=args.batch_size, seq_len=args.seq_len,
        lr=args.lr, warmup_steps=args.warmup_steps, eval_every=args.eval_every,
        eval_batches=args.eval_batches, checkpoint_every=args.checkpoint_every,
        compile=args.compile, device=args.device, threads=args.threads, resume=args.resume,
        progress=not args.no_progress, save_dtype=args.save_dtype,
        max_shard_size=args.max_shard_size,
    )


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, for training.json and the model card."""
    parts = ["remask", "train", args.model, "--corpus", str(args.corpus), "--tokenizer",
             str(args.tokenizer), "--out", str(args.out)]
    if args.preset is not None:
        parts += ["--preset", args.preset]
    parts += ["--seed", str(args.seed)]
    if args.time_budget is not None:
        parts += ["--time-budget", f"{args.time_budget:g}"]
    if args.max_steps is not None:
        parts += ["--max-steps", str(args.max_steps)]
    for flag, value, default in (
        ("--batch-size", args.batch_size, _LOOP.batch_size),
        ("--seq-len", args.seq_len, _LOOP.seq_len),
        ("--lr", args.lr, _DEFAULT_LR[args.model]),
        ("--warmup-steps", args.warmup_steps, _LOOP.warmup_steps),
        ("--threads", args.threads, None),
        ("--save-dtype", args.save_dtype, _LOOP.save_dtype),
        ("--max-shard-size", args.max_shard_size, _LOOP.max_shard_size),
    ):
        if value != default:
            parts += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    if args.init_from is not None:
        parts += ["--init-from", str(args.init_from)]
    if args.compile:
        parts.append("--compile")
    return shlex.join(parts)


def run_model(args: argparse.Namespace) -> int:
    """Train the model named by the subcommand and print its figures."""
    # imported here: torch and transformers load only when a model is actually trained
    if args.model == "refiner":
        from training.train_refiner import train_refiner

        result = train_refiner(args.corpus, args.tokenizer, args.preset, loop_config(args),
                               command=command_line(args), init_from=args.init_from)
    else:
        from training.train_drafter import train_drafter

        result = train_drafter(args.corpus, args.tokenizer, args.preset or "default",
                               loop_config(args), command=command_line(args),
                               init_from=args.init_from)
    print(json.dumps(result.info, indent=2))
    return 0
