"""Pipeline quality on held-out text: infill by mode, code repair, prose repair.

- infill: single-line and multi-line holes cut from held-out Python files, filled in each
  mode (ar, diffusion, hybrid): exact match (as cut, and after whitespace normalisation),
  share of whole files that still parse, share answered empty, mean and median latency, and
  the exact-match / empty trade-off of confidence floors (``--raw-infill``: the models' raw
  answers, without the candidate search, for comparison). The holes come from the files
  of whole held-out packages (``--infill-split held_out_packages``, code the models never
  saw), spread over the packages and files, a few holes per file at most;
- repair_code: held-out Python functions with 1-3 syntax-breaking corruptions: share that
  parses after repair, share restored exactly;
- repair_prose: held-out prose paragraphs with word-level corruptions (deleted, swapped,
  misspelled words): word error rate before and after revision;
- compliance (bench.quality_compliance): banned phrases planted in held-out prose paragraphs:
  banned phrases left unflagged, applied rewrites that read worse, the needs-review share;
- proofread (bench.quality_proofread): word error rate before and after proofreading on two
  kinds of held-out prose, licence texts and package documentation.
"""

from __future__ import annotations

import argparse
import ast
import functools
import random
import re
import statistics
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rapidfuzz.distance import Levenshtein

DEFAULT_CORPUS = Path("data/corpus")
MODES = ("ar", "diffusion", "hybrid")
HOLE_LINES = {"single_line": (1, 1), "multi_line": (2, 4)}  # lines per hole, inclusive
INFILL_SPLITS = ("held_out_packages", "held_out")
PREFIX_CHARS, SUFFIX_CHARS = 1500, 600  # context handed to infill (the workflow trims further)
PARTS = ("infill", "repair_code", "repair_prose", "compliance", "proofread")
PROGRESS_EVERY = 50  # infill cases between progress lines on stderr


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--refiner", type=Path, default=None, help="refiner directory (default: models/refiner)")
    p.add_argument("--drafter", type=Path, default=None, help="drafter directory (default: models/drafter)")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus with the held-out splits")
    p.add_argument("--infill-split", choices=INFILL_SPLITS, default="held_out_packages",
                   help="held-out split the infill holes are cut from: held_out_packages (whole packages "
                   "no model saw; the default) or held_out (files of the standard library)")
    p.add_argument("--infill-single", type=int, default=200, help="single-line holes")
    p.add_argument("--infill-multi", type=int, default=100, help="multi-line holes (2-4 lines)")
    p.add_argument("--infill-cases", type=int, default=None,
                   help="sets both --infill-single and --infill-multi (quick runs)")
    p.add_argument("--infill-per-file", type=int, default=2,
                   help="most holes of each kind cut from one file")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                   help="infill modes to measure (default: all three)")
    p.add_argument("--repair-cases", type=int, default=24)
    p.add_argument("--prose-cases", type=int, default=16)
    p.add_argument("--raw-infill", action="store_true",
                   help="infill without the candidate search (the models' single raw answer), for comparison")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compliance-cases", type=int, default=48,
                   help="held-out prose paragraphs with banned phrases planted (bench.quality_compliance)")
    p.add_argument("--proofread-cases", type=int, default=60,
                   help="corrupted paragraphs of each kind of held-out prose (bench.quality_proofread)")
    p.add_argument("--only", choices=PARTS, action="append", help="run only these parts (repeatable)")


def _ensure_corpus(corpus: Path) -> None:
    from training.corpus import build_corpus

    if not (corpus / "manifest.json").exists():
        print(f"bench: building the corpus in {corpus} (first run)", file=sys.stderr)
        build_corpus(corpus)


def held_out(corpus: Path, kind: str) -> list[str]:
    """Texts of the file-level held-out split outside packages: the standard library's files
    and the prose held out before packages joined the corpus (its held-out files of trained-on
    packages are left out), so the benchmarks drawing from it keep measuring the same text."""
    from training.corpus import iter_documents

    _ensure_corpus(corpus)
    return [d.text for d in iter_documents(corpus, "held_out", kind=kind) if not d.package]


