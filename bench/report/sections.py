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
from bench.report.markdown import fmt, generic_tables, table
from bench.report.plots import PlotFn

Tables = Callable[[dict[str, Any]], list[str]]


@dataclass(frozen=True)
class Section:
    about: str  # what the benchmark measures (markdown)
    run_args: tuple[str, ...] = ()  # extra arguments the report runs it with
    tables: Tables = generic_tables  # figures -> markdown blocks
    plots: tuple[tuple[str, PlotFn], ...] = ()  # (PNG file stem, plot function)


RUN_COLUMNS = ("forward passes", "calls", "seconds", "tokens per pass", "tokens equal to the baseline's (%)",
               "exact match (% tokens)", "spans exact (%)", "speed-up (x)")


def _run_cells(r: dict[str, Any]) -> tuple[Any, ...]:
    """One sampler run's figures in :data:`RUN_COLUMNS` order (the baseline has no equal share
    or speed-up of its own: it is 100% and 1x by definition)."""
    equal = r.get("tokens_equal")
    return (r.get("nfe"), r.get("calls"), r.get("seconds"), r.get("tokens_per_pass"),
            round(100 * float(equal), 1) if equal is not None else 100.0, r.get("exact_match"),
            r.get("span_exact"), r.get("speedup", 1.0))


def _sampler_levers(f: dict[str, Any]) -> list[str]:
    levers = [r for r in f.get("levers", []) if isinstance(r, dict)]
    base = f.get("baseline")
    if not levers or not isinstance(base, dict):
        return []
    rows = [("baseline", base.get("what", "LLaDA-equivalent loop"), *_run_cells(base))]
    rows += [(r.get("lever"), r.get("what"), *_run_cells(r)) for r in levers]
    return [f"Levers alone and combined: {f.get('cases', '?')} spans of {f.get('span_tokens', '?')} tokens "
            f"(split `{f.get('split', '?')}`), every row on the same inputs, model `{f.get('model', '?')}`, "
            f"{f.get('timing', 'one run')}:\n\n" + table(("row", "what", *RUN_COLUMNS), rows)]


def _sampler_windows(f: dict[str, Any]) -> list[str]:
    rows = []
    for w in f.get("window", []):
        for label in ("baseline", "fast"):
            if isinstance(w.get(label), dict):
                rows.append((w.get("window"), w.get("tokens_fed"), label, *_run_cells(w[label])))
    if not rows:
        return []
    return ["Context window (tokens on each side; each sampler against the baseline at the same window: a "
            "shorter window is faster for any sampler, so it is no sampler's speed-up):\n\n"
            + table(("window", "tokens fed", "sampler", *RUN_COLUMNS), rows)]


def _refresh_label(k: Any) -> str:
    """A cache-refresh setting as text: no cache, every k steps, or only when a block begins."""
    if k is None:
        return "no cache"
    if int(k) == 0:
        return "at block starts"
    return "every step" if int(k) == 1 else f"every {int(k)} steps"


def _sampler_refresh(f: dict[str, Any]) -> list[str]:
    curve = [r for r in f.get("cache_refresh", []) if isinstance(r, dict)]
    if not curve:
        return []
    return ["Context cache refreshed on a schedule (the fast path otherwise unchanged):\n\n"
            + table(("cache refresh", *RUN_COLUMNS), ((_refresh_label(r.get("refresh")), *_run_cells(r))
                                                       for r in curve))]


def _sampler_long(f: dict[str, Any]) -> list[str]:
    long = f.get("long")
    if not isinstance(long, dict):
        return []
    rows = [(label, *_run_cells(long[label])) for label in ("baseline", "fast") if isinstance(long.get(label), dict)]
    beyond = " (beyond the refiner's trained context)" if long.get("beyond_trained_context") else ""
    return [f"Long generation: {long.get('generated_tokens', '?'):,} tokens after a {long.get('prompt_tokens', '?')}"
            f"-token prompt in blocks of {long.get('block_length', '?')}{beyond}:\n\n"
            + table(("sampler", *RUN_COLUMNS), rows)]


