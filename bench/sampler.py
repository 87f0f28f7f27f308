"""Sampler speed and quality, like for like: every row denoises the same inputs as the baseline.

Workload: ``--cases`` spans of ``--span`` tokens cut from the code of the held-out packages
(``data/corpus`` split ``held_out_packages``: code no model saw), each with ``--window``
tokens of context on each side, so every row feeds the model the very same windows. The
documents are split in two by their order (odd / even): ``--calibrate`` measures on one
half, every other section on the other, so a calibrated setting is never judged on the text
it was chosen on.

The baseline is remask's LLaDA-equivalent loop (the test suite checks it against LLaDA's):
a full forward pass at every step with logits at every position, no cache, the even
schedule with one token committed per step (``steps`` = span), greedy low-confidence
remasking, one case at a time. Each row reports forward passes (per row of the batch),
seconds, tokens committed per forward pass, the share of tokens equal to the baseline's
output (``tokens_equal``), the share equal to the held-out text (``exact_match``, in
points) and the share of spans reproduced whole (``span_exact``).

Sections:

* ``levers``: each lever alone, then combined: logits only at the positions being filled,
  the context cache, the confidence threshold, the factor rule, the early exit, batching,
  and the fast path (all of them, at the model's calibrated settings);
* ``window``: the baseline and the fast path at several context lengths (quality and time
  against context length: a shorter window is faster for any sampler, so it is no
  sampler's speed-up);
* ``cache_refresh``: the fast path with the cache rebuilt every k steps, or only at block
  ends, against the same path without a cache (the speed/quality curve);
* ``long``: ``--long-tokens`` generated after a prompt in LLaDA's semi-autoregressive blocks;
* ``locality``: the same 16-token revision in documents of 512 to 32,000 tokens (``ratio``:
  8,000 against 512 tokens): only a window around the span is fed.

``baseline``, ``fast`` and ``speedup`` at the top are the baseline and the fast path (all
levers) of the ``levers`` section.

Timings are the best of ``--repeats`` runs (a busy shared CPU only ever slows a run down).
``--calibrate`` chooses the model's sampler defaults on the calibration half (the largest
factor, then the lowest early-exit bar, that keep exact match within
:data:`EXACT_MARGIN` points of the baseline and at least :data:`MIN_EQUAL` of its tokens,
and the cache refresh at the knee of its curve); ``--write`` stores them as ``sampler.json``
beside the model, where the loader reads them.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from refiner.editing import SpanEdit, fill_spans
from refiner.model import RefinerModel, refiner_config
from refiner.predictor import HFMaskPredictor, load_predictor, native_predictor
from refiner.sampler import SAMPLER_FILE, DenoiseResult, SamplerConfig, SamplerDefaults, denoise
from workflows.options import COMMIT_THRESHOLD, DEFAULTS

INFILL = DEFAULTS["infill"]

DEFAULT_MODEL = Path("models/refiner")
DEFAULT_CORPUS = Path("data/corpus")
SPLIT = "held_out_packages"
EXACT_MARGIN = 2.0  # points of exact match a calibrated setting may lose against the baseline
MIN_EQUAL = 0.6  # share of the baseline's tokens a calibrated setting must keep
FACTORS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)  # calibration grid of the factor rule
THRESHOLDS = (0.95, 0.9, 0.8, 0.7, 0.5, 0.3)  # calibration grid of the threshold (for the record)
EXIT_BARS = (0.9, 0.7, 0.5, 0.3)  # calibration grid of the early exit
REFRESH = (1, 2, 4, 8, 0)  # cache rebuilt every k steps; 0: only when a block begins
KNEE_SPEED = 0.9  # the knee: the most frequent refresh whose speed is within 10% of the fastest
WINDOWS = (16, 32, 64, 128, 240)  # context tokens on each side, the window section
LONG_BLOCK = 32  # LLaDA's block length for long generation
LOCALITY_LENGTHS = (512, 2000, 8000, 32000)  # document tokens


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None,
                   help="refiner directory (default: models/refiner if present, else a tiny random model)")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus directory with the held-out packages")
    p.add_argument("--cases", type=int, default=24, help="spans per section (the window section: --window-cases)")
    p.add_argument("--span", type=int, default=16, help="tokens per span")
    p.add_argument("--window", type=int, default=64, help="tokens of context each side, for every row")
    p.add_argument("--window-cases", type=int, default=8, help="spans per point of the window section")
    p.add_argument("--long-tokens", type=int, default=1024, help="tokens generated in the long section (0: skip)")
    p.add_argument("--long-prompt", type=int, default=64, help="prompt tokens before the long generation")
    p.add_argument("--repeats", type=int, default=3, help="runs of each fast row; the best one counts")
    p.add_argument("--calibrate", action="store_true",
                   help="choose the factor, early exit and cache refresh on the calibration half")
    p.add_argument("--write", action="store_true", help="with --calibrate: store them as sampler.json beside the model")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's own); 1 keeps a CPU shared with other jobs from "
                        "stalling every operation on thread hand-offs")
    p.add_argument("--seed", type=int, default=0)


# --- workload ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A document cut around one span: ``doc[at - context : at + span + context]`` is fed."""

    doc: list[int]
    at: int  # first token of the span in doc
    span: int

    def window(self, context: int) -> tuple[list[int], int]:
        """(the fed tokens, where the span starts in them) with up to ``context`` tokens each side."""
        lo = max(0, self.at - context)
        return self.doc[lo : self.at + self.span + context], self.at - lo

    @property
    def truth(self) -> list[int]:
        return self.doc[self.at : self.at + self.span]


