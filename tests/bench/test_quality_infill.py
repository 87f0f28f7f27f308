"""bench quality's infill: the loop (with a stub infill: the modes take turns on every case
and each mode's figures count only its own answers), how holes are drawn (split, spread over
packages and files, seeded) and the run's options."""

from __future__ import annotations

import argparse
import ast
import random
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import workflows.infill
from bench import quality
from bench.quality import InfillCase, normalise, run_infill, spread_infill_cases
from training.corpus import Document

from .conftest import module


def docs(packages: dict[str, int]) -> list[Document]:
    return [Document("code", f"pkg/{p}/m{i}.py", module(p, i), "package-code", "", p)
            for p, files in packages.items() for i in range(files)]


def test_modes_take_turns_and_are_scored_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    answers = {"ar": "x = 1", "diffusion": "x = (", "hybrid": "y  =  2   "}

    def fake_infill(prefix: str, suffix: str, params: Any, refiner: Any, drafter: Any) -> Any:
        calls.append((params.mode, prefix))
        return SimpleNamespace(text=answers[params.mode])

    monkeypatch.setattr(workflows.infill, "infill", fake_infill)
    cases = {"single_line": [InfillCase("a\n", "x = 1", "\n"), InfillCase("b\n", "y = 2", "\n")],
             "multi_line": [InfillCase("c\n", "x = 1", "\n")]}
    out = run_infill(cases, refiner=None, drafter=None, seed=0)
    modes = ["ar", "diffusion", "hybrid"]
    # one warm-up per mode, then every case in all three modes before the next case
    assert [m for m, _ in calls[:3]] == modes
    assert calls[3:] == [(m, p) for p in ("a\n", "b\n", "c\n") for m in modes]
    assert out["ar"]["single_line"]["exact_match"] == 50.0
    # "y  =  2   " is "y = 2" once blank runs and trailing spaces are normalised
    assert out["hybrid"]["single_line"]["exact_match"] == 0.0
    assert out["hybrid"]["single_line"]["exact_match_normalised"] == 50.0
    diff = out["diffusion"]["single_line"]
    assert {k: diff[k] for k in ("cases", "exact_match", "exact_match_normalised", "parses")} == {
        "cases": 2, "exact_match": 0.0, "exact_match_normalised": 0.0, "parses": 0.0}
    assert 0 <= diff["p50_latency_ms"] and 0 <= diff["mean_latency_ms"]
    assert out["ar"]["multi_line"]["exact_match"] == 100.0 and out["ar"]["multi_line"]["parses"] == 100.0
    assert out["ar"]["multi_line"]["cases"] == 1


