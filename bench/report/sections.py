"""What the report says about each benchmark: an explanation, how the report runs it, its
tables and plots. Benchmarks without an entry here get the generic section (their module
docstring and every figure of their JSON), so a new benchmark needs no edit to show up.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.report import plots
from bench.report.markdown import generic_tables, table
from bench.report.plots import PlotFn

Tables = Callable[[dict[str, Any]], list[str]]


@dataclass(frozen=True)
class Section:
    about: str  # what the benchmark measures (markdown)
    run_args: tuple[str, ...] = ()  # extra arguments the report runs it with
    tables: Tables = generic_tables  # figures -> markdown blocks
    plots: tuple[tuple[str, PlotFn], ...] = ()  # (PNG file stem, plot function)


def _sampler_tables(f: dict[str, Any]) -> list[str]:
    rows: list[tuple[Any, ...]] = []
    for label, key in (("LLaDA-style baseline", "baseline"), ("fast path", "fast"),
                       ("fast path, no context cache", "fast_without_cache")):
        r = f.get(key)
        if isinstance(r, dict):
            speed = 1.0 if key == "baseline" else (f.get("speedup") if key == "fast" else r.get("speedup"))
            rows.append((label, r.get("nfe"), r.get("seconds"), speed, r.get("exact_match"), r.get("span_exact")))
    out = [f"{f.get('cases', '?')} spans of {f.get('span_tokens', '?')} tokens, model `{f.get('model', '?')}`, "
           f"{f.get('timing', 'one run')}:\n\n"
           + table(("sampler", "NFE", "seconds", "speed-up (x)", "exact match (% tokens)", "spans exact (%)"), rows)]
    loc = f.get("locality", {})
    if isinstance(loc.get("by_length_s"), dict):
        lengths = sorted(loc["by_length_s"], key=int)
        short = float(loc["by_length_s"][lengths[0]])
        out.append("Locality, one 16-token revision:\n\n" + table(
            ("document tokens", "median seconds", f"ratio to {int(lengths[0]):,} tokens"),
            ((f"{int(n):,}", loc["by_length_s"][n], round(float(loc["by_length_s"][n]) / short, 3)) for n in lengths)))
    elif loc:
        out.append("Locality:\n\n" + table(("figure", "value"), loc.items()))
    sweep = f.get("sweep")
    if isinstance(sweep, dict) and sweep.get("points"):
        pts = sweep["points"]
        steps = sorted({int(p["steps"]) for p in pts})
        thresholds = sorted({float(p["threshold"]) for p in pts})
        cell = {(float(p["threshold"]), int(p["steps"])):
                f"{p['speedup']:g}x, {p['exact_match']:g}%, {p.get('nfe', '?')} NFE" for p in pts}
        grid = [("even" if t >= 1.0 else f"{t:g}", *(cell.get((t, n), "-") for n in steps)) for t in thresholds]
        base = sweep.get("baseline", {})
        out.append(f"Sweep on the first {sweep.get('cases', '?')} spans (speed-up over the baseline on the same "
                   f"spans, exact match, forward passes; baseline: {base.get('seconds', '?')} s, "
                   f"{base.get('exact_match', '?')}%; {sweep.get('timing', 'one run each')}):\n\n"
                   + table(("threshold", *(f"{n} steps" for n in steps)), grid))
    return out


SETS = (("held-out files", None), ("held-out packages", "packages"))  # (label, figures key)


def _models_tables(f: dict[str, Any]) -> list[str]:
    out = []
    ref = f.get("refiner", {})
    blocks = [(label, ref if key is None else ref.get(key, {})) for label, key in SETS]
    ratios = sorted({r for _, b in blocks for k in ("code", "prose")
                     for r in b.get(k, {}).get("masked_token_accuracy", {})}, key=float)
    rows = []
    for label, b in blocks:
        for kind in ("code", "prose"):
            r = b.get(kind)
            if isinstance(r, dict):
                acc = r.get("masked_token_accuracy", {})
                rows.append((_set_kind(label, kind), r.get("held_out_loss"),
                             *(f"{100 * acc[x]:.1f}" if x in acc else "-" for x in ratios),
                             r.get("edit_noise_detection_auc")))
    if rows:
        out.append(f"Refiner `{ref.get('model', '?')}`{_windows(ref)}:\n\n" + table(
            ("held-out", "ELBO loss", *(f"accuracy at {x} (%)" for x in ratios), "detection AUC"), rows))
    d = f.get("drafter", {})
    rows = [(_set_kind(label, k), b[k].get("held_out_loss"), b[k].get("perplexity"))
            for label, b in ((label, d if key is None else d.get(key, {})) for label, key in SETS)
            for k in ("code", "prose") if isinstance(b.get(k), dict)]
    if rows:
        out.append(f"Drafter `{d.get('model', '?')}`{_windows(d)}:\n\n"
                   + table(("held-out", "loss", "perplexity"), rows))
    return out or generic_tables(f)


def _set_kind(label: str, kind: str) -> str:
    # results before issue 12 have held-out files only: their rows keep the bare kind
    return kind if label == SETS[0][0] else f"{label}: {kind}"


def _windows(m: dict[str, Any]) -> str:
    """", windows of 512 tokens (trained context 512, on cpu)" when the result records them."""
    if "seq_len" not in m:
        return ""
    trained = [f"trained context {m['context']}"] if m.get("context") else []
    trained += [f"on {m['trained_on']}"] if m.get("trained_on") else []
    return f", {m.get('windows', '?')} windows of {m['seq_len']} tokens" + (
        f" ({', '.join(trained)})" if trained else "")


def _quality_tables(f: dict[str, Any]) -> list[str]:
    out = []
    infill = f.get("infill")
    if isinstance(infill, dict):
        rows = []
        for mode, kinds in infill.items():
            for kind, r in kinds.items():
                rows.append((mode, kind.replace("_", "-"), r.get("cases"), r.get("exact_match"),
                             r.get("exact_match_normalised"), r.get("parses"), r.get("mean_latency_ms"),
                             r.get("p50_latency_ms")))
        split = f.get("infill_split", "held_out")
        where = "whole held-out packages" if split == "held_out_packages" else "held-out files"
        draw = f.get("infill_draw", {})
        spread = "; ".join(f"{k.replace('_', '-')}: {d.get('cases')} holes from {d.get('files')} files"
                           + (f" of {len(d['packages'])} packages" if split == "held_out_packages"
                              and isinstance(d.get("packages"), dict) else "")
                           for k, d in draw.items() if isinstance(d, dict))
        out.append(f"Infill (Python of {where}{'; ' + spread if spread else ''}):\n\n" + table(
            ("mode", "span", "cases", "exact match (%)", "exact, whitespace normalised (%)",
             "still parses (%)", "mean latency (ms)", "p50 latency (ms)"), rows))
    rc = f.get("repair_code")
    if isinstance(rc, dict):
        keys = ("cases", "parses", "restored_exactly", "mean_latency_ms")
        head = ("cases", "parses after (%)", "restored exactly (%)", "mean latency (ms)")
        out.append("Code repair:\n\n" + table(head, [tuple(rc.get(k) for k in keys)]))
    rp = f.get("repair_prose")
    if isinstance(rp, dict):
        keys = ("cases", "wer_before", "wer_after", "reduction")
        out.append("Prose repair:\n\n" + table(("cases", "WER before (%)", "WER after (%)", "reduction"),
                                               [tuple(rp.get(k) for k in keys)]))
    return out or generic_tables(f)


KNOWN: dict[str, Section] = {
    "sampler": Section(
        about="Refiner sampling speed and quality. The LLaDA-style baseline commits one token per step "
        "and feeds the whole sequence, one span at a time; the fast path commits every position above a "
        "confidence threshold, feeds a 64-token window on each side through the approximate context "
        "cache, and runs all spans as one batch. Exact match is the share of span tokens restored. "
        "Locality times the same 16-token revision in documents of growing length. The sweep runs the "
        "fast path at several thresholds (\"even\": the even schedule, no threshold) and step budgets.",
        run_args=("--sweep", "--repeats", "3"),  # best of 3: other work on a shared CPU bends single runs
        tables=_sampler_tables,
        plots=(("sampler_sweep", plots.sampler_sweep), ("sampler_locality", plots.sampler_locality)),
    ),
    "drafter": Section(
        about="Backend speed: drafter tokens/s and refiner forward latency, PyTorch eager against ONNX "
        "Runtime, on the same inputs in alternating blocks (medians), with the largest logit "
        "difference and whether the greedy drafts are identical.",
    ),
    "models": Section(
        about="Quality of the shipped models on held-out text: drafter loss and perplexity; refiner "
        "ELBO, masked-token accuracy at three mask ratios, and the AUC of its surprise at finding "
        "edit-noise tokens (seeded noise: the same figures on every run). Two held-out sets: files "
        "held out one by one (standard library and documents, as in earlier runs) and whole "
        "packages no model saw (code from other projects: issue 12's targets). Windows are as long "
        "as the model's trained context allows, up to 512 tokens.",
        tables=_models_tables,
        plots=(("models_accuracy", plots.models_accuracy),),
    ),
    "quality": Section(
        about="The pipelines on held-out text: infill of single- and multi-line holes in Python files in "
        "each mode (ar: the drafter alone; diffusion: the refiner alone; hybrid: drafter then "
        "refiner), code repair of functions with 1-3 syntax-breaking corruptions, and prose revision "
        "of paragraphs with word-level corruptions (word error rate before and after). The infill "
        "holes come from whole held-out packages, the packages taking turns and at most two holes "
        "of a kind per file; exact match is also given after whitespace normalisation (trailing "
        "and repeated blanks, blank lines).",
        tables=_quality_tables,
        plots=(("quality_by_mode", plots.quality_by_mode),),
    ),
    "queue": Section(
        about="The job queue under faults (embedded Valkey, the pipelines' item handler on the shipped "
        "models): worker SIGKILLs, Valkey restarts of 10 s and 1 s, and one poison item that kills its "
        "worker on every run. Jobs/s, and whether any job was lost or failed, any item result duplicated, "
        "and whether the poison item alone ended in the errors file; re-executed items are at-least-once "
        "delivery at work.",
    ),
    "serve": Section(
        about="The Ray Serve application under editor load, over loopback HTTP: 16-token fill-in-the-middle "
        "requests cut from held-out Python files, first one at a time (p50/p95 latency, requests/s), "
        "then 8 at a time (requests/s, latency), with every non-200 answer or failed request counted "
        "as an error.",
    ),
}


def section_for(name: str, module: str | None) -> Section:
    """The known section of ``name``, else a generic one described by its module docstring."""
    if name in KNOWN:
        return KNOWN[name]
    return Section(about=module_summary(module) if module else "(no benchmark module registered)")


def module_summary(module: str) -> str:
    """The first paragraph of a module's docstring, read from its source (no import: a
    benchmark may pull in heavy dependencies)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return "(no description)"
    try:
        with open(spec.origin, encoding="utf-8") as fh:
            doc = ast.get_docstring(ast.parse(fh.read()))
    except (OSError, SyntaxError):
        doc = None
    if not doc:
        return "(no description)"
    return " ".join(doc.strip().split("\n\n")[0].split())
