"""Pipeline quality on held-out text: infill by mode, code repair, prose repair.

- infill: single-line and multi-line spans cut from held-out Python files, filled in each
  mode (ar, diffusion, hybrid): exact match, share of files that still parse, mean latency;
- repair_code: held-out Python functions with 1-3 syntax-breaking corruptions: share that
  parses after repair, share restored exactly;
- repair_prose: held-out prose paragraphs with word-level corruptions (deleted, swapped,
  misspelled words): word error rate before and after revision.
"""

from __future__ import annotations

import argparse
import ast
import random
import statistics
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from rapidfuzz.distance import Levenshtein

DEFAULT_CORPUS = Path("data/corpus")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--refiner", type=Path, default=None, help="refiner directory (default: models/refiner)")
    p.add_argument("--drafter", type=Path, default=None, help="drafter directory (default: models/drafter)")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus with the held-out split")
    p.add_argument("--infill-cases", type=int, default=24, help="spans per kind (single-line, multi-line)")
    p.add_argument("--repair-cases", type=int, default=24)
    p.add_argument("--prose-cases", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=["infill", "repair_code", "repair_prose"], action="append",
                   help="run only these parts (repeatable)")


def held_out(corpus: Path, kind: str) -> list[str]:
    from training.corpus import build_corpus, iter_documents

    if not (corpus / "manifest.json").exists():
        print(f"bench: building the corpus in {corpus} (first run)", file=sys.stderr)
        build_corpus(corpus)
    return [d.text for d in iter_documents(corpus, "held_out", kind=kind)]


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError):
        return False


def infill_cases(files: list[str], n: int, lines: tuple[int, int], rng: random.Random) -> list[tuple[str, str, str]]:
    """(prefix, middle, suffix) with the middle = 1 line or a few lines of code, files that parse."""
    files = [f for f in files if _parses(f)]
    out: list[tuple[str, str, str]] = []
    while len(out) < n:
        src = rng.choice(files).splitlines(keepends=True)
        k = rng.randint(*lines)
        cands = [i for i in range(len(src) - k) if all(src[j].strip() for j in range(i, i + k))]
        if not cands:
            continue
        i = rng.choice(cands)
        indent = len(src[i]) - len(src[i].lstrip())
        prefix = "".join(src[:i]) + src[i][:indent]
        middle = "".join(src[i:i + k])[indent:].rstrip("\n")
        suffix = "\n" + "".join(src[i + k:])
        out.append((prefix[-1500:], middle, suffix[:600]))
    return out


def run_infill(cases: dict[str, list[tuple[str, str, str]]], refiner: Any, drafter: Any, seed: int) -> dict[str, Any]:
    """Each case in every mode in turn (after one untimed call per mode), so a busy shared
    CPU slows the modes alike and the latency ratios between them hold."""
    from workflows.infill import InfillParams, infill

    modes = ("ar", "diffusion", "hybrid")

    def params(mode: str, kind: str) -> Any:
        return InfillParams(mode=mode, max_tokens=32 if kind == "single_line" else 96, seed=seed,
                            stop=["\n"] if kind == "single_line" else [])

    first = next(iter(cases.values()))[0]
    for mode in modes:
        infill(first[0], first[2], params(mode, "single_line"), refiner, drafter)  # warm-up
    out: dict[str, Any] = {mode: {} for mode in modes}
    for kind, items in cases.items():
        exact = dict.fromkeys(modes, 0)
        parse = dict.fromkeys(modes, 0)
        lat: dict[str, list[float]] = {m: [] for m in modes}
        for prefix, middle, suffix in items:
            for mode in modes:
                t0 = time.perf_counter()
                res = infill(prefix, suffix, params(mode, kind), refiner, drafter)
                lat[mode].append(time.perf_counter() - t0)
                exact[mode] += res.text.strip() == middle.strip()
                parse[mode] += _parses(prefix + res.text + suffix)
        for mode in modes:
            out[mode][kind] = {"exact_match": round(100 * exact[mode] / len(items), 1),
                               "parses": round(100 * parse[mode] / len(items), 1),
                               "mean_latency_ms": round(1000 * statistics.mean(lat[mode]), 1)}
    return out


CORRUPTIONS = ("delete_bracket", "swap_bracket", "delete_colon", "delete_keyword", "break_indent")


