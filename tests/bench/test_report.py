"""bench.report: rendering from stored results, plots, target checks, and --run storing
results (with a fake benchmark process, never a real benchmark)."""

from __future__ import annotations

import argparse
import json
import struct
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bench.report import add_arguments, build_report, main
from bench.report.results import Machine, Measured, StoredResult, load_result, save_result
from bench.report.targets import TARGETS, evaluate

REGISTRY = {"sampler": "bench.sampler", "quality": "bench.quality", "models": "bench.models",
            "newbench": "bench.queue"}  # newbench: registered, but the report has no section for it

MACHINE = Machine(cpu="Test CPU 9000", cores=2, ram_gb=16.0, gpu=None)

def _run(nfe: int, seconds: float, exact: float, **more: float) -> dict[str, Any]:
    """One sampler row as `bench sampler` writes it."""
    return {"nfe": nfe, "calls": nfe, "seconds": seconds, "tokens_per_pass": round(384 / nfe, 2),
            "exact_match": exact, "span_exact": 0.0, **more}


SAMPLER = {
    "model": "models/refiner", "split": "held_out_packages", "cases": 24, "span_tokens": 16,
    "timing": "best of 3 runs",
    "baseline": {"what": "full pass", **_run(384, 35.0, 6.0)},
    "levers": [{"lever": "logits_only", "what": "logits at filled positions",
                **_run(384, 10.0, 6.0, tokens_equal=1.0, speedup=3.5)},
               {"lever": "fast", "what": "all levers", **_run(96, 2.5, 5.0, tokens_equal=0.7, speedup=14.0)},
               {"lever": "infill_defaults", "what": "infill's defaults",
                **_run(96, 1.0, 4.0, tokens_equal=0.3, speedup=35.0)}],
    "fast": {"lever": "fast", "what": "all levers", **_run(96, 2.5, 5.0, tokens_equal=0.7, speedup=14.0)},
    "speedup": 14.0,
    "window": [{"window": 16, "tokens_fed": 48, "baseline": _run(128, 3.0, 10.0),
                "fast": _run(100, 0.5, 11.0, tokens_equal=0.75, speedup=6.0)}],
    "cache_refresh": [{"refresh": r, **_run(96, 8.0 / k, 5.0, tokens_equal=0.8 - 0.02 * k, speedup=4.4 * k)}
                      for k, r in ((1, None), (2, 1), (3, 4), (4, 0))],
    "long": {"generated_tokens": 1024, "prompt_tokens": 64, "block_length": 32, "beyond_trained_context": True,
             "baseline": _run(1024, 400.0, 4.5), "fast": _run(160, 16.0, 7.0, tokens_equal=0.41, speedup=25.0)},
    "calibration": {"defaults": {"factor": 2.0, "early_exit": 0.3, "cache_refresh": 0}, "cases": 24, "window": 64,
                    "baseline": _run(384, 50.0, 7.8), "margin": {"exact_match_points": 2.0, "min_tokens_equal": 0.6},
                    "factor": [{"value": 2.0, **_run(365, 25.7, 7.8, tokens_equal=1.0, speedup=1.97)}],
                    "cache_refresh": [{"refresh": 8, **_run(366, 10.4, 7.8, tokens_equal=0.9, speedup=4.88)}]},
    "locality": {"short_doc_s": 0.1, "long_doc_s": 0.2, "ratio": 2.0,
                 "by_length_s": {"512": 0.1, "2000": 0.12, "8000": 0.2, "32000": 0.21}, "ratio_longest": 2.1},
}
QUALITY = {
    "infill": {m: {k: {"exact_match": em, "parses": 50.0, "mean_latency_ms": lat}
                   for k in ("single_line", "multi_line")}
               for m, em, lat in (("ar", 10.0, 100.0), ("diffusion", 5.0, 300.0), ("hybrid", 12.0, 140.0))},
    "repair_code": {"cases": 24, "parses": 79.2, "restored_exactly": 10.0, "mean_latency_ms": 500.0},
    "repair_prose": {"cases": 16, "wer_before": 20.0, "wer_after": 9.0, "reduction": 0.55},
}
NEWBENCH = {"fim_p50_ms": 120.5, "nested": {"rps": 3.25, "ok": True},
            "runs": [{"c": 1, "rps": 2.0}, {"c": 8, "rps": 6.0}]}


