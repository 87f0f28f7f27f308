"""Compliance rewrites on held-out prose: banned phrases planted in grammatical places, then the rules applied.

Paragraphs come from the corpus's held-out prose (the ``held_out`` and ``held_out_packages``
splits: text no model was trained on). Into each, one or two banned phrases of the project's
example rules (examples/rules.yaml) are planted where English allows them: "always" after a
modal or a form of "be", "risk-free" before the noun after an article, "We guarantee that"
before a sentence. Figures (JSON):

- ``banned_left_unflagged``: banned phrases in the output that no needs-review finding
  reports (must be 0);
- ``applied_reading_worse``: applied rewrites whose sentence reads worse, per token under the
  drafter, than the original sentence (must be 0); ``applied_reading_worse_refiner``: the
  same judged by the refiner's pseudo-log-likelihood, a judge the ranking never saw;
- ``needs_review_share``: findings returned for review, of all findings, and by reason;
  ``--sweep`` runs again at larger fluency margins (the trade-off the default is chosen on);
- ``latency_s``: mean and p50 seconds per paragraph (noisy on a loaded machine).

Run alone: ``python -m bench.quality_compliance --cases 48 --sweep --write``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "examples" / "rules.yaml"
RESULT = ROOT / "bench" / "results" / "quality_compliance.json"
SPLITS = ("held_out", "held_out_packages")
MIN_CHARS, MAX_CHARS = 160, 700  # a paragraph of a few sentences
SWEEP = (0.1, 0.25, 0.5)  # fluency margins tried besides the default with --sweep

# where each phrase reads as English: (pattern whose end is the insertion point, text put there)
_PLANTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(?:will|can|must|should|may|would) (?=[a-z]{3,} )"), "always "),
    (re.compile(r"\b(?:is|are) (?=[a-z]{4,}ed\b)"), "always "),
    (re.compile(r"\b(?:a|the) (?=[a-z]{4,} )"), "risk-free "),
    (re.compile(r"(?:^|(?<=[.!?] ))(?=(?:The|This|These|It|Each|Every|All) )"), "We guarantee that "),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compliance-cases", dest="compliance_cases", type=int, default=None,
                   help="paragraphs of held-out prose to plant banned phrases in (default: --cases, at least 40)")


def paragraphs(corpus: Path) -> list[str]:
    """Prose paragraphs of the held-out splits: a few sentences, mostly letters."""
    from training.corpus import iter_documents

    out: list[str] = []
    for split in SPLITS:
        for doc in iter_documents(corpus, split, kind="prose"):
            for para in re.split(r"\n\s*\n", doc.text):
                para = para.strip()
                letters = sum(c.isalpha() or c.isspace() for c in para)
                if MIN_CHARS <= len(para) <= MAX_CHARS and letters > 0.9 * len(para) and ". " in para:
                    out.append(para)
    return list(dict.fromkeys(out))


def plant(text: str, rng: random.Random) -> tuple[str, int] | None:
    """``text`` with one or two banned phrases put where they read as English, and how many."""
    spots = [(m.end(), phrase) for rx, phrase in _PLANTS for m in rx.finditer(text)]
    if not spots:
        return None
    chosen = sorted(rng.sample(spots, min(len(spots), rng.choice((1, 2)))), reverse=True)
    for at, phrase in chosen:
        if phrase.startswith("We"):  # the sentence now follows "that": its first word in lower case
            text = text[:at] + phrase + text[at].lower() + text[at + 1:]
        else:
            text = text[:at] + phrase + text[at:]
    return text, len(chosen)


def measure(refiner_path: Path | None, drafter_path: Path | None, corpus: Path, cases: int, seed: int,
            sweep: tuple[float, ...] = ()) -> dict[str, Any]:
    """The figures at the default options; ``sweep``: also the needs-review share and the applied
    rewrites reading worse at each of these fluency margins (a full run each)."""
    from workflows.engines import load_drafter, load_refiner
    from workflows.options import ComplianceParams
    from workflows.rules import load_rules

    rules = load_rules(RULES)
    refiner, drafter = load_refiner(refiner_path), load_drafter(drafter_path)
    rng = random.Random(seed)
    pool = paragraphs(corpus)
    rng.shuffle(pool)
    planted: list[str] = []
    for para in pool:
        if len(planted) >= max(cases, 40):
            break
        p = plant(para, rng)
        if p is not None:
            planted.append(p[0])
    params = ComplianceParams()
    out = _figures(_run(planted, rules, refiner, drafter, params), params)
    if sweep:
        out["margin_sweep"] = {}
        for m in sweep:
            swept = ComplianceParams(fluency_margin=m)
            fig = _figures(_run(planted, rules, refiner, drafter, swept), swept)
            out["margin_sweep"][str(m)] = {k: fig[k] for k in ("needs_review_share", "applied_reading_worse",
                                                               "applied_reading_worse_refiner", "applied")}
    return out


def _run(planted: list[str], rules: Any, refiner: Any, drafter: Any, params: Any) -> list[dict[str, Any]]:
    """Apply the rules to each planted paragraph; what each run decided and how long it took."""
    from workflows.compliance import apply_rules
    from workflows.findings import banned_spans
    from workflows.fluency import RefinerFluency
    from workflows.rewrite import sentence_around
    from workflows.rules import BannedPhrase

    bans = [r for r in rules.rules if isinstance(r, BannedPhrase)]
    independent = RefinerFluency(refiner)
    rows: list[dict[str, Any]] = []
    for text in planted:
        t0 = time.perf_counter()
        res = apply_rules(text, rules, refiner, params, drafter=drafter)
        seconds = time.perf_counter() - t0
        worse_refiner = 0
        for rw in res.rewrites:  # the sentence before, and the same stretch of the output after
            a, b = sentence_around(text, rw.start, rw.end)
            before, after = independent([text[a:b], res.text[_moved(res.edits, a):_moved(res.edits, b)]])
            worse_refiner += after.mean < before.mean
        rows.append({"findings": res.audit.outcome["findings"] if res.audit else 0, "seconds": seconds,
                     "left": len(banned_spans(res.text, bans)), "reviews": [r.reason for r in res.needs_review],
                     "worse": sum(rw.fluency_after < rw.fluency_before for rw in res.rewrites),
                     "worse_refiner": worse_refiner, "kinds": [rw.kind for rw in res.rewrites]})
    return rows


def _moved(edits: list[Any], at: int) -> int:
    """Where offset ``at`` of the input lies in the output (the edits before it applied)."""
    return at + sum(len(e.after) - (e.end - e.start) for e in edits if e.end <= at)


def _figures(rows: list[dict[str, Any]], params: Any) -> dict[str, Any]:
    findings = sum(r["findings"] for r in rows)
    reviews = [v for r in rows for v in r["reviews"]]
    secs = [r["seconds"] for r in rows]
    kinds = [k for r in rows for k in r["kinds"]]
    return {
        "paragraphs": len(rows),
        "findings": findings,
        "applied": len(kinds),
        "applied_edits": kinds.count("edit"),
        "applied_refiner_rewrites": kinds.count("rewrite"),
        "banned_left_unflagged": sum(max(0, r["left"] - len(r["reviews"])) for r in rows),
        "applied_reading_worse": sum(r["worse"] for r in rows),
        "applied_reading_worse_refiner": sum(r["worse_refiner"] for r in rows),
        "needs_review": len(reviews),
        "needs_review_share": round(len(reviews) / max(findings, 1), 4),
        "needs_review_by_reason": {k: reviews.count(k) for k in ("still_banned", "reads_worse", "over_budget")},
        "latency_s": {"mean": round(statistics.mean(secs), 3) if secs else 0.0,
                      "p50": round(statistics.median(secs), 3) if secs else 0.0},
        "options": {"fluency_margin": params.fluency_margin, "rewrite_gain": params.rewrite_gain,
                    "attempts": params.attempts},
        "rules": str(RULES.relative_to(ROOT)),
        "splits": list(SPLITS),
        "note": "latency on a shared 2-core machine under load: noisy",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--refiner", type=Path, default=None)
    p.add_argument("--drafter", type=Path, default=None)
    p.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus")
    p.add_argument("--cases", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sweep", action="store_true", help=f"also run at the fluency margins {SWEEP}")
    p.add_argument("--write", action="store_true", help=f"write the JSON to {RESULT.relative_to(ROOT)}")
    args = p.parse_args()
    out = measure(args.refiner, args.drafter, args.corpus, args.cases, args.seed, SWEEP if args.sweep else ())
    text = json.dumps(out, indent=2)
    print(text)
    if args.write:
        RESULT.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
