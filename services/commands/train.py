"""``remask train tokenizer``: train the shared byte-level BPE tokenizer on a corpus.

Prints the training info as JSON: vocabulary size, corpus hash, sample size and tokens per
character on held-out code and prose (also saved as ``remask.json`` and ``README.md``).
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from services.commands.train_models import add_model_commands
from training.tokenizer import TokenizerTrainConfig, train_tokenizer

_DEFAULTS = TokenizerTrainConfig()


def register(sub: Any) -> None:
    """Add ``train tokenizer`` (and ``train drafter|refiner``) to the ``remask`` subcommands."""
    p = sub.add_parser("train", help="train remask's own models and tokenizer")
    which = p.add_subparsers(dest="train_command", metavar="WHAT")
    which.required = True
    t = which.add_parser("tokenizer", help="train the shared byte-level BPE tokenizer")
    t.add_argument("--corpus", required=True, type=Path, help="corpus folder (remask corpus build)")
    t.add_argument("--out", required=True, type=Path, help="folder to save the tokenizer to")
    t.add_argument("--vocab-size", type=int, default=_DEFAULTS.vocab_size,
                   help="tokens in the vocabulary, specials and bytes included (%(default)s)")
    t.add_argument("--seed", type=int, default=_DEFAULTS.seed,
                   help="picks the training sample (%(default)s)")
    t.add_argument("--max-train-chars", type=int, default=_DEFAULTS.max_train_chars,
                   help="bound on the characters sampled for training (%(default)s)")
    t.add_argument("--code-share", type=float, default=_DEFAULTS.code_share,
                   help="fraction of the sample that is code (%(default)s)")
    t.set_defaults(func=run_tokenizer)
    add_model_commands(which)  # drafter, refiner: services/commands/train_models.py


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, defaults left out, for the README."""
    parts = ["remask", "train", "tokenizer", "--corpus", str(args.corpus), "--out", str(args.out),
             "--vocab-size", str(args.vocab_size), "--seed", str(args.seed)]
    if args.max_train_chars != _DEFAULTS.max_train_chars:
        parts += ["--max-train-chars", str(args.max_train_chars)]
    if args.code_share != _DEFAULTS.code_share:
        parts += ["--code-share", str(args.code_share)]
    return shlex.join(parts)


def run_tokenizer(args: argparse.Namespace) -> int:
    """Train and save the tokenizer, print its figures."""
    config = TokenizerTrainConfig(
        vocab_size=args.vocab_size, seed=args.seed,
        max_train_chars=args.max_train_chars, code_share=args.code_share,
    )
    info = train_tokenizer(args.corpus, args.out, config, command=command_line(args))
    print(json.dumps(info, indent=2))
    return 0
