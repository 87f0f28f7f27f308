"""The targets the issues set for each benchmark, and checking figures against them.

A target reads its figures from a benchmark's JSON; when they are absent (an older result,
a partial run) the verdict says "not measured" instead of failing the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# figures -> (the measured value as text, met)
Check = Callable[[dict[str, Any]], tuple[str, bool]]


@dataclass(frozen=True)
class Target:
    label: str  # the wording
    check: Check


@dataclass(frozen=True)
class Verdict:
    label: str
    value: str  # what was measured, as text
    met: bool | None  # None: the figures needed are not in the result


def get(figures: dict[str, Any], *path: str) -> Any:
    """``figures[path[0]][path[1]]...``; KeyError names the whole path when a step is missing."""
    value: Any = figures
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise KeyError(".".join(path))
        value = value[key]
    return value


def evaluate(targets: tuple[Target, ...], figures: dict[str, Any] | None) -> list[Verdict]:
    out = []
    for t in targets:
        if figures is None:
            out.append(Verdict(t.label, "not measured", None))
            continue
        try:
            value, met = t.check(figures)
        except (KeyError, TypeError, ZeroDivisionError):
            out.append(Verdict(t.label, "not measured", None))
            continue
        out.append(Verdict(t.label, value, bool(met)))
    return out


def _speedup(f: dict[str, Any]) -> tuple[str, bool]:
    s = float(get(f, "speedup"))
    return f"{s:.1f}x", s >= 8.0


def _exact_within_2(f: dict[str, Any]) -> tuple[str, bool]:
    fast, base = float(get(f, "fast", "exact_match")), float(get(f, "baseline", "exact_match"))
    return f"{fast:.2f}% vs {base:.2f}% ({fast - base:+.2f} points)", fast >= base - 2.0


def _tokens_equal(f: dict[str, Any]) -> tuple[str, bool]:
    equal = 100 * float(get(f, "fast", "tokens_equal"))  # a share in the JSON
    return f"{equal:.1f}%", equal >= 60.0


def _long_speedup(f: dict[str, Any]) -> tuple[str, bool]:
    long = get(f, "long")
    s = float(get(long, "fast", "speedup"))
    return f"{s:.1f}x at {int(get(long, 'generated_tokens')):,} tokens", s >= 20.0 and long["generated_tokens"] >= 1024


def _tokens_per_pass(f: dict[str, Any]) -> tuple[str, bool]:
    """The fast path at the model's calibrated defaults; an infill request's own defaults (fewer
    steps) are stated beside it when measured, but the target reads the fast path."""
    t = float(get(f, "fast", "tokens_per_pass"))
    infill = [r for r in f.get("levers", []) if isinstance(r, dict) and r.get("lever") == "infill_defaults"]
    aside = f" (an infill request's defaults: {float(infill[0]['tokens_per_pass']):g})" \
        if infill and "tokens_per_pass" in infill[0] else ""
    return f"{t:g}{aside}", t >= 3.0


def _onnx_speedup(tokens: str, bar: float) -> Check:
    """ONNX Runtime against the faster of eager PyTorch's two runs (its default threads, one
    thread): a busy shared CPU can make the multi-threaded run far slower than it should be."""

    def check(f: dict[str, Any]) -> tuple[str, bool]:
        r = get(f, "lengths", tokens)
        runs = [float(r[k]) for k in ("torch_ms", "torch_1_thread_ms") if k in r]
        if not runs:
            raise KeyError(f"lengths.{tokens}.torch_ms")
        eager, onnx = min(runs), float(get(r, "onnx_ms"))
        s = eager / onnx
        return f"{s:.2f}x ({eager:g} vs {onnx:g} ms)", s >= bar

    return check


def _locality(f: dict[str, Any]) -> tuple[str, bool]:
    r = float(get(f, "locality", "ratio"))
    return f"{r:.2f}", r <= 1.5


def _accuracy_015(f: dict[str, Any]) -> tuple[str, bool]:
    a = 100 * float(get(f, "refiner", "masked_token_accuracy", "0.15"))
    return f"{a:.1f}%", a > 60.0


def _auc(f: dict[str, Any]) -> tuple[str, bool]:
    a = float(get(f, "refiner", "edit_noise_detection_auc"))
    return f"{a:.3f}", a > 0.85


def _gpu_trained(devices: Any) -> bool:
    """Whether a GPU trained the model (a device name) or any of the models (a mapping of them):
    issue 12 asks more of GPU-trained models. Unknown devices count as CPU."""
    names = devices.values() if isinstance(devices, dict) else [devices]
    return any(d not in (None, "cpu") for d in names)


def _trained_label(gpu: bool) -> str:
    return "GPU-trained" if gpu else "CPU-trained"


def _pkg_accuracy_015(f: dict[str, Any]) -> tuple[str, bool]:
    a = 100 * float(get(f, "refiner", "packages", "masked_token_accuracy", "0.15"))
    gpu = _gpu_trained(f["refiner"].get("trained_on"))
    bar = 70.0 if gpu else 55.0
    return f"{a:.1f}% ({_trained_label(gpu)}: >= {bar:g}%)", a >= bar


def _pkg_auc(f: dict[str, Any]) -> tuple[str, bool]:
    a = float(get(f, "refiner", "packages", "edit_noise_detection_auc"))
    return f"{a:.3f}", a >= 0.88


def _pkg_perplexity(f: dict[str, Any]) -> tuple[str, bool]:
    p = float(get(f, "drafter", "packages", "code", "perplexity"))
    return f"{p:g}", p <= 10.0


def _pkg_best_single_line(f: dict[str, Any]) -> tuple[str, bool]:
    """The best mode's single-line exact match, only when the holes came from the package split."""
    if get(f, "infill_split") != "held_out_packages":
        raise KeyError("infill_split")  # stdlib holes: this target is not measured
    infill = get(f, "infill")
    em = {m: float(get(r, "single_line", "exact_match")) for m, r in infill.items() if "single_line" in r}
    if not em:
        raise KeyError("infill")
    best = max(em, key=lambda m: em[m])
    gpu = _gpu_trained(f.get("trained_on"))
    bar = 25.0 if gpu else 15.0
    return f"{best} {em[best]:g}% ({_trained_label(gpu)}: >= {bar:g}%)", em[best] >= bar


