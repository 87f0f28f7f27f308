"""Sampler speed and quality: LLaDA-style baseline against the fast path (threshold + window + batch).

Workload: ``--cases`` spans of ``--span`` tokens cut from the middle of held-out documents
(code by default), with up to ``--context`` tokens on each side. The baseline mirrors the
LLaDA reference sampler: one token committed per step, the whole sequence fed, low-confidence
remasking, one case at a time. The fast path commits every position above ``--threshold``
(at least one per step), feeds only ``--window`` tokens of context on each side, and runs all
cases as one batch. Locality times the same span revision in a short and a long document.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from refiner.editing import SpanEdit, fill_spans
from refiner.model import RefinerModel, refiner_config
from refiner.predictor import HFMaskPredictor, load_predictor, native_predictor
from refiner.sampler import SamplerConfig

DEFAULT_MODEL = Path("models/refiner")
DEFAULT_CORPUS = Path("data/corpus")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None, help="refiner directory (default: models/refiner if present, else a tiny random model)")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus directory with the held-out split")
    p.add_argument("--kind", choices=["code", "prose"], default="code", help="held-out documents to cut spans from")
    p.add_argument("--cases", type=int, default=24, help="number of spans")
    p.add_argument("--span", type=int, default=16, help="tokens per span")
    p.add_argument("--context", type=int, default=240, help="tokens of context each side in the baseline")
    p.add_argument("--window", type=int, default=64, help="tokens of context each side in the fast path")
    p.add_argument("--threshold", type=float, default=0.9, help="commit threshold of the fast path")
    p.add_argument("--no-cache", action="store_true", help="fast path without the approximate context cache")
    p.add_argument("--seed", type=int, default=0)


def _load(args: argparse.Namespace) -> tuple[HFMaskPredictor, Any, str]:
    path = args.model or (DEFAULT_MODEL if (DEFAULT_MODEL / "config.json").exists() else None)
    if path is not None:
        pred, tok = load_predictor(path)
        return pred, tok, str(path)
    torch.manual_seed(args.seed)
    return native_predictor(RefinerModel(refiner_config("tiny"))), None, "tiny (random init)"


def _documents(args: argparse.Namespace, tokenizer: Any, need: int, vocab: int) -> list[list[int]]:
    """Token id lists of held-out documents at least ``need`` tokens long."""
    rng = random.Random(args.seed)
    if tokenizer is None:  # tiny fallback: random ids below the special-token range
        return [[rng.randrange(vocab - 8) for _ in range(need + 8000)] for _ in range(args.cases)]
    from bench.quality import held_out

    docs = []
    for text in held_out(args.corpus, args.kind):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= need:
            docs.append(ids)
    if not docs:
        raise ValueError(f"no held-out {args.kind} document has {need} tokens")
    rng.shuffle(docs)
    return docs


def _cases(docs: list[list[int]], n: int, span: int, context: int, seed: int) -> list[tuple[list[int], SpanEdit]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        doc = docs[i % len(docs)]
        start = rng.randrange(0, len(doc) - (2 * context + span) + 1)
        chunk = doc[start : start + 2 * context + span]
        out.append((chunk, SpanEdit.remask(context, context + span)))
    return out


def _accuracy(cases: list[tuple[list[int], SpanEdit]], filled: list[list[int]]) -> tuple[float, float]:
    right = total = exact = 0
    for (doc, e), toks in zip(cases, filled):
        truth = doc[e.start : e.end]
        right += sum(a == b for a, b in zip(truth, toks))
        total += len(truth)
        exact += truth == toks
    return 100.0 * right / total, 100.0 * exact / len(cases)


def run(args: argparse.Namespace) -> dict[str, Any]:
    pred, tok, name = _load(args)
    pad = pred.special.pad if pred.special and pred.special.pad is not None else 0
    vocab = int(getattr(pred.model, "config").vocab_size)
    max_len = pred.max_length or 4096
    context = min(args.context, (max_len - args.span) // 2)
    docs = _documents(args, tok, 2 * context + args.span, vocab)
    cases = _cases(docs, args.cases, args.span, context, args.seed)
    fill_spans(pred, [cases[0][0]], [[cases[0][1]]], pad, None, SamplerConfig(steps=1))  # warm-up

    base_cfg = SamplerConfig(steps=args.span, remasking="low_confidence")
    t0 = time.perf_counter()
    base_nfe, base_out = 0, []
    for doc, e in cases:
        r = fill_spans(pred, [doc], [[e]], pad, window=None, config=base_cfg)[0]
        base_nfe += r.nfe
        base_out.append(r.spans[0].raw_tokens)
    base_s = time.perf_counter() - t0

    def fast(cache: bool) -> tuple[float, Any, list[list[int]]]:
        cfg = SamplerConfig(steps=args.span, threshold=args.threshold, cache=cache)
        t0 = time.perf_counter()
        res = fill_spans(pred, [d for d, _ in cases], [[e] for _, e in cases], pad, window=args.window, config=cfg)
        return time.perf_counter() - t0, res, [r.spans[0].raw_tokens for r in res]

    nocache_s, nocache_res, nocache_out = fast(False)
    fast_s, res, fast_out = fast(not args.no_cache)

    b_acc, b_exact = _accuracy(cases, base_out)
    f_acc, f_exact = _accuracy(cases, fast_out)
    n_acc, n_exact = _accuracy(cases, nocache_out)
    return {
        "model": name,
        "cases": len(cases),
        "span_tokens": args.span,
        "baseline": {"nfe": base_nfe, "seconds": round(base_s, 3), "exact_match": round(b_acc, 2),
                     "span_exact": round(b_exact, 2), "tokens_fed": 2 * context + args.span},
        "fast": {"nfe": res[0].nfe, "seconds": round(fast_s, 3), "exact_match": round(f_acc, 2),
                 "span_exact": round(f_exact, 2), "tokens_fed": res[0].row_tokens,
                 "threshold": args.threshold, "window": args.window, "cache": not args.no_cache},
        "speedup": round(base_s / fast_s, 2),
        "fast_without_cache": {"nfe": nocache_res[0].nfe, "seconds": round(nocache_s, 3),
                               "exact_match": round(n_acc, 2), "span_exact": round(n_exact, 2),
                               "speedup": round(base_s / nocache_s, 2)},
        "locality": _locality(pred, pad, docs, args),
    }


def _locality(pred: HFMaskPredictor, pad: int, docs: list[list[int]], args: argparse.Namespace) -> dict[str, float]:
    """Time one 16-token span revision in a 512-token and an 8,000-token document."""
    stream = [t for d in docs for t in d]
    while len(stream) < 8000:
        stream = stream + stream
    cfg = SamplerConfig(steps=16, threshold=args.threshold, cache=not args.no_cache)

    def timed(n: int) -> float:
        doc = stream[:n]
        edit = SpanEdit.remask(n // 2, n // 2 + 16)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            fill_spans(pred, [doc], [[edit]], pad, window=args.window, config=cfg)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    short, long = timed(512), timed(8000)
    return {"short_doc_s": round(short, 4), "long_doc_s": round(long, 4), "ratio": round(long / short, 3)}