@dataclass
class Outcome:
    """One sampler setting run over a list of cases."""

    outputs: list[list[int]]  # the span's tokens per case
    seconds: float
    row_passes: int  # forward passes summed over rows (a batch of 8 rows through once: 8)
    calls: int  # calls of the model (a batch through once: 1)


class _FullLogits:
    """The predictor seen as a plain mask predictor: a full forward pass with logits at every
    position at every step, so the sampler can use neither logits-only passes nor the cache."""

    def __init__(self, predictor: HFMaskPredictor) -> None:
        self.predictor = predictor
        self.mask_token_id = predictor.mask_token_id
        self.max_length = predictor.max_length

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.predictor(input_ids, attention_mask)


def _load(args: argparse.Namespace) -> tuple[HFMaskPredictor, Any, str, Path | None]:
    path = args.model or (DEFAULT_MODEL if (DEFAULT_MODEL / "config.json").exists() else None)
    if path is not None:
        pred, tok = load_predictor(path)
        return pred, tok, str(path), Path(path)
    torch.manual_seed(args.seed)
    return native_predictor(RefinerModel(refiner_config("tiny"))), None, "tiny (random init)", None


def _documents(args: argparse.Namespace, tokenizer: Any, need: int, vocab: int) -> tuple[list[list[int]], ...]:
    """Token ids of the held-out packages' code files of at least ``need`` tokens, split in two
    by their order: (evaluation, calibration)."""
    rng = random.Random(args.seed)
    if tokenizer is None:  # tiny fallback: random ids below the special-token range
        docs = [[rng.randrange(8, vocab) for _ in range(need + 2048)] for _ in range(2 * args.cases)]
        return docs[0::2], docs[1::2]
    from bench.quality import _ensure_corpus
    from training.corpus import iter_documents

    _ensure_corpus(args.corpus)
    docs = [tokenizer(d.text, add_special_tokens=False)["input_ids"]
            for d in sorted(iter_documents(args.corpus, SPLIT, kind="code"), key=lambda d: d.id)]
    evaluate, calibrate = [d for d in docs[0::2] if len(d) >= need], [d for d in docs[1::2] if len(d) >= need]
    if not evaluate or not calibrate:
        raise ValueError(f"too few {SPLIT} code documents of {need} tokens in {args.corpus}")
    return evaluate, calibrate