def _sampler_calibration(f: dict[str, Any]) -> list[str]:
    cal = f.get("calibration")
    if not isinstance(cal, dict):
        return []
    rows: list[tuple[Any, ...]] = []
    if isinstance(cal.get("baseline"), dict):
        rows.append(("baseline", "-", *_run_cells(cal["baseline"])))
    for setting in ("threshold", "factor", "early_exit"):
        rows += [(setting.replace("_", " "), r.get("value"), *_run_cells(r)) for r in cal.get(setting, [])]
    rows += [("cache refresh", _refresh_label(r.get("refresh")), *_run_cells(r)) for r in cal.get("cache_refresh", [])]
    margin = cal.get("margin", {})
    chosen = ", ".join(f"cache refresh {_refresh_label(v)}" if k == "cache_refresh" else f"{k.replace('_', ' ')} {v}"
                       for k, v in cal.get("defaults", {}).items())
    return [f"Calibration on the other half of the documents ({cal.get('cases', '?')} spans, window "
            f"{cal.get('window', '?')}): the largest factor, then the lowest early-exit bar, that keep exact match "
            f"within {margin.get('exact_match_points', '?')} points of the baseline and at least "
            f"{100 * float(margin.get('min_tokens_equal', 0)):g}% of its tokens, and the cache refresh at the knee "
            f"of its curve (the threshold's row is for the record); chosen: {chosen or '?'}:\n\n"
            + table(("setting", "value", *RUN_COLUMNS), rows)]


def _sampler_locality(f: dict[str, Any]) -> list[str]:
    loc = f.get("locality", {})
    if isinstance(loc.get("by_length_s"), dict):
        lengths = sorted(loc["by_length_s"], key=int)
        short = float(loc["by_length_s"][lengths[0]])
        return ["Locality, one 16-token revision:\n\n" + table(
            ("document tokens", "median seconds", f"ratio to {int(lengths[0]):,} tokens"),
            ((f"{int(n):,}", loc["by_length_s"][n], round(float(loc["by_length_s"][n]) / short, 3)) for n in lengths))]
    return ["Locality:\n\n" + table(("figure", "value"), loc.items())] if loc else []


def _sampler_tables(f: dict[str, Any]) -> list[str]:
    parts = (_sampler_levers, _sampler_windows, _sampler_refresh, _sampler_long, _sampler_calibration,
             _sampler_locality)
    return [block for part in parts for block in part(f)] or generic_tables(f)


def _onnx_tables(f: dict[str, Any]) -> list[str]:
    lengths = f.get("lengths")
    if not isinstance(lengths, dict):
        return generic_tables(f)
    rows = [(f"{int(n):,}", r.get("batch"), r.get("torch_ms"), r.get("torch_1_thread_ms"), r.get("onnx_ms"),
             r.get("speedup"), r.get("speedup_vs_1_thread"), r.get("max_abs_diff"))
            for n, r in sorted(lengths.items(), key=lambda kv: int(kv[0]))]
    settings = f.get("settings", {})
    threads = (f"; threads: torch {settings.get('torch_threads', '?')}, ONNX Runtime "
               f"{settings.get('onnx_threads', '?')}") if settings else ""
    return [f"`{f.get('model', '?')}`, attention exported as `{f.get('attention', '?')}`{threads}; "
            f"{settings.get('timing', 'medians')}:\n\n" + table(
                ("tokens", "batch", "eager (ms)", "eager, 1 thread (ms)", "ONNX (ms)", "speed-up over eager (x)",
                 "speed-up over eager, 1 thread (x)", "max abs logit diff"), rows)]


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


