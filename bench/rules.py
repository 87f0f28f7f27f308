"""Compliance rule matching and editing time against the number of hits (linear, bounded).

Times, for a text of N hits of one banned phrase (``"a " * N``, the phrase ``a``):

* ``match_s``: :func:`workflows.rules.find_hits` alone;
* ``apply_stub_s``: :func:`workflows.compliance.apply_rules` with the shipped tokenizer and a
  stub predictor that answers at once (fixed logits): everything but the model's own work,
  i.e. staging, token mapping, span planning, splicing, edits, diff;
* ``apply_model_s`` (with ``--model``): the same with the shipped refiner, whose work the
  ``max_rewrites`` budget bounds.

Also the user patterns that froze the server before RE2 (``(a+)+$`` over ``"a" * 40 + "!"``)
and the built-in e-mail detector over a 200,000-character run of letters (quadratic on
Python's ``re``).

    python -m bench.rules [--hits 2000 4000 8000 32000] [--model] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from workflows.compliance import ComplianceParams, apply_rules
from workflows.engines import load_refiner
from workflows.rules import find_hits, parse_rules

BANNED = parse_rules({"rules": [{"id": "b", "type": "banned_phrase", "phrases": ["a"]}]})


class _Instant:
    """A mask predictor that costs nothing: every masked position predicts one fixed token."""

    max_length: int | None = 512

    def __init__(self, token: int, mask_id: int, vocab: int) -> None:
        self.token, self.mask_token_id, self.vocab = token, mask_id, vocab

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = torch.zeros((*input_ids.shape, self.vocab))
        out[..., self.token] = 10.0  # (B, T, V)
        return out


def _best(fn: Callable[[], Any], repeats: int) -> float:
    """Best of ``repeats`` runs, in seconds: other work on a shared CPU only ever slows a run."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(min(times), 4)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hits", type=int, nargs="+", default=[2000, 4000, 8000, 32000], help="hit counts to time")
    p.add_argument("--model", action="store_true", help="also time apply_rules with the shipped refiner")
    p.add_argument("--repeats", type=int, default=3, help="runs per figure; the best is kept")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from refiner.text import TextRefiner

    real = load_refiner()
    tok = real.tokenizer
    word = tok(" usually", add_special_tokens=False)["input_ids"][0]
    stub = TextRefiner(_Instant(word, int(real.special.mask), len(tok)), tok, special=real.special)
    rows = []
    for n in args.hits:
        text = "a " * n
        row: dict[str, Any] = {"hits": len(find_hits(text, BANNED)), "chars": len(text)}
        row["match_s"] = _best(partial(find_hits, text, BANNED), args.repeats)
        row["apply_stub_s"] = _best(partial(apply_rules, text, BANNED, stub, ComplianceParams()), args.repeats)
        if args.model:
            row["apply_model_s"] = _best(partial(apply_rules, text, BANNED, real, ComplianceParams()), 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    evil = parse_rules({"rules": [{"id": "r", "type": "redact", "kind": "regex", "pattern": "(a+)+$"}]})
    email = parse_rules({"rules": [{"id": "e", "type": "redact", "kind": "email"}]})
    letters = "a" * 200_000
    return {
        "scaling": rows,
        "max_rewrites": ComplianceParams().max_rewrites,
        "catastrophic_regex_s": _best(lambda: find_hits("a" * 40 + "!", evil), args.repeats),
        "email_200k_letters_s": _best(lambda: find_hits(letters, email), args.repeats),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    print(json.dumps(run(parser.parse_args()), indent=2))