def _cases(docs: list[list[int]], n: int, span: int, room: int, seed: int) -> list[Case]:
    """``n`` spans, one per document in a shuffled order, each with ``room`` tokens free on both sides."""
    rng = random.Random(seed)
    order = list(range(len(docs)))
    rng.shuffle(order)
    out = []
    for i in range(n):
        doc = docs[order[i % len(order)]]
        out.append(Case(doc, rng.randrange(room, len(doc) - room - span + 1), span))
    return out


# --- running a setting -------------------------------------------------------------------------


def _denoise_cases(predictor: Any, cases: Sequence[Case], context: int,
                   cfg: SamplerConfig) -> tuple[DenoiseResult, list[list[int]]]:
    """The cases' windows (all of one length: no padding) denoised as one batch
    -> (the result, each case's span as filled)."""
    rows, starts = zip(*(c.window(context) for c in cases))
    ids = torch.tensor(rows, dtype=torch.long)
    editable = torch.zeros_like(ids, dtype=torch.bool)
    for r, (s, c) in enumerate(zip(starts, cases)):
        editable[r, s : s + c.span] = True
    res = denoise(predictor, ids, editable, config=cfg)
    return res, [res.ids[r, s : s + c.span].tolist() for r, (s, c) in enumerate(zip(starts, cases))]


def _once(predictor: Any, cases: Sequence[Case], context: int, cfg: SamplerConfig, batched: bool) -> Outcome:
    groups = [list(cases)] if batched else [[c] for c in cases]
    outputs: list[list[int]] = []
    row_passes = calls = 0
    t0 = time.perf_counter()
    for group in groups:
        res, filled = _denoise_cases(predictor, group, context, cfg)
        outputs += filled
        row_passes += int(res.row_steps.sum())
        calls += res.nfe
    return Outcome(outputs, time.perf_counter() - t0, row_passes, calls)


def _best(predictor: Any, cases: Sequence[Case], context: int, cfg: SamplerConfig, batched: bool,
          repeats: int) -> Outcome:
    """The fastest of ``repeats`` runs (greedy: every run gives the same tokens)."""
    runs = [_once(predictor, cases, context, cfg, batched) for _ in range(max(1, repeats))]
    return min(runs, key=lambda o: o.seconds)


def _figures(out: Outcome, cases: Sequence[Case], base: Outcome | None) -> dict[str, Any]:
    """A row: passes, seconds, tokens per pass, agreement with the baseline and the held-out text."""
    tokens = sum(c.span for c in cases)
    right = sum(a == b for c, o in zip(cases, out.outputs) for a, b in zip(c.truth, o))
    row: dict[str, Any] = {
        "nfe": out.row_passes, "calls": out.calls, "seconds": round(out.seconds, 3),
        "tokens_per_pass": round(tokens / max(out.row_passes, 1), 2),
        "exact_match": round(100.0 * right / tokens, 2),
        "span_exact": round(100.0 * sum(c.truth == o for c, o in zip(cases, out.outputs)) / len(cases), 2),
    }
    if base is not None:
        same = sum(a == b for o, b_out in zip(out.outputs, base.outputs) for a, b in zip(o, b_out))
        row["tokens_equal"] = round(same / tokens, 3)
        row["speedup"] = round(base.seconds / out.seconds, 2)
    return row


# --- sections ----------------------------------------------------------------------------------


@dataclass
class _Bench:
    """What every section shares: the model, both predictors, the settings and the options."""

    pred: HFMaskPredictor
    full: _FullLogits
    baseline: SamplerConfig  # LLaDA-equivalent: one token per step
    fast: SamplerConfig  # the model's calibrated settings with the cache
    args: argparse.Namespace

    def base_run(self, cases: Sequence[Case], context: int) -> Outcome:
        # the baseline takes minutes: one run (its time is a lower bound on nothing; every
        # speed-up against it is then if anything understated by noise)
        return _once(self.full, cases, context, self.baseline, batched=False)

    def run(self, cases: Sequence[Case], context: int, cfg: SamplerConfig, batched: bool,
            full: bool = False) -> Outcome:
        return _best(self.full if full else self.pred, cases, context, cfg, batched, self.args.repeats)