def _store(results: Path, name: str, figures: dict, commit: str = "abcdef1234567890", dirty: bool = False) -> None:
    measured = Measured(date="2030-01-02T03:04:05+00:00", commit=commit, machine=MACHINE, torch="2.13.0",
                        python="3.11.9", command=f"remask bench {name} --json", seconds=12.5, dirty=dirty)
    save_result(results, StoredResult(name=name, figures=figures, measured=measured))


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG, after checking its signature and the IHDR chunk's CRC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    body = data[16:29]
    (crc,) = struct.unpack(">I", data[29:33])
    assert zlib.crc32(b"IHDR" + body) == crc
    assert data.endswith(b"IEND\xaeB`\x82")
    w, h = struct.unpack(">II", body[:8])
    return w, h


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One report, built once for the tests that only read it."""
    tmp_path = tmp_path_factory.mktemp("report")
    results = tmp_path / "results"
    _store(results, "sampler", SAMPLER)
    _store(results, "quality", QUALITY)
    _store(results, "newbench", NEWBENCH)
    out = tmp_path / "bench" / "REPORT.md"
    text = build_report(REGISTRY, results, out, out.parent / "plots")
    assert out.read_text() == text
    return text, out


def _section(text: str, name: str) -> str:
    return text.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0].strip()


def test_header_states_machine_date_commit(report: tuple[str, Path]) -> None:
    text, _ = report
    head = text.split("\n## ", 1)[0]
    assert "Test CPU 9000, 2 cores, 16 GB RAM, GPU: none" in head
    assert "2030-01-02" in head and "abcdef1234" in head and "torch**: 2.13.0" in head
    # the summary: 5 of 6 sampler targets met (locality 2.0 > 1.5), models not measured
    assert "| [sampler](#sampler) | 2030-01-02, abcdef1234 | 5 of 6 |" in head
    assert "| [models](#models) | not measured | - |" in head
    assert "| [newbench](#newbench) | 2030-01-02, abcdef1234 | no targets |" in head


def test_known_benchmark_section_has_tables_targets_and_plots(report: tuple[str, Path]) -> None:
    text, out = report
    s = _section(text, "sampler")
    assert "`remask bench sampler --json`: measured 2030-01-02T03:04:05+00:00 at commit abcdef1234" in s
    assert "| fast path >= 8x remask's LLaDA-equivalent loop on the same inputs | 14.0x | met |" in s
    assert ("| fast-path exact match within 2 points of the LLaDA-equivalent loop "
            "| 5.00% vs 6.00% (-1.00 points) | met |") in s
    assert "| fast path: >= 60% of tokens equal to the LLaDA-equivalent loop's | 70.0% | met |" in s
    assert "| fast path >= 20x at 1,024 generated tokens | 25.0x at 1,024 tokens | met |" in s
    assert ("| tokens committed per forward pass >= 3 at the default settings "
            "| 4 (an infill request's defaults: 4) | met |") in s
    assert "| 2.00 | **not met** |" in s
    assert "| 32,000 | 0.21 | 2.1 |" in s
    for stem in ("sampler_cache_refresh", "sampler_locality"):
        assert f"![{stem}](plots/{stem}.png)" in s
        assert (out.parent / "plots" / f"{stem}.png").is_file()

    q = _section(text, "quality")
    assert ("| single-line infill: hybrid exact match above ar and diffusion "
            "| hybrid 12% vs ar 10%, diffusion 5% | met |") in q
    assert "| multi-line infill: hybrid latency <= 1.5x ar | 1.40x ar (140 vs 100 ms) | met |" in q
    assert "| >= 85% of corrupted held-out code parses after repair | 79.2% | **not met** |" in q
    # a result from before issue 12: no cases, normalised exact match, empty share or p50 recorded
    assert "| hybrid | multi-line | - | 12 | - | 50 | - | 140 | - |" in q
    assert "Confidence floor" not in q and "Compliance" not in q and "Proofreading" not in q
    assert "Infill (Python of held-out files):" in q
    assert "| held-out packages: single-line infill exact match >= 15% in the best mode (>= 25% if " \
        "GPU-trained) | not measured | - |" in q
    assert "![quality_by_mode](plots/quality_by_mode.png)" in q


def test_unknown_benchmark_rendered_generically(report: tuple[str, Path]) -> None:
    text, _ = report
    s = _section(text, "newbench")
    # described by its module's docstring (bench.queue's first paragraph), no import needed
    assert s.startswith("Job queue under worker kills")
    assert "| fim_p50_ms | 120.5 |" in s
    assert "| nested.rps | 3.25 |" in s and "| nested.ok | yes |" in s
    assert "`runs`:\n\n| c | rps |\n|---|---|\n| 1 | 2 |\n| 8 | 6 |" in s
    assert "Targets:" not in s and "![" not in s


def test_missing_result_is_not_measured(report: tuple[str, Path]) -> None:
    text, out = report
    s = _section(text, "models")
    assert "**Not measured**" in s and "remask bench report --run models" in s
    assert "| edit-noise detection AUC > 0.85 (held-out code) | not measured | - |" in s
    assert not (out.parent / "plots" / "models_accuracy.png").exists()


def test_plots_are_small_valid_pngs(report: tuple[str, Path]) -> None:
    _, out = report
    pngs = sorted((out.parent / "plots").glob("*.png"))
    assert [p.stem for p in pngs] == ["quality_by_mode", "sampler_cache_refresh", "sampler_locality"]
    for p in pngs:
        w, h = _png_size(p)
        assert 300 <= w <= 1200 and 200 <= h <= 600
        assert p.stat().st_size < 80_000


def test_uncommitted_changes_are_stated(tmp_path: Path) -> None:
    _store(tmp_path / "results", "queue", {"lost": 0, "duplicated": 0}, dirty=True)
    text = build_report({"queue": "bench.queue"}, tmp_path / "results", tmp_path / "R.md", tmp_path / "plots")
    assert "at commit abcdef1234 (with uncommitted changes) on Test CPU 9000" in text
    assert "| [queue](#queue) | 2030-01-02, abcdef1234 | 2 of 2 (2 not measured) |" in text


def test_stale_plot_removed_when_result_disappears(tmp_path: Path) -> None:
    results, out = tmp_path / "results", tmp_path / "REPORT.md"
    _store(results, "quality", QUALITY)
    build_report(REGISTRY, results, out, tmp_path / "plots")
    assert (tmp_path / "plots" / "quality_by_mode.png").is_file()
    (results / "quality.json").unlink()
    text = build_report(REGISTRY, results, out, tmp_path / "plots")
    assert not (tmp_path / "plots" / "quality_by_mode.png").exists()
    assert "quality_by_mode" not in text


def test_models_plot_and_targets(tmp_path: Path) -> None:
    accuracy = {"0.15": 0.65, "0.5": 0.4, "0.9": 0.1}
    figures = {"refiner": {"model": "m", "masked_token_accuracy": {"0.15": 0.65}, "edit_noise_detection_auc": 0.8,
                           "code": {"held_out_loss": 3.0, "masked_token_accuracy": accuracy,
                                    "edit_noise_detection_auc": 0.8}},
               "drafter": {"model": "d", "code": {"held_out_loss": 3.9, "perplexity": 49.9}}}
    verdicts = evaluate(TARGETS["models"], figures)
    assert [(v.value, v.met) for v in verdicts] == [("65.0%", True), ("0.800", False)] + [
        ("not measured", None)] * 3  # no packages block: issue 12's targets are not measured
    results = tmp_path / "results"
    _store(results, "models", figures)
    text = build_report(REGISTRY, results, tmp_path / "REPORT.md", tmp_path / "plots")
    assert "| code | 3 | 65.0 | 40.0 | 10.0 | 0.8 |" in text
    assert "| code | 3.9 | 49.9 |" in text
    _png_size(tmp_path / "plots" / "models_accuracy.png")


def _models_12(acc: float, auc: float, ppl: float, device: str | None) -> dict[str, Any]:
    """`bench models` figures as issue 12 writes them: a packages block, the training device."""
    code = {"held_out_loss": 2.0, "masked_token_accuracy": {"0.15": acc, "0.5": 0.4, "0.9": 0.1},
            "edit_noise_detection_auc": auc}
    return {"refiner": {"model": "r", "trained_on": device, "context": 512, "seq_len": 512, "windows": 128,
                        "code": code, **{k: code[k] for k in code},
                        "packages": {"code": code, **{k: code[k] for k in code}}},
            "drafter": {"model": "d", "trained_on": device, "context": 512, "seq_len": 512, "windows": 128,
                        "code": {"held_out_loss": 2.5, "perplexity": 12.2},
                        "packages": {"code": {"held_out_loss": 2.2, "perplexity": ppl}}}}


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        (_models_12(0.56, 0.9, 9.5, "cpu"), [("56.0% (CPU-trained: >= 55%)", True), ("0.900", True), ("9.5", True)]),
        (_models_12(0.56, 0.87, 10.5, "cuda"), [("56.0% (GPU-trained: >= 70%)", False), ("0.870", False),
                                                ("10.5", False)]),
        (_models_12(0.71, 0.88, 10.0, None), [("71.0% (CPU-trained: >= 55%)", True), ("0.880", True), ("10", True)]),
    ],
)
def test_issue_12_model_targets_read_the_packages_block(figures: dict[str, Any],
                                                        expected: list[tuple[str, bool]]) -> None:
    verdicts = evaluate(TARGETS["models"], figures)[2:]
    assert [(v.value, v.met) for v in verdicts] == expected


def test_models_tables_show_both_held_out_sets(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _store(results, "models", _models_12(0.56, 0.9, 9.5, "cpu"))
    text = build_report(REGISTRY, results, tmp_path / "REPORT.md", tmp_path / "plots")
    assert "Refiner `r`, 128 windows of 512 tokens (trained context 512, on cpu):" in text
    assert "| code | 2 | 56.0 | 40.0 | 10.0 | 0.9 |" in text
    assert "| held-out packages: code | 2 | 56.0 | 40.0 | 10.0 | 0.9 |" in text
    assert "| held-out packages: code | 2.2 | 9.5 |" in text
    _png_size(tmp_path / "plots" / "models_accuracy.png")


def _quality_12(split: str, trained_on: dict[str, str], **single: float) -> dict[str, Any]:
    return {"infill_split": split, "trained_on": trained_on,
            "infill_draw": {"single_line": {"cases": 200, "files": 150, "most_from_one_file": 2,
                                            "packages": {"a": 100, "b": 100}}},
            "infill": {m: {"single_line": {"cases": 200, "exact_match": em, "exact_match_normalised": em + 1,
                                           "parses": 50.0, "mean_latency_ms": 100.0, "p50_latency_ms": 90.0}}
                       for m, em in single.items()}}


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        (_quality_12("held_out_packages", {"drafter": "cpu", "refiner": "cpu"}, ar=16.0, hybrid=12.0),
         ("ar 16% (CPU-trained: >= 15%)", True)),
        (_quality_12("held_out_packages", {"drafter": "cuda", "refiner": "cpu"}, ar=16.0, hybrid=24.5),
         ("hybrid 24.5% (GPU-trained: >= 25%)", False)),
        (_quality_12("held_out", {"drafter": "cpu", "refiner": "cpu"}, ar=30.0), ("not measured", None)),
    ],
)
def test_issue_12_infill_target_needs_package_holes(figures: dict[str, Any],
                                                    expected: tuple[str, bool | None]) -> None:
    verdict = evaluate(TARGETS["quality"], figures)[0]
    assert (verdict.value, verdict.met) == expected


def test_quality_tables_and_plot_for_some_modes(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _store(results, "quality", _quality_12("held_out_packages", {}, ar=16.0, hybrid=12.0))
    text = build_report(REGISTRY, results, tmp_path / "REPORT.md", tmp_path / "plots")
    assert "Infill (Python of whole held-out packages; single-line: 200 holes from 150 files of 2 packages):" in text
    assert "| hybrid | single-line | 200 | 12 | 13 | 50 | - | 100 | 90 |" in text
    # two modes of three still plot; three panels (no empty share recorded before issue 14)
    assert _png_size(tmp_path / "plots" / "quality_by_mode.png")[0] == 1000


def test_sampler_tables_show_every_section(report: tuple[str, Path]) -> None:
    s = _section(report[0], "sampler")
    assert ("| baseline | full pass | 384 | 384 | 35 | 1 | 100 | 6 | 0 | 1 |" in s
            and "| fast | all levers | 96 | 96 | 2.5 | 4 | 70 | 5 | 0 | 14 |" in s)
    assert "| 16 | 48 | fast | 100 | 100 | 0.5 | 3.84 | 75 | 11 | 0 | 6 |" in s
    refresh = [line.split(" | ")[0] for line in s.split("Context cache refreshed")[1].split("\n\n")[1].splitlines()]
    assert refresh[2:] == ["| no cache", "| every step", "| every 4 steps", "| at block starts"]
    assert "Long generation: 1,024 tokens after a 64-token prompt in blocks of 32 (beyond" in s
    assert "| fast | 160 | 160 | 16 | 2.4 | 41 | 7 | 0 | 25 |" in s
    assert "chosen: factor 2.0, early exit 0.3, cache refresh at block starts:" in s
    assert "| factor | 2 | 365 |" in s and "| cache refresh | every 8 steps | 366 |" in s


def test_onnx_refiner_section(tmp_path: Path) -> None:
    lengths = {str(n): {"seq_len": n, "batch": 1, "torch_ms": t, "torch_1_thread_ms": t1, "onnx_ms": o,
                        "speedup": round(t / o, 2), "speedup_vs_1_thread": round(t1 / o, 2), "max_abs_diff": 2e-6}
               for n, t, t1, o in ((2048, 4300.0, 1700.0, 1400.0), (128, 580.0, 78.0, 49.0),
                                   (512, 3000.0, 260.0, 250.0))}
    figures = {"model": "shape of models/refiner, random init", "attention": "com.microsoft.MultiHeadAttention",
               "lengths": lengths, "settings": {"torch_threads": 2, "onnx_threads": 2, "timing": "medians"}}
    _store(tmp_path / "results", "onnx_refiner", figures)
    text = build_report({"onnx_refiner": "bench.onnx_refiner"}, tmp_path / "results", tmp_path / "R.md",
                        tmp_path / "plots")
    s = _section(text, "onnx_refiner")
    # the faster eager run is the bar: 78 ms on one thread, not 580 ms on two
    assert "| ONNX refiner forward >= 1.5x eager at 128 tokens | 1.59x (78 vs 49 ms) | met |" in s
    assert "| ONNX refiner forward >= 1.2x eager at 512 tokens | 1.04x (260 vs 250 ms) | **not met** |" in s
    assert "attention exported as `com.microsoft.MultiHeadAttention`; threads: torch 2, ONNX Runtime 2" in s
    rows = [line for line in s.splitlines() if line.startswith("| 128 |") or line.startswith("| 2,048 |")]
    assert rows[0] == "| 128 | 1 | 580 | 78 | 49 | 11.84 | 1.59 | 2e-06 |" and rows[1].startswith("| 2,048 |")


def _quality_14(parses: float, single_em: float, banned_left: int, worse: int,
                wer: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """`bench quality` figures as issue 14 merges them: infill with empty shares and floors,
    compliance and proofreading."""
    floors = {"0": {"exact_match": single_em, "parses": parses, "empty": 10.0},
              "0.1": {"exact_match": 1.0, "parses": parses, "empty": 80.0}}
    return {
        "infill_split": "held_out_packages", "infill_min_confidence": 0.0,
        "infill": {m: {"single_line": {"cases": 200, "exact_match": em, "parses": p, "empty": 10.0,
                                       "mean_latency_ms": 100.0, "p50_latency_ms": 90.0, "floors": floors},
                       "multi_line": {"cases": 100, "exact_match": 0.0, "parses": p, "empty": 20.0}}
                   for m, em, p in (("ar", single_em, parses + 5), ("diffusion", single_em / 2, parses))},
        "repair_code": {"cases": 24, "parses": 85.0, "restored_exactly": 30.0, "mean_latency_ms": 500.0},
        "compliance": {"paragraphs": 48, "findings": 67, "applied": 63, "applied_edits": 61,
                       "applied_refiner_rewrites": 2, "banned_left_unflagged": banned_left,
                       "applied_reading_worse": worse, "applied_reading_worse_refiner": 8, "needs_review": 4,
                       "needs_review_share": 0.0597, "latency_s": {"mean": 6.0, "p50": 3.1},
                       "options": {"fluency_margin": 0.0}, "rules": "examples/rules.yaml",
                       "margin_sweep": {"0.5": {"needs_review_share": 0.0, "applied_reading_worse": 17,
                                                "applied_reading_worse_refiner": 14, "applied": 67}}},
        "proofread": {"corruption_rate": 0.12, "refiner": "r",
                      **{k: {"cases": 60, "wer_before": b, "wer_after": a, "reduction": round(1 - a / b, 3),
                             "paragraphs_made_better": 40, "paragraphs_made_worse": 9, "p50_latency_ms": 3000.0}
                         for k, (b, a) in wer.items()}},
    }


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        (_quality_14(90.0, 10.0, 0, 0, {"licences": (13.0, 9.0), "documentation": (12.0, 7.2)}),
         [("lowest: diffusion single-line 90%", True), ("ar 10%, 10% answered empty", True), ("85%", True),
          (None, None), ("0", True), ("0", True),
          ("licences 13% -> 9%; documentation 12% -> 7.2%", True), ("12% -> 7.2% (40.0% lower)", True)]),
        (_quality_14(89.5, 9.5, 1, 2, {"licences": (13.0, 13.0), "documentation": (12.0, 11.0)}),
         [("lowest: diffusion single-line 89.5%", False), ("ar 9.5%, 10% answered empty", False), ("85%", True),
          (None, None), ("1", False), ("2", False),
          ("licences 13% -> 13%; documentation 12% -> 11%", False), ("12% -> 11% (8.3% lower)", False)]),
    ],
)
def test_issue_14_quality_targets(figures: dict[str, Any], expected: list[tuple[str | None, bool | None]]) -> None:
    verdicts = evaluate(TARGETS["quality"], figures)[5:]
    assert [(v.value if v.met is not None else None, v.met) for v in verdicts] == expected


def test_issue_14_targets_without_their_figures() -> None:
    old = {"infill": {"ar": {"single_line": {"exact_match": 3.0, "parses": 95.0}}}}  # no empty share recorded
    verdicts = evaluate(TARGETS["quality"], old)
    assert [(v.value, v.met) for v in verdicts[5:7]] == [("lowest: ar single-line 95%", True), ("ar 3%", False)]
    assert all(v.met is None for v in verdicts[7:])
    only_licences = {"proofread": {"licences": {"wer_before": 10.0, "wer_after": 8.0}}}
    verdicts = evaluate(TARGETS["quality"], only_licences)
    assert [(v.value, v.met) for v in verdicts[-2:]] == [("licences 10% -> 8%", True), ("not measured", None)]


def test_issue_14_quality_tables(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _store(results, "quality", _quality_14(90.0, 10.0, 0, 0, {"licences": (13.0, 9.0), "documentation": (12.0, 7.2)}))
    text = build_report(REGISTRY, results, tmp_path / "REPORT.md", tmp_path / "plots")
    q = _section(text, "quality")
    assert "of 2 packages" not in q and "confidence floor 0):" in q
    assert "| ar | single-line | 200 | 10 | - | 95 | 10 | 100 | 90 |" in q
    assert "| mode | span | floor 0 | floor 0.1 |" in q
    assert "| diffusion | single-line | 10 / 90 / 10 | 1 / 90 / 80 |" in q
    assert "| diffusion | multi-line |" not in q.split("Confidence floor")[1]  # no floors recorded there
    assert "Compliance rewrites (rules `examples/rules.yaml`; fluency margin 0.0):" in q
    assert "| rewrites applied (edits, refiner rewrites) | 63 (61, 2) |" in q
    assert "| needs review (% of findings) | 6 |" in q
    assert "| 0.5 | 67 | 17 | 14 | 0 |" in q
    assert "| package documentation | 60 | 12 | 7.2 | 40 | 40 | 9 | 3000 |" in q
    assert _png_size(tmp_path / "plots" / "quality_by_mode.png")[0] == 1200  # a fourth panel: answered empty


@pytest.mark.parametrize(
    ("name", "figures", "expected"),
    [
        ("serve", {"fim_p50_ms": 180.0, "fim_p95_ms": 400.0, "rps_c1": 2.0, "rps_c8": 5.0, "errors": 0},
         [True, True, True, None]),
        ("serve", {"fim_p50_ms": 250.0, "rps_c1": 2.0, "rps_c8": 4.9, "errors": 3}, [False, False, False, None]),
        ("serve", {"fim_p50_ms": 300.0, "rps_c1": 2.0, "rps_c8": 5.0, "errors": 0,
                   "raw_vs_candidates": {"raw_p50_ms": 300.0, "candidates_p50_ms": 390.0, "ratio": 1.3}},
         [False, True, True, True]),
        ("serve", {"raw_vs_candidates": {"raw_p50_ms": 300.0, "candidates_p50_ms": 391.0}}, [None, None, None, False]),
        ("serve", {"raw_vs_candidates": {"raw_p50_ms": None, "candidates_p50_ms": None}}, [None, None, None, None]),
        ("queue", {"lost": 0, "duplicated": 0}, [True, True, None, None]),
        ("queue", {"lost": 1, "duplicated": 0, "jobs_failed": 0, "errors_file": ["poison"],
                   "poison_alone_in_errors": True}, [False, True, True, True]),
        ("queue", {"lost": 0, "duplicated": 0, "jobs_failed": 2, "errors_file": ["poison", "j3-i0"],
                   "poison_alone_in_errors": False}, [True, True, False, False]),
        ("quality", {"repair_prose": {"wer_before": 20.0, "wer_after": 10.0}},
         [None] * 8 + [True] + [None] * 4),
        ("sampler", {"speedup": 7.99, "fast": {"exact_match": 3.9}, "baseline": {"exact_match": 6.0},
                     "locality": {"ratio": 1.5}}, [False, False, None, None, None, True]),
        ("sampler", {"speedup": 8.0, "fast": {"exact_match": 4.0, "tokens_equal": 0.59, "tokens_per_pass": 3.0},
                     "baseline": {"exact_match": 6.0}, "long": {"generated_tokens": 1024, "fast": {"speedup": 19.9}}},
         [True, True, False, False, True, None]),
        ("onnx_refiner", {"lengths": {"128": {"torch_ms": 90.0, "torch_1_thread_ms": 75.0, "onnx_ms": 50.0},
                                      "512": {"torch_ms": 240.0, "onnx_ms": 200.0}}}, [True, True]),
        ("onnx_refiner", {"lengths": {"128": {"torch_ms": 74.0, "onnx_ms": 50.0}, "512": {"onnx_ms": 9.0}}},
         [False, None]),
    ],
)
def test_target_checks(name: str, figures: dict, expected: list[bool | None]) -> None:
    assert [v.met for v in evaluate(TARGETS[name], figures)] == expected


def test_target_check_with_missing_result() -> None:
    verdicts = evaluate(TARGETS["serve"], None)
    assert [(v.value, v.met) for v in verdicts] == [("not measured", None)] * 4


def _args(tmp_path: Path, *argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args([*argv, "--results", str(tmp_path / "results"), "--out", str(tmp_path / "REPORT.md")])


def _fake_launcher(name: str, extra: Sequence[str]) -> list[str]:
    """A benchmark process that prints some noise, then its JSON (which echoes its arguments);
    'broken' fails."""
    if name == "broken":
        return [sys.executable, "-c", "import sys; sys.exit(3)"]
    figures = {"value": 42, "args": list(extra)}
    code = f"import sys; print('warming up'); print({json.dumps(figures)!r}); print('progress', file=sys.stderr)"
    return [sys.executable, "-c", code]


def test_run_stores_results_with_provenance(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    registry = {"fake": "bench.queue", "sampler": "bench.sampler"}
    assert main(_args(tmp_path, "--run", "fake", "sampler"), registry, launcher=_fake_launcher) == 0
    fake = load_result(tmp_path / "results", "fake")
    assert fake is not None and fake.figures == {"value": 42, "args": []}
    assert fake.measured.command == "remask bench fake --json"
    assert len(fake.measured.commit) == 40 and fake.measured.machine.cores >= 1 and fake.measured.date[:2] == "20"
    # the report runs a known benchmark with its section's arguments (the sampler's calibration, never --write)
    sampler = load_result(tmp_path / "results", "sampler")
    assert sampler is not None and sampler.figures["args"] == ["--calibrate", "--repeats", "3"]
    assert sampler.measured.command == "remask bench sampler --json --calibrate --repeats 3"
    stored = json.loads((tmp_path / "results" / "fake.json").read_text())
    assert set(stored) == {"benchmark", "measured", "figures"}
    assert "| value | 42 |" in (tmp_path / "REPORT.md").read_text()
    assert fake.measured.load is not None and len(fake.measured.load) == 2  # read back as a tuple
    assert isinstance(fake.measured.dirty, bool)
    assert "1-minute load average" in (tmp_path / "REPORT.md").read_text()
    assert "progress" in capfd.readouterr().err  # the benchmark's stderr passes through


def test_failed_run_keeps_previous_result(tmp_path: Path) -> None:
    _store(tmp_path / "results", "broken", {"value": 1})
    registry = {"broken": "bench.queue", "fake": "bench.queue"}
    assert main(_args(tmp_path, "--run-all"), registry, launcher=_fake_launcher) == 1
    kept = load_result(tmp_path / "results", "broken")
    assert kept is not None and kept.figures == {"value": 1}
    assert load_result(tmp_path / "results", "fake") is not None  # the others still ran


def test_run_unknown_benchmark_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown benchmark"):
        main(_args(tmp_path, "--run", "nope"), {"fake": "bench.queue"}, launcher=_fake_launcher)


def test_cli_registers_report() -> None:
    from services.cli import build_parser

    args = build_parser().parse_args(["bench", "report", "--run", "sampler", "queue", "--out", "x.md"])
    assert args.run == ["sampler", "queue"] and args.out == Path("x.md") and callable(args.func)