def infill_documents(corpus: Path, split: str) -> tuple[str, list[Any]]:
    """(split used, its code documents): ``split``, else ``held_out`` with a note on stderr
    when the corpus has no code in ``split`` (a corpus built before issue 12). ``held_out``
    is read as :func:`held_out` reads it: without files of packages."""
    from bench.models import has_split
    from training.corpus import iter_documents

    _ensure_corpus(corpus)
    if split != "held_out" and not has_split(corpus, split, "code"):
        print(f"bench quality: {corpus} has no code in the {split} split; infill holes are cut "
              "from the held_out split instead", file=sys.stderr)
        split = "held_out"
    docs = iter_documents(corpus, split, kind="code")
    return split, [d for d in docs if split != "held_out" or not d.package]


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError):
        return False


@functools.lru_cache(maxsize=2048)
def _source_parses(code: str) -> bool:
    """``_parses`` for corpus files, remembered: both kinds of hole filter the same files."""
    return _parses(code)


@dataclass(frozen=True)
class InfillCase:
    prefix: str  # the context handed to infill: the text before the hole, trimmed to PREFIX_CHARS
    middle: str  # the text cut out: what a perfect infill inserts
    suffix: str  # the text after the hole, trimmed to SUFFIX_CHARS
    doc_id: str = ""  # the corpus document it was cut from
    package: str = ""  # that document's distribution ("" outside packages)
    file_prefix: str | None = None  # the whole file before the hole (None: ``prefix`` is all of it)
    file_suffix: str | None = None  # the whole file after it

    def file_with(self, text: str) -> str:
        """The whole file with ``text`` in the hole: whether *this* parses is what an editor's user sees."""
        before = self.prefix if self.file_prefix is None else self.file_prefix
        after = self.suffix if self.file_suffix is None else self.file_suffix
        return before + text + after


def _whole_hole(src: list[str], i: int, k: int) -> tuple[str, str, str]:
    """(prefix, middle, suffix) for lines ``i .. i+k-1`` of ``src`` (lines with their ends),
    the prefix and suffix untrimmed.

    The hole starts after the first line's indentation, as an editor's cursor would.
    """
    indent = len(src[i]) - len(src[i].lstrip())
    prefix = "".join(src[:i]) + src[i][:indent]
    middle = "".join(src[i:i + k])[indent:].rstrip("\n")
    suffix = "\n" + "".join(src[i + k:])
    return prefix, middle, suffix


def _hole(src: list[str], i: int, k: int) -> tuple[str, str, str]:
    """:func:`_whole_hole` with the prefix and suffix trimmed to the context handed to infill."""
    prefix, middle, suffix = _whole_hole(src, i, k)
    return prefix[-PREFIX_CHARS:], middle, suffix[:SUFFIX_CHARS]


def _starts(src: list[str], k: int, taken: Collection[int] = ()) -> list[int]:
    """First lines of k non-blank lines, not the file's last, clear of lines in ``taken``."""
    return [i for i in range(len(src) - k)
            if all(src[j].strip() and j not in taken for j in range(i, i + k))]


def infill_cases(files: list[str], n: int, lines: tuple[int, int], rng: random.Random) -> list[tuple[str, str, str]]:
    """(prefix, middle, suffix) with the middle = 1 line or a few lines of code, files that
    parse, drawn with replacement (``bench serve``'s requests; ``bench quality`` spreads its
    holes with :func:`spread_infill_cases`)."""
    files = [f for f in files if _source_parses(f)]
    out: list[tuple[str, str, str]] = []
    while len(out) < n:
        src = rng.choice(files).splitlines(keepends=True)
        k = rng.randint(*lines)
        cands = _starts(src, k)
        if cands:
            out.append(_hole(src, rng.choice(cands), k))
    return out