def corrupt_code(code: str, k: int, rng: random.Random) -> str | None:
    """Apply k syntax-breaking corruptions; None if the result still parses."""
    out = code
    for _ in range(k):
        kind = rng.choice(CORRUPTIONS)
        if kind in ("delete_bracket", "swap_bracket"):
            pos = [i for i, c in enumerate(out) if c in "()[]{}"]
            if not pos:
                continue
            i = rng.choice(pos)
            repl = "" if kind == "delete_bracket" else {"(": "[", ")": "]", "[": "(", "]": ")", "{": "(", "}": ")"}[out[i]]
            out = out[:i] + repl + out[i + 1:]
        elif kind == "delete_colon":
            pos = [i for i, c in enumerate(out) if c == ":" and out[i + 1:i + 2] == "\n"]
            if pos:
                i = rng.choice(pos)
                out = out[:i] + out[i + 1:]
        elif kind == "delete_keyword":
            import re

            ms = list(re.finditer(r"\b(def|return|if|for|in|import|class|while)\b ?", out))
            if ms:
                m = rng.choice(ms)
                out = out[:m.start()] + out[m.end():]
        else:
            lines = out.splitlines(keepends=True)
            idx = [i for i, ln in enumerate(lines) if ln.startswith("    ") and i > 0]
            if idx:
                i = rng.choice(idx)
                lines[i] = lines[i][4:] if rng.random() < 0.5 else "  " + lines[i]
                out = "".join(lines)
    return None if _parses(out) else out


def functions(files: list[str], lo: int = 4, hi: int = 30) -> list[str]:
    out = []
    for f in files:
        try:
            tree = ast.parse(f)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                seg = ast.get_source_segment(f, node)
                if seg and lo <= seg.count("\n") + 1 <= hi:
                    seg = textwrap.dedent(seg) if seg.startswith((" ", "\t")) else seg
                    if _parses(seg):
                        out.append(seg + "\n")
    return out


def run_repair_code(files: list[str], n: int, refiner: Any, rng: random.Random) -> dict[str, Any]:
    from workflows.repair import RepairParams, repair

    pool = functions(files)
    rng.shuffle(pool)
    cases = []
    for fn in pool:
        bad = corrupt_code(fn, rng.randint(1, 3), rng)
        if bad is not None:
            cases.append((fn, bad))
        if len(cases) >= n:
            break
    parsed = exact = 0
    lat = []
    for good, bad in cases:
        t0 = time.perf_counter()
        res = repair(bad, RepairParams(), refiner)
        lat.append(time.perf_counter() - t0)
        parsed += res.parses
        exact += res.text == good
    return {"cases": len(cases), "parses": round(100 * parsed / len(cases), 1),
            "restored_exactly": round(100 * exact / len(cases), 1),
            "mean_latency_ms": round(1000 * statistics.mean(lat), 1)}


def corrupt_words(text: str, rate: float, rng: random.Random) -> str:
    words = text.split(" ")
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        r = rng.random()
        if r < rate / 3 and len(words) > 3:
            i += 1  # delete
            continue
        if r < 2 * rate / 3 and i + 1 < len(words):
            out += [words[i + 1], w]  # swap with the next
            i += 2
            continue
        if r < rate and len(w) > 3:
            j = rng.randrange(1, len(w) - 1)  # misspell: swap two letters
            w = w[:j - 1] + w[j] + w[j - 1] + w[j + 1:]
        out.append(w)
        i += 1
    return " ".join(out)


def wer(ref: str, hyp: str) -> float:
    r, h = ref.split(), hyp.split()
    return Levenshtein.distance(r, h) / max(1, len(r))


def run_repair_prose(docs: list[str], n: int, refiner: Any, rng: random.Random) -> dict[str, Any]:
    from workflows.revise import ReviseParams, revise

    paras = [p.strip() for d in docs for p in d.split("\n\n") if 200 <= len(p.strip()) <= 700 and p.count(" ") > 30]
    rng.shuffle(paras)
    before, after = [], []
    for p in paras[:n]:
        bad = corrupt_words(p, 0.12, rng)
        res = revise(bad, ReviseParams(seed=0), refiner)
        before.append(wer(p, bad))
        after.append(wer(p, res.text))
    b, a = statistics.mean(before), statistics.mean(after)
    return {"cases": len(before), "wer_before": round(100 * b, 2), "wer_after": round(100 * a, 2),
            "reduction": round(1 - a / b, 3) if b else 0.0}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from workflows.engines import load_drafter, load_refiner

    only = set(args.only or ["infill", "repair_code", "repair_prose"])

    def rng(part: str) -> random.Random:
        """One stream per part, so ``--only PART`` measures the cases of the full run."""
        return random.Random(f"{args.seed}:{part}")

    refiner = load_refiner(args.refiner)
    out: dict[str, Any] = {"refiner": refiner.path}
    code = held_out(args.corpus, "code")
    if "infill" in only:
        drafter = load_drafter(args.drafter)
        out["drafter"] = drafter.path
        cases = {"single_line": infill_cases(code, args.infill_cases, (1, 1), rng("single_line")),
                 "multi_line": infill_cases(code, args.infill_cases, (2, 4), rng("multi_line"))}
        out["infill"] = run_infill(cases, refiner, drafter, args.seed)
    if "repair_code" in only:
        out["repair_code"] = run_repair_code(code, args.repair_cases, refiner, rng("repair_code"))
    if "repair_prose" in only:
        out["repair_prose"] = run_repair_prose(held_out(args.corpus, "prose"), args.prose_cases, refiner, rng("repair_prose"))
    return out