def _infill_table(f: dict[str, Any]) -> list[str]:
    infill = f.get("infill")
    if not isinstance(infill, dict):
        return []
    rows = []
    for mode, kinds in infill.items():
        for kind, r in kinds.items():
            rows.append((mode, kind.replace("_", "-"), r.get("cases"), r.get("exact_match"),
                         r.get("exact_match_normalised"), r.get("parses"), r.get("empty"), r.get("mean_latency_ms"),
                         r.get("p50_latency_ms")))
    split = f.get("infill_split", "held_out")
    where = "whole held-out packages" if split == "held_out_packages" else "held-out files"
    draw = f.get("infill_draw", {})
    spread = "; ".join(f"{k.replace('_', '-')}: {d.get('cases')} holes from {d.get('files')} files"
                       + (f" of {len(d['packages'])} packages" if split == "held_out_packages"
                          and isinstance(d.get("packages"), dict) else "")
                       for k, d in draw.items() if isinstance(d, dict))
    floor = f.get("infill_min_confidence")
    floor_text = f", confidence floor {floor:g}" if isinstance(floor, (int, float)) else ""
    return [f"Infill (Python of {where}{'; ' + spread if spread else ''}{floor_text}):\n\n" + table(
        ("mode", "span", "cases", "exact match (%)", "exact, whitespace normalised (%)",
         "still parses (%)", "answered empty (%)", "mean latency (ms)", "p50 latency (ms)"), rows)]


def _infill_floors(f: dict[str, Any]) -> list[str]:
    """The confidence floor's trade-off: exact match, parses and empty answers at each floor."""
    infill = f.get("infill")
    if not isinstance(infill, dict):
        return []
    found = [(mode, kind, r["floors"]) for mode, kinds in infill.items() for kind, r in kinds.items()
             if isinstance(r.get("floors"), dict)]
    if not found:
        return []
    floors = sorted({x for _, _, fl in found for x in fl}, key=float)
    rows = [(mode, kind.replace("_", "-"), *(_floor_cell(fl.get(x)) for x in floors)) for mode, kind, fl in found]
    return ["Confidence floor (a completion whose confidence is below it is answered empty): exact match / "
            "file still parses / answered empty, in %:\n\n"
            + table(("mode", "span", *(f"floor {x}" for x in floors)), rows)]


def _floor_cell(r: Any) -> str:
    if not isinstance(r, dict):
        return "-"
    return " / ".join(fmt(r.get(k)) for k in ("exact_match", "parses", "empty"))


def _compliance_table(f: dict[str, Any]) -> list[str]:
    c = f.get("compliance")
    if not isinstance(c, dict):
        return []
    share = c.get("needs_review_share")
    rows = [("paragraphs", c.get("paragraphs")), ("banned phrases found", c.get("findings")),
            ("rewrites applied (edits, refiner rewrites)",
             f"{c.get('applied', '?')} ({c.get('applied_edits', '?')}, {c.get('applied_refiner_rewrites', '?')})"),
            ("banned phrases left unflagged", c.get("banned_left_unflagged")),
            ("applied rewrites reading worse (drafter's fluency)", c.get("applied_reading_worse")),
            ("applied rewrites reading worse to the refiner", c.get("applied_reading_worse_refiner")),
            ("needs review", c.get("needs_review")),
            ("needs review (% of findings)", round(100 * float(share), 1) if share is not None else None),
            ("p50 latency per paragraph (s)", c.get("latency_s", {}).get("p50"))]
    opts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in c.get("options", {}).items())
    out = [f"Compliance rewrites (rules `{c.get('rules', '?')}`{'; ' + opts if opts else ''}):\n\n"
           + table(("figure", "value"), rows)]
    sweep = c.get("margin_sweep")
    if isinstance(sweep, dict) and sweep:
        out.append("Fluency margin (how much worse than the original a rewrite may read and still be applied):\n\n"
                   + table(("margin", "applied", "reading worse", "reading worse to the refiner",
                            "needs review (%)"),
                           ((m, r.get("applied"), r.get("applied_reading_worse"),
                             r.get("applied_reading_worse_refiner"),
                             round(100 * float(r["needs_review_share"]), 1) if "needs_review_share" in r else None)
                            for m, r in sorted(sweep.items(), key=lambda kv: float(kv[0])))))
    return out