def spread_infill_cases(docs: Sequence[Any], n: int, lines: tuple[int, int], rng: random.Random,
                        per_file: int = 2) -> list[InfillCase]:
    """``n`` holes of ``lines`` lines from the documents that parse, spread evenly.

    Packages take turns (documents outside packages form one group), each turn cutting a
    hole from the package's next file in a seeded order; a file gives at most ``per_file``
    holes, which never overlap. So 200 holes from six packages are about 33 from each, from
    as many files as the package has, and no file's style dominates a figure. Fewer than
    ``n`` cases come back (with a note on stderr) when the files run out.
    """
    if per_file < 1:
        raise ValueError(f"--infill-per-file must be at least 1, got {per_file}")
    groups: dict[str, list[Any]] = {}
    for d in sorted(docs, key=lambda d: d.id):
        if _source_parses(d.text):
            groups.setdefault(d.package, []).append(d)
    for files in groups.values():
        rng.shuffle(files)
    turns = dict.fromkeys(groups, 0)
    taken: dict[str, set[int]] = {}
    out: list[InfillCase] = []
    while len(out) < n and turns:
        for package in sorted(turns):
            files, turn = groups[package], turns[package]
            if turn >= per_file * len(files):
                del turns[package]  # every file of the package has given its share
                continue
            turns[package] = turn + 1
            doc = files[turn % len(files)]
            src = doc.text.splitlines(keepends=True)
            k = rng.randint(*lines)
            cands = _starts(src, k, taken.setdefault(doc.id, set()))
            if not cands:
                continue
            i = rng.choice(cands)
            taken[doc.id].update(range(i, i + k))
            prefix, middle, suffix = _whole_hole(src, i, k)
            out.append(InfillCase(prefix[-PREFIX_CHARS:], middle, suffix[:SUFFIX_CHARS], doc_id=doc.id,
                                  package=package, file_prefix=prefix, file_suffix=suffix))
            if len(out) >= n:
                break
    if len(out) < n:
        print(f"bench quality: only {len(out)} holes of {lines[0]}-{lines[1]} lines fit "
              f"(--infill-per-file {per_file}); asked for {n}", file=sys.stderr)
    return out


def normalise(code: str) -> str:
    """``code`` without trailing spaces, blank lines, or runs of blanks inside a line; the
    indentation is kept (it is Python's syntax)."""
    out = []
    for line in code.splitlines():
        body = line.lstrip(" \t")
        if body.strip():
            out.append(line[:len(line) - len(body)] + re.sub(r"[ \t]+", " ", body.rstrip()))
    return "\n".join(out)


def draw_summary(cases: Sequence[InfillCase]) -> dict[str, Any]:
    """How the holes spread: cases, distinct files, the largest share of one file, per package."""
    per_file = Counter(c.doc_id for c in cases)
    return {"cases": len(cases), "files": len(per_file),
            "most_from_one_file": max(per_file.values(), default=0),
            "packages": dict(sorted(Counter(c.package or "(none)" for c in cases).items()))}


FLOORS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)  # confidence floors whose exact-match / empty trade-off is reported


@dataclass
class _Answer:
    """One case's answer in one mode, kept so every confidence floor can be judged afterwards."""

    exact: bool
    loose: bool  # exact after whitespace normalisation
    parses: bool
    empty: bool  # answered nothing
    empty_parses: bool  # the file with the hole left empty (the answer below a floor)
    confidence: float | None  # None: no candidate search (raw answers)
    seconds: float

    def at_floor(self, floor: float) -> tuple[bool, bool, bool, bool]:
        """(exact, loose, parses, empty) once an answer below ``floor`` is emptied."""
        if self.confidence is not None and self.confidence < floor:
            return False, False, self.empty_parses, True
        return self.exact, self.loose, self.parses, self.empty


