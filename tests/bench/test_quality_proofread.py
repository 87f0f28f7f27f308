"""bench quality's proofread part: the two held-out sets, their paragraphs, and the figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.quality_proofread import edit_outcome, held_out_texts, main, measure, paragraphs
from tests.bench.conftest import write_corpus

LICENCE = ("Permission is hereby granted, free of charge, to any person obtaining a copy of this software "
           "and associated documentation files, to deal in the software without restriction, including "
           "without limitation the rights to use, copy, modify, merge, publish and distribute it.")
README = ("Rich is a library for rich text and beautiful formatting in the terminal. The API makes it easy "
          "to add color and style to terminal output, and it can also render pretty tables, progress bars "
          "and markdown with syntax highlighted source code. See `rich.print` for more.")


@pytest.fixture(scope="module")
def prose_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("proofread-corpus") / "corpus"
    short = {"kind": "prose", "id": "doc/short", "source": "doc-copyright", "text": "Too short.\n\nAlso short."}
    licence = {"kind": "prose", "id": "lic/1", "source": "dist-info-license", "text": f"{LICENCE}\n\n{LICENCE}"}
    docstring = {"kind": "prose", "id": "py/1", "source": "stdlib-docstrings", "text": README}
    readme = {"kind": "prose", "id": "pkg-description/rich", "source": "package-description", "package": "rich",
              "text": f"# Rich\n\n{README}"}
    return write_corpus(root, {"train": [], "held_out": [short, licence, docstring],
                               "held_out_packages": [readme]})


def test_sets_draw_their_sources_from_the_held_out_splits(prose_corpus: Path) -> None:
    licences = held_out_texts(prose_corpus, ("held_out",), ("dist-info-license", "doc-copyright"))
    assert len(licences) == 2 and paragraphs(licences) == [LICENCE, LICENCE]  # short paragraphs dropped
    docs = held_out_texts(prose_corpus, ("held_out_packages", "held_out"), ("package-description",))
    assert paragraphs(docs) == [README]  # the docstring is neither kind


def test_measure_reports_word_error_rate_before_and_after_per_set(prose_corpus: Path, model_dirs: Path,
                                                                  tmp_path: Path) -> None:
    out = measure(model_dirs / "refiner", model_dirs / "drafter", prose_corpus, 2, seed=0)
    assert out["corruption_rate"] == 0.12
    assert out["licences"]["cases"] == 2 and out["documentation"]["cases"] == 1  # only one README paragraph
    for name in ("licences", "documentation"):
        fig = out[name]
        assert fig["wer_before"] > 0 and fig["wer_after"] >= 0 and fig["p50_latency_ms"] > 0
        assert fig["paragraphs_made_worse"] + fig["paragraphs_made_better"] <= fig["cases"]
        assert {k: sum(v.values()) for k, v in fig["edit_outcomes"].items()} == fig["edits"]
    again = measure(model_dirs / "refiner", model_dirs / "drafter", prose_corpus, 2, seed=0)["licences"]
    timing = ("mean_latency_ms", "p50_latency_ms")
    assert {k: v for k, v in again.items() if k not in timing} == {
        k: v for k, v in out["licences"].items() if k not in timing}  # the same cases, the same figures
    with pytest.raises(ValueError, match="proofread-cases"):
        measure(model_dirs / "refiner", model_dirs / "drafter", prose_corpus, 0, seed=0)
    dest = tmp_path / "result.json"
    main(["--refiner", str(model_dirs / "refiner"), "--drafter", str(model_dirs / "drafter"), "--corpus",
          str(prose_corpus), "--proofread-cases", "1", "--out", str(dest)])
    stored = json.loads(dest.read_text())
    assert stored["benchmark"] == "quality_proofread" and stored["figures"]["licences"]["cases"] == 1


def test_edit_outcome_says_whether_one_edit_alone_brings_the_text_nearer_its_reference() -> None:
    from workflows.edits import Edit

    reference, corrupted = "we keep it safe", "keep we it sfae"
    assert edit_outcome(reference, corrupted, Edit(11, 15, "sfae", "safe", "spelling", 1.0)) == "right"
    assert edit_outcome(reference, corrupted, Edit(8, 10, "it", "its", "spelling", 1.0)) == "wrong"
    assert edit_outcome(reference, corrupted, Edit(5, 10, "we it", "it we", "word_order", 1.0)) == "neutral"