def test_only_the_modes_asked_for_run(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def fake_infill(prefix: str, suffix: str, params: Any, refiner: Any, drafter: Any) -> Any:
        seen.append(params.mode)
        return SimpleNamespace(text="x")

    monkeypatch.setattr(workflows.infill, "infill", fake_infill)
    out = run_infill({"single_line": [InfillCase("a\n", "x", "\n")], "multi_line": []},
                     None, None, 0, modes=("ar", "hybrid"))
    assert set(seen) == {"ar", "hybrid"} and sorted(out) == ["ar", "hybrid"]
    assert list(out["ar"]) == ["single_line"]  # no multi-line cases: no figures, no division by 0


def test_normalise_strips_trailing_and_repeated_blanks_but_keeps_indentation() -> None:
    assert normalise("x  =  1   \n\n    return  x \n") == "x = 1\n    return x"
    assert normalise("    return x") != normalise("return x")  # indentation is Python's syntax


def test_holes_spread_over_packages_and_files() -> None:
    pool = docs({"big": 40, "mid": 10, "small": 2})
    cases = spread_infill_cases(pool, 30, (1, 1), random.Random("0:single_line"), per_file=2)
    assert len(cases) == 30
    per_package = Counter(c.package for c in cases)
    assert per_package == {"big": 13, "mid": 13, "small": 4}  # small runs out: 2 files x 2
    per_file = Counter(c.doc_id for c in cases)
    assert max(per_file.values()) <= 2 and len(per_file) >= 24
    texts = {d.id: d.text for d in pool}
    for c in cases:
        # the hole is the file's own text, and the file parses with it put back
        assert c.prefix + c.middle + c.suffix in texts[c.doc_id]
        assert "\n" not in c.middle and c.middle.strip()
        ast.parse(texts[c.doc_id])


def test_holes_in_one_file_never_overlap() -> None:
    pool = docs({"one": 1})
    cases = spread_infill_cases(pool, 4, (2, 4), random.Random(1), per_file=4)
    text = pool[0].text
    spans = []
    for c in cases:
        start = text.index(c.prefix + c.middle + c.suffix[:1]) + len(c.prefix)
        first = text.count("\n", 0, start)
        spans.append(set(range(first, first + c.middle.count("\n") + 1)))
    assert all(not (a & b) for i, a in enumerate(spans) for b in spans[i + 1:])


def test_holes_are_drawn_by_seed() -> None:
    pool = docs({"a": 6, "b": 6})
    draw = [spread_infill_cases(pool, 10, (2, 4), random.Random(s)) for s in ("0:x", "0:x", "1:x")]
    assert draw[0] == draw[1] and draw[0] != draw[2]
    assert spread_infill_cases(list(reversed(pool)), 10, (2, 4), random.Random("0:x")) == draw[0]


def test_too_few_files_give_fewer_holes_and_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    broken = Document("code", "pkg/x/bad.py", "def broken(:\n    pass\n", "package-code", "", "x")
    cases = spread_infill_cases([*docs({"x": 2}), broken], 50, (1, 1), random.Random(0), per_file=3)
    assert len(cases) == 6 and "bad.py" not in {c.doc_id for c in cases}
    assert "only 6 holes" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--infill-per-file"):
        spread_infill_cases(docs({"x": 2}), 5, (1, 1), random.Random(0), per_file=0)


def test_the_infill_split_and_its_fallback(bench_corpus: Path, old_corpus: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    split, found = quality.infill_documents(bench_corpus, "held_out_packages")
    assert split == "held_out_packages" and {d.package for d in found} == {"alpha", "beta", "gamma"}
    split, found = quality.infill_documents(bench_corpus, "held_out")
    assert split == "held_out" and all(d.id.startswith("stdlib/") for d in found)
    assert capsys.readouterr().err == ""
    split, found = quality.infill_documents(old_corpus, "held_out_packages")
    assert split == "held_out" and found and all(d.kind == "code" for d in found)
    assert "no code in the held_out_packages split" in capsys.readouterr().err


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    quality.add_arguments(p)
    return p.parse_args(list(argv))


def test_hole_counts_default_to_200_and_100_and_infill_cases_sets_both() -> None:
    assert quality._hole_counts(parse()) == {"single_line": 200, "multi_line": 100}
    assert quality._hole_counts(parse("--infill-single", "5", "--infill-multi", "0")) == {
        "single_line": 5, "multi_line": 0}
    assert quality._hole_counts(parse("--infill-cases", "7")) == {"single_line": 7, "multi_line": 7}
    with pytest.raises(ValueError, match="--infill-multi"):
        quality._hole_counts(parse("--infill-multi", "-1"))
    assert parse().infill_split == "held_out_packages" and parse().modes == ["ar", "diffusion", "hybrid"]


def test_run_reports_the_split_the_draw_and_who_trained_the_models(
    bench_corpus: Path, model_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workflows.infill, "infill",
                        lambda prefix, suffix, params, refiner, drafter: SimpleNamespace(text="pass"))
    args = parse("--corpus", str(bench_corpus), "--refiner", str(model_dirs / "refiner"),
                 "--drafter", str(model_dirs / "drafter"), "--only", "infill",
                 "--infill-single", "12", "--infill-multi", "6", "--modes", "ar")
    out = quality.run(args)
    assert out["infill_split"] == "held_out_packages"
    assert out["trained_on"] == {"drafter": "cpu", "refiner": "cpu"}
    single = out["infill_draw"]["single_line"]
    assert single["cases"] == 12 and single["packages"] == {"alpha": 4, "beta": 4, "gamma": 4}
    assert single["most_from_one_file"] <= 2
    assert out["infill_draw"]["multi_line"]["cases"] == 6
    assert list(out["infill"]) == ["ar"] and out["infill"]["ar"]["single_line"]["cases"] == 12