def _levers(b: _Bench, cases: list[Case], base: Outcome) -> list[dict[str, Any]]:
    """Each lever alone against the baseline on the same cases, then combined."""
    w, fast, bl = b.args.window, b.fast, b.baseline
    rows: list[tuple[str, str, Callable[[], Outcome]]] = [
        ("logits_only", "logits only at the positions being filled",
         lambda: b.run(cases, w, bl, batched=False)),
        ("cache", f"context cache, refreshed every {fast.cache_refresh or 'block'} steps",
         lambda: b.run(cases, w, replace(bl, cache=True, cache_refresh=fast.cache_refresh), batched=False)),
        ("threshold", "commit every position above 0.9 (the requests' default)",
         lambda: b.run(cases, w, replace(bl, threshold=0.9), batched=False, full=True)),
        ("factor", f"factor rule, f = {fast.factor}",
         lambda: b.run(cases, w, replace(bl, factor=fast.factor), batched=False, full=True)),
        ("early_exit", f"early exit above {fast.early_exit}",
         lambda: b.run(cases, w, replace(bl, early_exit=fast.early_exit), batched=False, full=True)),
        ("batch", "all cases as one batch", lambda: b.run(cases, w, bl, batched=True, full=True)),
        ("fast_unbatched", "all levers but batching", lambda: b.run(cases, w, fast, batched=False)),
        ("fast", "all levers", lambda: b.run(cases, w, fast, batched=True)),
        ("infill_defaults", f"all levers at an infill request's defaults (steps {INFILL.steps}, threshold "
         f"{COMMIT_THRESHOLD})", lambda: b.run(cases, w, replace(fast, steps=INFILL.steps, threshold=COMMIT_THRESHOLD),
                                               batched=True)),
    ]
    out = []
    for name, what, fn in rows:
        out.append({"lever": name, "what": what, **_figures(fn(), cases, base)})
    return out


def _window_section(b: _Bench, cases: list[Case]) -> list[dict[str, Any]]:
    """Baseline and fast path at each context length, on the same spans."""
    points = []
    for w in WINDOWS:
        base = b.base_run(cases, w)
        fast = b.run(cases, w, b.fast, batched=True)
        points.append({"window": w, "tokens_fed": 2 * w + b.args.span, "baseline": _figures(base, cases, None),
                       "fast": _figures(fast, cases, base)})
    return points


def _refresh_curve(b: _Bench, cases: list[Case], context: int, base: Outcome,
                   cfg: SamplerConfig) -> list[dict[str, Any]]:
    """The fast path without a cache, then with it rebuilt every k steps of :data:`REFRESH`."""
    points = [{"refresh": None, **_figures(b.run(cases, context, replace(cfg, cache=False), batched=True),
                                             cases, base)}]
    for k in REFRESH:
        out = b.run(cases, context, replace(cfg, cache=True, cache_refresh=k), batched=True)
        points.append({"refresh": k, **_figures(out, cases, base)})
    return points


def knee(curve: list[dict[str, Any]]) -> int:
    """The most frequent refresh whose time is within :data:`KNEE_SPEED` of the fastest
    refresh's: past it, refreshing less buys little speed and costs agreement."""
    cached = [p for p in curve if p["refresh"] is not None]
    fastest = min(p["seconds"] for p in cached)
    ok = [p for p in cached if fastest / p["seconds"] >= KNEE_SPEED]
    ok.sort(key=lambda p: p["refresh"] or float("inf"))  # 1 (every step) first, 0 (per block) last
    return int(ok[0]["refresh"])


