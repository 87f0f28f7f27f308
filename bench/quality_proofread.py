"""Proofreading on held-out prose: word error rate before and after, on licences and on documentation.

Two kinds of prose no model trained on, each its own figure:

- licences: the licence and copyright texts of the file-level held-out split;
- documentation: the package descriptions (READMEs) of the held-out packages and the
  held-out description files of other packages: Markdown and reStructuredText full of code
  spans, identifiers, URLs and version numbers, the text that proofreading made worse when
  it trusted a word list grown from licences.

Paragraphs are picked as ``bench quality``'s repair_prose picks them (200-700 characters,
more than 30 spaces) and corrupted with its corruption model (:func:`bench.quality.corrupt_words`:
deleted, swapped and misspelled words, 12% of the words), then revised with the default
options (``remask revise`` with the language named: no spans, so prose is proofread; both
models check each fix).
Word error rate is measured against the paragraph as written, before and after.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.quality import DEFAULT_CORPUS, corrupt_words, wer

CORRUPTION_RATE = 0.12  # share of words corrupted, as in bench quality's repair_prose
LICENCE_SOURCES = ("dist-info-license", "doc-copyright", "common-licenses")
DOCUMENTATION_SOURCES = ("package-description",)
# set name -> (splits, sources, the language revise is told): all held out; documents of
# packages count in either split. The language is named as a user proofreading a README
# would name it: unnamed, a paragraph holding a doctest reads as code, which revise rewrites
SETS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "licences": (("held_out",), LICENCE_SOURCES, "prose"),
    "documentation": (("held_out_packages", "held_out"), DOCUMENTATION_SOURCES, "markdown"),
}
RESULT_FILE = Path("bench/results/quality_proofread.json")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--refiner", type=Path, default=None, help="refiner directory (default: models/refiner)")
    p.add_argument("--drafter", type=Path, default=None, help="drafter directory (default: models/drafter)")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus with the held-out splits")
    p.add_argument("--proofread-cases", type=int, default=60, help="paragraphs of each kind of prose")
    p.add_argument("--seed", type=int, default=0)


def paragraphs(texts: list[str]) -> list[str]:
    """Paragraphs of prose long enough to proofread, as bench quality's repair_prose picks them."""
    return [p.strip() for t in texts for p in t.split("\n\n") if 200 <= len(p.strip()) <= 700 and p.count(" ") > 30]


def held_out_texts(corpus: Path, splits: tuple[str, ...], sources: tuple[str, ...]) -> list[str]:
    """Prose documents of ``sources`` in the held-out ``splits`` (no model trained on them)."""
    from training.corpus import iter_documents

    return [d.text for split in splits for d in iter_documents(corpus, split, kind="prose") if d.source in sources]


def run_set(paras: list[str], language: str, refiner: Any, drafter: Any, rng: random.Random,
            seed: int) -> dict[str, Any]:
    """Corrupt each paragraph, revise it, and compare both with the paragraph as written."""
    from workflows.options import ReviseParams
    from workflows.revise import revise

    before, after, latency = [], [], []
    reasons: Counter[str] = Counter()
    outcomes: dict[str, Counter[str]] = {}
    changed = 0
    for p in paras:
        bad = corrupt_words(p, CORRUPTION_RATE, rng)
        t0 = time.perf_counter()
        res = revise(bad, ReviseParams(seed=seed, language=language), refiner, drafter)
        latency.append(time.perf_counter() - t0)
        before.append(wer(p, bad))
        after.append(wer(p, res.text))
        reasons.update(e.reason for e in res.edits)
        for e in res.edits:
            outcomes.setdefault(e.reason, Counter())[edit_outcome(p, bad, e)] += 1
        changed += res.text != bad
    b, a = statistics.mean(before), statistics.mean(after)
    return {"cases": len(paras), "wer_before": round(100 * b, 2), "wer_after": round(100 * a, 2),
            "reduction": round(1 - a / b, 3) if b else 0.0,
            "paragraphs_made_worse": sum(1 for x, y in zip(before, after) if y > x),
            "paragraphs_made_better": sum(1 for x, y in zip(before, after) if y < x),
            "paragraphs_changed": changed, "edits": dict(sorted(reasons.items())),
            "edit_outcomes": {k: dict(sorted(v.items())) for k, v in sorted(outcomes.items())},
            "mean_latency_ms": round(1000 * statistics.mean(latency), 1),
            "p50_latency_ms": round(1000 * statistics.median(latency), 1)}


def edit_outcome(reference: str, corrupted: str, edit: Any) -> str:
    """Whether one applied edit, alone, brings the corrupted paragraph nearer its reference
    ("right"), further from it ("wrong") or neither ("neutral": a word moved within a run of
    wrong ones, say): which kinds of fix make paragraphs worse."""
    from workflows.edits import apply_edits

    was, now = wer(reference, corrupted), wer(reference, apply_edits(corrupted, [edit]))
    return "right" if now < was else "wrong" if now > was else "neutral"


def measure(refiner_path: Path | None, drafter_path: Path | None, corpus: Path, cases: int,
            seed: int) -> dict[str, Any]:
    """Word error rate before and after proofreading, per kind of held-out prose."""
    from workflows.engines import load_drafter, load_refiner

    if cases < 1:
        raise ValueError(f"--proofread-cases must be at least 1, got {cases}")
    refiner = load_refiner(refiner_path)
    drafter = load_drafter(drafter_path)
    out: dict[str, Any] = {"refiner": refiner.path, "drafter": getattr(drafter, "path", None),
                           "corruption_rate": CORRUPTION_RATE}
    for name, (splits, sources, language) in SETS.items():
        pool = paragraphs(held_out_texts(corpus, splits, sources))
        rng = random.Random(f"{seed}:proofread:{name}")  # one stream per set: a set alone draws the same
        rng.shuffle(pool)
        if len(pool) < cases:
            print(f"bench quality: only {len(pool)} {name} paragraphs; asked for {cases}", file=sys.stderr)
        out[name] = {"splits": list(splits), "sources": list(sources), "language": language,
                     **run_set(pool[:cases], language, refiner, drafter, rng, seed)}
    return out


def _stored(figures: dict[str, Any], seconds: float, argv: list[str]) -> dict[str, Any]:
    """The figures with when, where and how they were measured, as ``remask bench`` stores results."""
    import torch

    from bench.report.results import Measured, StoredResult, git_commit, git_dirty, this_machine

    measured = Measured(date=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()), commit=git_commit(),
                        machine=this_machine(), torch=torch.__version__, python=platform.python_version(),
                        command=" ".join(["python -m bench.quality_proofread", *argv]), seconds=round(seconds, 1),
                        dirty=git_dirty())
    return StoredResult("quality_proofread", figures, measured).to_json()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(p)
    p.add_argument("--out", type=Path, default=RESULT_FILE, help="where the JSON goes (default %(default)s)")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    figures = measure(args.refiner, args.drafter, args.corpus, args.proofread_cases, args.seed)
    result = _stored(figures, time.monotonic() - t0, sys.argv[1:] if argv is None else argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