PROOFREAD_SETS = (("licences", "licence texts"), ("documentation", "package documentation"))


def _proofread_table(f: dict[str, Any]) -> list[str]:
    p = f.get("proofread")
    if not isinstance(p, dict):
        return []
    rows = [(label, r.get("cases"), r.get("wer_before"), r.get("wer_after"),
             round(100 * float(r["reduction"]), 1) if "reduction" in r else None,
             r.get("paragraphs_made_better"), r.get("paragraphs_made_worse"), r.get("p50_latency_ms"))
            for key, label in PROOFREAD_SETS if isinstance(r := p.get(key), dict)]
    if not rows:
        return []
    return [f"Proofreading held-out prose (corruption rate {p.get('corruption_rate', '?')}):\n\n" + table(
        ("set", "paragraphs", "WER before (%)", "WER after (%)", "lower by (%)", "paragraphs better",
         "paragraphs worse", "p50 latency (ms)"), rows)]


def _quality_tables(f: dict[str, Any]) -> list[str]:
    out = _infill_table(f) + _infill_floors(f)
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
    out += _compliance_table(f) + _proofread_table(f)
    return out or generic_tables(f)


KNOWN: dict[str, Section] = {
    "sampler": Section(
        about="Refiner sampling speed and quality, like for like: every row denoises the same spans of "
        "held-out packages' code with the same context window and batch. The baseline is remask's "
        "LLaDA-equivalent loop (a full forward pass per step, logits everywhere, no cache, one token "
        "committed per step, one span at a time; the test suite checks it against LLaDA's schedule). "
        "Each lever is then measured alone and all of them combined (the fast path, at the model's "
        "calibrated settings): logits only at the positions being filled, the context cache, the "
        "confidence threshold, the factor rule, the early exit, batching. Tokens equal is the share "
        "of the baseline's output a row reproduces; exact match the share of the held-out text it "
        "restores. The window section times both at several context lengths; the cache-refresh curve "
        "trades speed for tokens equal; the long section generates 1,024 tokens in LLaDA's blocks; "
        "calibration (on the other half of the documents) chose the model's defaults; locality times "
        "the same 16-token revision in documents of growing length.",
        # best of 3: other work on a shared CPU bends single runs; no --write: the report never changes a model
        run_args=("--calibrate", "--repeats", "3"),
        tables=_sampler_tables,
        plots=(("sampler_cache_refresh", plots.sampler_cache_refresh), ("sampler_locality", plots.sampler_locality)),
    ),
    "onnx_refiner": Section(
        about="Refiner forward latency by input length, PyTorch eager (at its default threads and on one "
        "thread) against ONNX Runtime with fused attention, on a randomly initialised refiner of the "
        "shipped one's shape: both timed on the same inputs in alternating blocks (medians), with the "
        "largest logit difference between them on differently padded rows.",
        tables=_onnx_tables,
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
        "refiner), each completion cut to its scope, checked against the parser and ranked by the "
        "models' joint score, answered empty below the confidence floor; code repair of functions "
        "with 1-3 syntax-breaking corruptions; prose revision of paragraphs with word-level "
        "corruptions (word error rate before and after); compliance rewrites of held-out paragraphs "
        "with banned phrases planted where English allows them (phrases left unflagged, applied "
        "rewrites reading worse than the original, findings left for review); proofreading of "
        "held-out licence texts and package documentation (word error rate before and after). The "
        "infill holes come from whole held-out packages, the packages taking turns and at most two "
        "holes of a kind per file; exact match is also given after whitespace normalisation "
        "(trailing and repeated blanks, blank lines), and the floor's trade-off at several floors.",
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
        "as an error. With `--compare-raw`, each request is also sent without and with the completion "
        "candidate search in turn (`raw_vs_candidates`: p50 of each and their ratio).",
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