def _long(b: _Bench, docs: list[list[int]]) -> dict[str, Any]:
    """``--long-tokens`` generated after a ``--long-prompt`` prompt in blocks of
    :data:`LONG_BLOCK`: the baseline takes a full pass per token; the fast path runs the model
    only on the current block against the cache, and commits several tokens a pass."""
    n, prompt = b.args.long_tokens, b.args.long_prompt
    doc = next(d for d in docs if len(d) >= prompt + n)
    case = Case(doc[: prompt + n], prompt, n)
    limit = b.pred.max_length
    with _context_of(b, prompt + n):
        base_cfg = replace(b.baseline, steps=n, block_length=LONG_BLOCK)
        base = _once(b.full, [case], prompt, base_cfg, batched=False)
        fast = _best(b.pred, [case], prompt, replace(b.fast, steps=n, block_length=LONG_BLOCK), True,
                     b.args.repeats)
    return {"generated_tokens": n, "prompt_tokens": prompt, "block_length": LONG_BLOCK,
            "beyond_trained_context": limit is not None and prompt + n > limit,
            "baseline": _figures(base, [case], None), "fast": _figures(fast, [case], base)}


@contextmanager
def _context_of(b: _Bench, length: int) -> Iterator[None]:
    """Let both predictors take rows of ``length`` tokens for a while. Past the trained context
    rotary positions run on and the output is out of the model's training (its quality figures
    say so); the passes and seconds are what they are."""
    config: Any = b.pred.model.config  # a transformers config behind the nn.Module type
    limit, trained = b.pred.max_length, config.max_position_embeddings
    config.max_position_embeddings = max(trained, length)
    b.pred.max_length = b.full.max_length = None if limit is None else max(limit, length)
    try:
        yield
    finally:
        config.max_position_embeddings = trained
        b.pred.max_length = b.full.max_length = limit


# --- calibration -------------------------------------------------------------------------------


def _keeps(row: dict[str, Any], base: dict[str, Any]) -> bool:
    return bool(row["exact_match"] >= base["exact_match"] - EXACT_MARGIN and row["tokens_equal"] >= MIN_EQUAL)


def calibrate(b: _Bench, cases: list[Case]) -> dict[str, Any]:
    """The model's defaults, chosen on the calibration half: the largest factor, then (with it)
    the lowest early-exit bar, that keep the margin; the cache refresh at the knee of its curve.
    The threshold is measured for the record (these models seldom reach it)."""
    w = b.args.window
    base = b.base_run(cases, w)
    base_row = _figures(base, cases, None)
    nocache = replace(b.baseline, cache=False)

    def sweep(cfgs: list[tuple[Any, SamplerConfig]]) -> list[dict[str, Any]]:
        return [{"value": v, **_figures(_once(b.pred, cases, w, c, True), cases, base)} for v, c in cfgs]

    thresholds = sweep([(t, replace(nocache, threshold=t)) for t in THRESHOLDS])
    factors = sweep([(f, replace(nocache, factor=f)) for f in FACTORS])
    factor = max((p["value"] for p in factors if _keeps(p, base_row)), default=None)
    with_factor = replace(nocache, factor=factor)
    exits = sweep([(e, replace(with_factor, early_exit=e)) for e in EXIT_BARS])
    early_exit = min((p["value"] for p in exits if _keeps(p, base_row)), default=None)
    chosen = replace(with_factor, early_exit=early_exit)
    curve = _refresh_curve(b, cases, w, base, chosen)
    cached = [p for p in curve if p["refresh"] is not None and _keeps(p, base_row)]
    refresh = knee(cached) if cached else None
    defaults = SamplerDefaults(factor=factor, early_exit=early_exit, cache_refresh=refresh)
    return {"defaults": defaults.as_dict(), "cases": len(cases), "window": w, "baseline": base_row,
            "margin": {"exact_match_points": EXACT_MARGIN, "min_tokens_equal": MIN_EQUAL},
            "threshold": thresholds, "factor": factors, "early_exit": exits, "cache_refresh": curve}


