"""PNG plots of stored benchmark figures (matplotlib, Agg canvas, no pyplot state).

Each function takes a benchmark's figures and the PNG path to write, and returns the path,
or None when the figures it needs are absent (an older result without a cache-refresh curve, say).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

DPI = 100  # small files: about 30-60 KB a plot
MODES = ("ar", "diffusion", "hybrid")
KINDS = ("single_line", "multi_line")

PlotFn = Callable[[dict[str, Any], Path], Path | None]


def _figure(width: float, height: float, ncols: int) -> tuple[Any, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, axes


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # no "Software" entry: a rebuilt plot of the same figures is the same file
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def quality_by_mode(figures: dict[str, Any], path: Path) -> Path | None:
    """Infill exact match, still-parses, the share answered empty (where recorded) and mean
    latency by mode, single- and multi-line."""
    infill = figures.get("infill")
    if not isinstance(infill, dict):
        return None
    modes = [m for m in MODES if m in infill]  # --modes may have skipped some
    if not modes:
        return None
    panels = [("exact_match", "exact match (%)"), ("parses", "file still parses (%)"),
              ("mean_latency_ms", "mean latency (ms)")]
    if any("empty" in r for m in modes for r in infill[m].values()):  # results since issue 14
        panels.insert(2, ("empty", "answered empty (%)"))
    fig, axes = _figure(max(10.0, 3.0 * len(panels)), 3.2, len(panels))
    width = 0.38
    for ax, (key, label) in zip(axes, panels):
        top = 0.0
        for j, kind in enumerate(KINDS):
            xs = [i + (j - 0.5) * width for i in range(len(modes))]
            ys = [float(infill[m].get(kind, {}).get(key, 0.0)) for m in modes]
            bars = ax.bar(xs, ys, width, label=kind.replace("_", "-"))
            ax.bar_label(bars, fmt="%g", fontsize=7)
            top = max([top, *ys])
        ax.set_xticks(range(len(modes)), modes)
        ax.set_title(label, fontsize=10)
        ax.set_ylim(0, top * 1.18 if top > 0 else 10.0)  # all zeros still reads as zero
    axes[0].legend(fontsize=8)
    where = ("whole held-out packages" if figures.get("infill_split") == "held_out_packages"
             else "held-out files")
    fig.suptitle(f"bench quality: infill by mode ({where})", fontsize=11)
    return _save(fig, path)


def _refresh_label(k: Any) -> str:
    if k is None:
        return "no cache"
    if int(k) == 0:
        return "block starts"
    return "every step" if int(k) == 1 else f"every {int(k)}"


def sampler_cache_refresh(figures: dict[str, Any], path: Path) -> Path | None:
    """The context cache's speed/quality curve: tokens equal to the baseline's against speed-up,
    one point per refresh schedule (and the fast path without a cache)."""
    curve = sorted((r for r in figures.get("cache_refresh", []) if isinstance(r, dict) and "speedup" in r),
                   key=lambda r: float(r["speedup"]))
    if len(curve) < 2:
        return None
    fig, (ax,) = _figure(5.5, 3.6, 1)
    xs = [float(r["speedup"]) for r in curve]
    ys = [100 * float(r.get("tokens_equal", 1.0)) for r in curve]
    ax.plot(xs, ys, marker="o", linestyle="none")
    for i, (x, y, r) in enumerate(zip(xs, ys, curve)):
        # labels alternate above and below: neighbouring schedules often sit close together
        ax.annotate(_refresh_label(r.get("refresh")), (x, y), textcoords="offset points",
                    xytext=(4, 5 if i % 2 == 0 else -12), fontsize=7)
    ax.axhline(60.0, color="red", linestyle="--", linewidth=1, label="target: 60% of tokens equal")
    ax.axvline(8.0, color="darkred", linestyle=":", linewidth=1, label="target: 8x")
    ax.set_xlim(0, max([*xs, 8.0]) * 1.2)
    ax.set_ylim(0, 105)
    ax.set_xlabel("speed-up over the baseline (x)")
    ax.set_ylabel("tokens equal to the baseline's (%)")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title("bench sampler: cache refresh (speed against agreement)", fontsize=10)
    return _save(fig, path)


def sampler_locality(figures: dict[str, Any], path: Path) -> Path | None:
    """Time of one span revision against document length."""
    by_length = figures.get("locality", {}).get("by_length_s")
    if not isinstance(by_length, dict) or len(by_length) < 2:
        return None
    lengths = sorted(int(n) for n in by_length)
    ms = [1000 * float(by_length[str(n)]) for n in lengths]
    fig, (ax,) = _figure(5.5, 3.4, 1)
    ax.plot(lengths, ms, marker="o", label="16-token revision")
    ax.axhline(1.5 * ms[0], color="red", linestyle="--", linewidth=1, label=f"1.5x the {lengths[0]}-token time")
    ax.set_xscale("log")
    ax.set_xticks(lengths, [f"{n:,}" for n in lengths])
    ax.minorticks_off()
    ax.set_ylim(0, max([*ms, 1.5 * ms[0]]) * 1.15)
    ax.set_xlabel("document length (tokens)")
    ax.set_ylabel("median latency (ms)")
    ax.legend(fontsize=8)
    ax.set_title("bench sampler: locality", fontsize=10)
    return _save(fig, path)


def models_accuracy(figures: dict[str, Any], path: Path) -> Path | None:
    """Refiner masked-token accuracy by mask ratio: held-out files (code, prose) and whole
    held-out packages (code, prose), with the targets at 0.15."""
    refiner = figures.get("refiner")
    if not isinstance(refiner, dict):
        return None
    packages: dict[str, Any] = refiner["packages"] if isinstance(refiner.get("packages"), dict) else {}
    lines = [(f"held-out {kind}", refiner[kind], "-") for kind in ("code", "prose")
             if isinstance(refiner.get(kind), dict)]
    lines += [(f"held-out packages: {kind}", packages[kind], "--") for kind in ("code", "prose")
              if isinstance(packages.get(kind), dict)]
    lines = [(label, r["masked_token_accuracy"], style) for label, r, style in lines
             if "masked_token_accuracy" in r]
    if not lines:
        return None
    fig, (ax,) = _figure(5.5, 3.4, 1)
    for label, acc, style in lines:
        ratios = sorted(acc, key=float)
        ax.plot([float(r) for r in ratios], [100 * float(acc[r]) for r in ratios], marker="o",
                linestyle=style, label=label)
    ax.plot([0.15], [60.0], marker="*", markersize=12, color="red", linestyle="none", label="target at 0.15: > 60%")
    if packages:
        gpu = refiner.get("trained_on") not in (None, "cpu")
        bar = 70.0 if gpu else 55.0
        ax.plot([0.15], [bar], marker="P", markersize=10, color="darkred", linestyle="none",
                label=f"packages' target ({'GPU' if gpu else 'CPU'}-trained): >= {bar:g}%")
    ax.set_ylim(0, 100)
    ax.set_xlabel("mask ratio")
    ax.set_ylabel("masked-token accuracy (%)")
    ax.legend(fontsize=7)
    ax.set_title("bench models: refiner", fontsize=10)
    return _save(fig, path)