def _infill_parses(f: dict[str, Any]) -> tuple[str, bool]:
    """The lowest share of completed files that parse over every mode and hole kind."""
    shares = {(m, k): float(get(r, "parses")) for m, kinds in get(f, "infill").items() for k, r in kinds.items()}
    if not shares:
        raise KeyError("infill")
    (mode, kind), low = min(shares.items(), key=lambda kv: kv[1])
    return f"lowest: {mode} {kind.replace('_', '-')} {low:g}%", low >= 90.0


def _best_single_line(f: dict[str, Any]) -> tuple[str, bool]:
    """Issue 14's bar for today's models, with the best mode's share answered empty stated."""
    infill = get(f, "infill")
    single = {m: r["single_line"] for m, r in infill.items() if "single_line" in r}
    if not single:
        raise KeyError("infill")
    best = max(single, key=lambda m: float(get(single[m], "exact_match")))
    em, empty = float(single[best]["exact_match"]), single[best].get("empty")
    answered = f", {float(empty):g}% answered empty" if empty is not None else ""
    return f"{best} {em:g}%{answered}", em >= 10.0


def _hybrid_exact(kind: str) -> Check:
    def check(f: dict[str, Any]) -> tuple[str, bool]:
        em = {m: float(get(f, "infill", m, kind, "exact_match")) for m in ("ar", "diffusion", "hybrid")}
        text = f"hybrid {em['hybrid']:g}% vs ar {em['ar']:g}%, diffusion {em['diffusion']:g}%"
        return text, em["hybrid"] > em["ar"] and em["hybrid"] > em["diffusion"]

    return check


def _hybrid_latency(kind: str) -> Check:
    def check(f: dict[str, Any]) -> tuple[str, bool]:
        h = float(get(f, "infill", "hybrid", kind, "mean_latency_ms"))
        a = float(get(f, "infill", "ar", kind, "mean_latency_ms"))
        return f"{h / a:.2f}x ar ({h:g} vs {a:g} ms)", h <= 1.5 * a

    return check


def _repair_parses(f: dict[str, Any]) -> tuple[str, bool]:
    p = float(get(f, "repair_code", "parses"))
    return f"{p:g}%", p >= 85.0


def _wer_halved(f: dict[str, Any]) -> tuple[str, bool]:
    before, after = float(get(f, "repair_prose", "wer_before")), float(get(f, "repair_prose", "wer_after"))
    reduction = 1 - after / before
    return f"{before:g}% -> {after:g}% ({100 * reduction:.1f}% lower)", reduction >= 0.5


def _proofread_lower(f: dict[str, Any]) -> tuple[str, bool]:
    sets = {k: r for k, r in get(f, "proofread").items() if isinstance(r, dict) and "wer_before" in r}
    if not sets:
        raise KeyError("proofread")
    wer = {k: (float(r["wer_before"]), float(get(r, "wer_after"))) for k, r in sets.items()}
    text = "; ".join(f"{k} {b:g}% -> {a:g}%" for k, (b, a) in wer.items())
    return text, all(a < b for b, a in wer.values())


def _proofread_documentation(f: dict[str, Any]) -> tuple[str, bool]:
    before = float(get(f, "proofread", "documentation", "wer_before"))
    after = float(get(f, "proofread", "documentation", "wer_after"))
    lower = 1 - after / before
    return f"{before:g}% -> {after:g}% ({100 * lower:.1f}% lower)", lower >= 0.4