# --- the command -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    pred, tok, name, path = _load(args)
    config: Any = pred.model.config  # a transformers config behind the nn.Module type
    vocab = int(config.vocab_size)
    room = max(max(WINDOWS), args.window)
    need = max(2 * room + args.span, args.long_prompt + args.long_tokens)
    evaluate, calib = _documents(args, tok, 2 * room + args.span, vocab)
    suppress = _suppressed(pred, tok)
    baseline = SamplerConfig(steps=args.span, suppress_ids=suppress)
    stored = SamplerDefaults.beside(path) if path is not None else SamplerDefaults()
    b = _Bench(pred, _FullLogits(pred), baseline, stored.apply(replace(baseline, cache=True)), args)
    _denoise_cases(pred, _cases(evaluate, 1, args.span, room, args.seed), args.window, baseline)  # warm-up
    figures: dict[str, Any] = {"model": name, "split": SPLIT, "span_tokens": args.span, "window": args.window,
                               "timing": f"best of {args.repeats} runs (the baseline: one run)",
                               "threads": torch.get_num_threads()}
    if args.calibrate:
        cal = calibrate(b, _cases(calib, args.cases, args.span, room, args.seed))
        figures["calibration"] = cal
        stored = SamplerDefaults(**cal["defaults"])
        b.fast = stored.apply(replace(baseline, cache=True))
        if args.write and path is not None:
            (path / SAMPLER_FILE).write_text(json.dumps({**cal["defaults"], "measured": _provenance(cal)}, indent=1)
                                             + "\n")
    figures["defaults"] = stored.as_dict()
    cases = _cases(evaluate, args.cases, args.span, room, args.seed + 1)
    base = b.base_run(cases, args.window)
    figures["baseline"] = {"what": "full pass, logits everywhere, no cache, one token per step, one case at a time",
                           **_figures(base, cases, None)}
    figures["levers"] = _levers(b, cases, base)
    fast = next(r for r in figures["levers"] if r["lever"] == "fast")
    figures.update(cases=len(cases), fast=fast, speedup=fast["speedup"])
    figures["window"] = _window_section(b, cases[: args.window_cases])
    figures["cache_refresh"] = _refresh_curve(b, cases, args.window, base, replace(b.fast, cache=False))
    if args.long_tokens > 0:
        long_docs = [d for d in evaluate if len(d) >= need] or evaluate
        figures["long"] = _long(b, long_docs)
    figures["locality"] = _locality(pred, evaluate, replace(b.fast, steps=16), args.window)
    return figures


def _suppressed(pred: HFMaskPredictor, tok: Any) -> tuple[int, ...]:
    """The special ids a fill never commits, as the TextRefiner every pipeline uses bans them."""
    if tok is None:
        return ()
    from refiner.text import TextRefiner

    return TextRefiner(pred, tok).sampler(SamplerConfig()).suppress_ids


def _provenance(cal: dict[str, Any]) -> dict[str, Any]:
    """How the stored defaults were chosen, in short, beside them."""
    return {"by": "remask bench sampler --calibrate --write", "split": f"{SPLIT} (calibration half)",
            "cases": cal["cases"], "window": cal["window"], "margin": cal["margin"],
            "baseline_exact_match": cal["baseline"]["exact_match"]}


def _locality(pred: HFMaskPredictor, docs: list[list[int]], cfg: SamplerConfig, window: int) -> dict[str, Any]:
    """Time one 16-token span revision in the middle of documents of each ``LOCALITY_LENGTHS``.

    The lengths take turns in every round, so a noisy neighbour on a shared CPU hits them
    alike; each figure is the median of the rounds.
    """
    longest = max(LOCALITY_LENGTHS)
    stream = [t for d in docs for t in d]
    while len(stream) < longest:
        stream = stream + stream
    pad = pred.special.pad if pred.special and pred.special.pad is not None else 0
    times: dict[int, list[float]] = {n: [] for n in LOCALITY_LENGTHS}
    for _ in range(5):
        for n in LOCALITY_LENGTHS:
            edit = SpanEdit.remask(n // 2, n // 2 + 16)
            t0 = time.perf_counter()
            fill_spans(pred, [stream[:n]], [[edit]], pad, window=window, config=cfg)
            times[n].append(time.perf_counter() - t0)
    med = {n: statistics.median(t) for n, t in times.items()}
    short, long = med[512], med[8000]
    return {"short_doc_s": round(short, 4), "long_doc_s": round(long, 4), "ratio": round(long / short, 3),
            "by_length_s": {str(n): round(t, 4) for n, t in med.items()},
            "ratio_longest": round(med[longest] / short, 3)}