def _answer(case: InfillCase, res: Any, seconds: float) -> _Answer:
    text = res.text
    return _Answer(exact=bool(text.strip()) and text.strip() == case.middle.strip(),
                   loose=bool(text.strip()) and normalise(text) == normalise(case.middle),
                   parses=_parses(case.file_with(text)), empty=not text.strip(),
                   empty_parses=_parses(case.file_with("")), confidence=getattr(res, "confidence", None),
                   seconds=seconds)


def _pct(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def _figures(answers: list[_Answer], floor: float) -> dict[str, Any]:
    """A mode's figures on one kind of hole, answers below ``floor`` emptied."""
    judged = [a.at_floor(floor) for a in answers]
    n = len(answers)
    return {"cases": n,
            "exact_match": _pct(sum(j[0] for j in judged), n),
            "exact_match_normalised": _pct(sum(j[1] for j in judged), n),
            "parses": _pct(sum(j[2] for j in judged), n),
            "empty": _pct(sum(j[3] for j in judged), n),
            "mean_latency_ms": round(1000 * statistics.mean(a.seconds for a in answers), 1),
            "p50_latency_ms": round(1000 * statistics.median(a.seconds for a in answers), 1)}


def _tradeoff(answers: list[_Answer]) -> dict[str, dict[str, float]]:
    """Exact match, parse share and empty share at each of FLOORS: what a floor buys and costs."""
    out = {}
    for floor in FLOORS:
        f = _figures(answers, floor)
        out[f"{floor:g}"] = {k: f[k] for k in ("exact_match", "parses", "empty")}
    return out


def run_infill(cases: dict[str, list[InfillCase]], refiner: Any, drafter: Any, seed: int,
               modes: Sequence[str] = MODES, candidates: bool = True) -> dict[str, Any]:
    """Each case in every mode in turn (after one untimed call per mode), so a busy shared
    CPU slows the modes alike and the latency ratios between them hold.

    With ``candidates`` (the default) every answer comes with its confidence: the requests
    ask for a floor of 0, and the figures apply the default floor afterwards, so one run also
    gives the exact-match / empty trade-off of every floor in FLOORS (``floors``). The share
    whose file parses is judged on the whole file the hole was cut from, not the trimmed
    context handed to infill (which seldom parses on its own).
    """
    from workflows.infill import InfillParams, infill

    floor = InfillParams().min_confidence

    def params(mode: str, kind: str) -> Any:
        return InfillParams(mode=mode, max_tokens=32 if kind == "single_line" else 96, seed=seed,
                            stop=["\n"] if kind == "single_line" else [], candidates=candidates, min_confidence=0.0)

    out: dict[str, Any] = {mode: {} for mode in modes}
    first = next((c for items in cases.values() for c in items), None)
    if first is None:
        return out
    for mode in modes:
        infill(first.prefix, first.suffix, params(mode, "single_line"), refiner, drafter)  # warm-up
    for kind, items in cases.items():
        if not items:
            continue
        answers: dict[str, list[_Answer]] = {m: [] for m in modes}
        for done, case in enumerate(items):
            if done and done % PROGRESS_EVERY == 0:  # a default run takes many minutes on a CPU
                print(f"bench quality: {kind} {done}/{len(items)}", file=sys.stderr, flush=True)
            for mode in modes:
                t0 = time.perf_counter()
                res = infill(case.prefix, case.suffix, params(mode, kind), refiner, drafter)
                answers[mode].append(_answer(case, res, time.perf_counter() - t0))
        for mode in modes:
            out[mode][kind] = _figures(answers[mode], floor)
            if candidates:
                out[mode][kind]["floors"] = _tradeoff(answers[mode])
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
            swapped = {"(": "[", ")": "]", "[": "(", "]": ")", "{": "(", "}": ")"}
            repl = "" if kind == "delete_bracket" else swapped[out[i]]
            out = out[:i] + repl + out[i + 1:]
        elif kind == "delete_colon":
            pos = [i for i, c in enumerate(out) if c == ":" and out[i + 1:i + 2] == "\n"]
            if pos:
                i = rng.choice(pos)
                out = out[:i] + out[i + 1:]
        elif kind == "delete_keyword":
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


def run_repair_prose(docs: list[str], n: int, refiner: Any, drafter: Any, rng: random.Random) -> dict[str, Any]:
    """Revision as `remask revise` runs it: the drafter scores the text and checks proofreading's fixes."""
    from workflows.revise import ReviseParams, revise

    paras = [p.strip() for d in docs for p in d.split("\n\n") if 200 <= len(p.strip()) <= 700 and p.count(" ") > 30]
    rng.shuffle(paras)
    before, after = [], []
    for p in paras[:n]:
        bad = corrupt_words(p, 0.12, rng)
        res = revise(bad, ReviseParams(seed=0), refiner, drafter)
        before.append(wer(p, bad))
        after.append(wer(p, res.text))
    b, a = statistics.mean(before), statistics.mean(after)
    return {"cases": len(before), "wer_before": round(100 * b, 2), "wer_after": round(100 * a, 2),
            "reduction": round(1 - a / b, 3) if b else 0.0}


def _hole_counts(args: argparse.Namespace) -> dict[str, int]:
    single = args.infill_single if args.infill_cases is None else args.infill_cases
    multi = args.infill_multi if args.infill_cases is None else args.infill_cases
    for flag, n in (("--infill-single", single), ("--infill-multi", multi)):
        if n < 0:
            raise ValueError(f"{flag} must not be negative, got {n}")
    if single + multi == 0:
        raise ValueError("--infill-single and --infill-multi are both 0: no infill holes to measure")
    return {"single_line": single, "multi_line": multi}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.models import trained_on
    from workflows.engines import load_drafter, load_refiner

    only = set(args.only or PARTS)

    def rng(part: str) -> random.Random:
        """One stream per part, so ``--only PART`` measures the cases of the full run."""
        return random.Random(f"{args.seed}:{part}")

    counts = _hole_counts(args) if "infill" in only else {}
    refiner = load_refiner(args.refiner)
    out: dict[str, Any] = {"refiner": refiner.path}
    if "infill" in only:
        drafter = load_drafter(args.drafter)
        out["drafter"] = drafter.path
        # which device trained each model: issue 12 sets a higher bar for GPU-trained ones
        out["trained_on"] = {name: trained_on(Path(path)) if path else None
                             for name, path in (("drafter", drafter.path), ("refiner", refiner.path))}
        split, docs = infill_documents(args.corpus, args.infill_split)
        cases = {kind: spread_infill_cases(docs, counts[kind], HOLE_LINES[kind], rng(kind),
                                           args.infill_per_file)
                 for kind in HOLE_LINES}
        out["infill_split"] = split
        out["infill_draw"] = {kind: draw_summary(items) for kind, items in cases.items()}
        out["infill"] = run_infill(cases, refiner, drafter, args.seed, tuple(args.modes), not args.raw_infill)
        if not args.raw_infill:
            from workflows.options import InfillParams

            out["infill_min_confidence"] = InfillParams().min_confidence  # the floor the figures apply
    if "repair_code" in only:
        out["repair_code"] = run_repair_code(held_out(args.corpus, "code"), args.repair_cases,
                                             refiner, rng("repair_code"))
    if "repair_prose" in only:
        prose = held_out(args.corpus, "prose")
        out["repair_prose"] = run_repair_prose(prose, args.prose_cases, refiner, load_drafter(args.drafter),
                                               rng("repair_prose"))
    if "compliance" in only:
        from bench import quality_compliance

        out["compliance"] = quality_compliance.measure(args.refiner, args.drafter, args.corpus,
                                                       args.compliance_cases, args.seed)
    if "proofread" in only:
        from bench import quality_proofread

        out["proofread"] = quality_proofread.measure(args.refiner, args.drafter, args.corpus,
                                                     args.proofread_cases, args.seed)
    return out