def _candidates_ratio(f: dict[str, Any]) -> tuple[str, bool]:
    paired = get(f, "raw_vs_candidates")
    raw, found = float(get(paired, "raw_p50_ms")), float(get(paired, "candidates_p50_ms"))
    return f"{found / raw:.2f}x ({found:g} vs {raw:g} ms)", found <= 1.3 * raw


def _p50(f: dict[str, Any]) -> tuple[str, bool]:
    p = float(get(f, "fim_p50_ms"))
    return f"{p:g} ms", p < 250.0


def _scaling(f: dict[str, Any]) -> tuple[str, bool]:
    c1, c8 = float(get(f, "rps_c1")), float(get(f, "rps_c8"))
    return f"{c8:g} vs {c1:g} rps ({c8 / c1:.2f}x)", c8 >= 2.5 * c1


def _zero(*path: str) -> Check:
    def check(f: dict[str, Any]) -> tuple[str, bool]:
        n = int(get(f, *path))
        return str(n), n == 0

    return check


def _poison_alone(f: dict[str, Any]) -> tuple[str, bool]:
    errors = list(get(f, "errors_file"))
    return ", ".join(errors) or "none", bool(get(f, "poison_alone_in_errors"))


TARGETS: dict[str, tuple[Target, ...]] = {
    "sampler": (
        Target("fast path >= 8x remask's LLaDA-equivalent loop on the same inputs", _speedup),
        Target("fast-path exact match within 2 points of the LLaDA-equivalent loop", _exact_within_2),
        Target("fast path: >= 60% of tokens equal to the LLaDA-equivalent loop's", _tokens_equal),
        Target("fast path >= 20x at 1,024 generated tokens", _long_speedup),
        Target("tokens committed per forward pass >= 3 at the default settings", _tokens_per_pass),
        Target("locality: 8,000- vs 512-token document revision time ratio <= 1.5", _locality),
    ),
    "onnx_refiner": (
        Target("ONNX refiner forward >= 1.5x eager at 128 tokens", _onnx_speedup("128", 1.5)),
        Target("ONNX refiner forward >= 1.2x eager at 512 tokens", _onnx_speedup("512", 1.2)),
    ),
    "models": (
        Target("refiner masked-token accuracy at mask ratio 0.15 > 60% (held-out code)", _accuracy_015),
        Target("edit-noise detection AUC > 0.85 (held-out code)", _auc),
        Target("held-out packages' code: refiner masked-token accuracy at 0.15 >= 55% "
               "(>= 70% if GPU-trained)", _pkg_accuracy_015),
        Target("held-out packages' code: edit-noise detection AUC >= 0.88", _pkg_auc),
        Target("held-out packages' code: drafter perplexity <= 10", _pkg_perplexity),
    ),
    "quality": (
        Target("held-out packages: single-line infill exact match >= 15% in the best mode "
               "(>= 25% if GPU-trained)", _pkg_best_single_line),
        Target("single-line infill: hybrid exact match above ar and diffusion", _hybrid_exact("single_line")),
        Target("multi-line infill: hybrid exact match above ar and diffusion", _hybrid_exact("multi_line")),
        Target("single-line infill: hybrid latency <= 1.5x ar", _hybrid_latency("single_line")),
        Target("multi-line infill: hybrid latency <= 1.5x ar", _hybrid_latency("multi_line")),
        Target("every infill mode: >= 90% of completed files parse", _infill_parses),
        Target("single-line infill exact match >= 10% in the best mode (share answered empty stated)",
               _best_single_line),
        Target(">= 85% of corrupted held-out code parses after repair", _repair_parses),
        Target("prose word error rate at least halved by revision", _wer_halved),
        Target("compliance: 0 banned phrases left unflagged", _zero("compliance", "banned_left_unflagged")),
        Target("compliance: 0 applied rewrites reading worse than the original",
               _zero("compliance", "applied_reading_worse")),
        Target("proofreading: word error rate lower than before on every held-out set", _proofread_lower),
        Target("proofreading: word error rate >= 40% lower on package documentation", _proofread_documentation),
    ),
    "serve": (
        Target("FIM p50 latency < 250 ms", _p50),
        Target("throughput at 8 concurrent >= 2.5x at 1", _scaling),
        Target("zero errors", _zero("errors")),
        Target("FIM p50 with the candidate search <= 1.3x without (--compare-raw)", _candidates_ratio),
    ),
    "queue": (
        Target("no job lost under worker kills and Valkey restarts", _zero("lost")),
        Target("no item result duplicated", _zero("duplicated")),
        Target("no job failed", _zero("jobs_failed")),
        Target("the poison item alone in the errors file", _poison_alone),
    ),
}
