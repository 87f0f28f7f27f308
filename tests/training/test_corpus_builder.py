"""The corpus builder on a fake tree: what it reads, dedup, split, determinism, loader."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from training_fakes import ALPHA, PSF, make_fake_roots

from training.corpus import (
    HELD_OUT,
    HELD_OUT_PACKAGES,
    SPLITS,
    TRAIN,
    build_corpus,
    deduplicate,
    iter_documents,
    load_manifest,
    publish_manifest,
    split_of,
    summarize,
    text_sha256,
)
from training.sources import (
    CODE,
    PROSE,
    Document,
    SourceRoots,
    collect_all,
    extract_docstrings,
)


def all_ids(corpus: Path) -> dict[str, list[str]]:
    return {split: [d.id for d in iter_documents(corpus, split)] for split in SPLITS}


def test_reads_the_right_files_and_skips_the_rest(fake_roots: SourceRoots) -> None:
    docs, dropped = deduplicate(collect_all(fake_roots))
    ids = {d.id for d in docs}
    assert {"stdlib/alpha.py", "stdlib/latin.py", "stdlib/broken.py", "stdlib/gen/mod00.py"} <= ids
    assert {"docstrings/alpha.py", "pydoc-topics/assert", "pydoc-topics/if"} <= ids
    assert {"stdlib-license/LICENSE.txt", "common-licenses/Apache-2.0", "doc-copyright/pkga",
            "doc-copyright/pkgc", "dist-info/bar_baz/licenses/COPYING.txt"} <= ids
    skipped = ("test/", "tests/", "idle_test/", "site-packages", "_sysconfigdata", "big.py",
               "stdlib/pkg/__init__.py", "pydoc_data/topics.py", "docstrings/broken.py", "METADATA")
    assert not [i for i in ids if any(s in i for s in skipped)]
    assert not any(i.startswith("dist-info-license") for i in ids)
    kinds = {d.id: d.kind for d in docs}
    assert kinds["stdlib/alpha.py"] == CODE and kinds["docstrings/alpha.py"] == PROSE
    # copy_of_alpha.py and its docstrings, GPL (= GPL-3), pkgb (= pkga), foo LICENSE (= PSF)
    assert dropped == 5


def test_dedup_keeps_steadiest_source_then_smallest_id(fake_roots: SourceRoots) -> None:
    docs, _ = deduplicate(collect_all(fake_roots))
    by_text: dict[str, list[str]] = {}
    for d in docs:
        by_text.setdefault(d.text, []).append(d.id)
    assert all(len(v) == 1 for v in by_text.values())
    assert by_text[ALPHA] == ["stdlib/alpha.py"]
    assert by_text[PSF] == ["stdlib-license/LICENSE.txt"]  # not dist-info/foo/LICENSE
    assert "common-licenses/GPL" in {d.id for d in docs}  # "GPL" < "GPL-3"
    assert "common-licenses/GPL-3" not in {d.id for d in docs}


def test_dedup_ignores_input_order(fake_roots: SourceRoots) -> None:
    docs = list(collect_all(fake_roots))
    shuffled = docs[:]
    random.Random(7).shuffle(shuffled)
    assert deduplicate(docs) == deduplicate(shuffled)


def test_decoding_and_docstrings() -> None:
    assert extract_docstrings(ALPHA) == (
        "Alpha: helpers for counting words.\n\nReturn how many words ``text`` holds.\n"
    )
    assert extract_docstrings("def broken(:\n") == ""
    assert extract_docstrings("x = 1\n") == ""


def test_latin1_files_are_decoded(fake_corpus: Path) -> None:
    texts = {d.id: d.text for split in SPLITS for d in iter_documents(fake_corpus, split)}
    assert "NAME = 'café'" in texts["stdlib/latin.py"]
    assert texts["doc-copyright/pkgc"] == "Copyright 1999 René Müller\n"


def test_same_sources_give_identical_outputs(fake_roots: SourceRoots, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    build_corpus(a, fake_roots, held_out_fraction=0.25)
    build_corpus(b, fake_roots, held_out_fraction=0.25)
    for name in ("manifest.json", "train.jsonl", "held_out.jsonl", "held_out.txt"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_tree_location_does_not_change_the_corpus(tmp_path: Path) -> None:
    m1 = build_corpus(tmp_path / "c1", make_fake_roots(tmp_path / "here"), 0.25)
    m2 = build_corpus(tmp_path / "c2", make_fake_roots(tmp_path / "elsewhere" / "deep"), 0.25)
    assert m1 == m2


def test_split_depends_on_the_key_alone(fake_roots: SourceRoots, tmp_path: Path) -> None:
    assert split_of("stdlib/json/decoder.py") == split_of("stdlib/json/decoder.py")
    assert split_of("anything", 0.0) == TRAIN
    fractions = [split_of(f"doc-{i}", 0.05) == HELD_OUT for i in range(4000)]
    assert 0.03 < sum(fractions) / len(fractions) < 0.07
    before = all_ids(build_and_return(tmp_path / "before", fake_roots))
    # a new package on the machine moves no existing document across the split
    assert fake_roots.doc is not None
    (fake_roots.doc / "newpkg").mkdir()
    (fake_roots.doc / "newpkg" / "copyright").write_text("A brand new license text.\n")
    after = all_ids(build_and_return(tmp_path / "after", fake_roots))
    for split in (TRAIN, HELD_OUT):
        assert set(before[split]) <= set(after[split])


def build_and_return(out: Path, roots: SourceRoots) -> Path:
    build_corpus(out, roots, held_out_fraction=0.25)
    return out


def test_held_out_is_disjoint_and_recorded(fake_corpus: Path) -> None:
    ids = all_ids(fake_corpus)
    assert ids[TRAIN] and ids[HELD_OUT]
    assert not set(ids[TRAIN]) & set(ids[HELD_OUT])
    assert ids[TRAIN] == sorted(ids[TRAIN])
    assert not set(ids[TRAIN]) & set(ids[HELD_OUT_PACKAGES])
    assert not set(ids[HELD_OUT]) & set(ids[HELD_OUT_PACKAGES])
    listed = (fake_corpus / "held_out.txt").read_text().splitlines()
    assert listed == sorted(ids[HELD_OUT] + ids[HELD_OUT_PACKAGES])
    manifest = load_manifest(fake_corpus)
    assert [d["id"] for d in manifest["documents"] if d["split"] != TRAIN] == listed
    assert len(manifest["documents"]) == sum(len(v) for v in ids.values())


def test_docstrings_follow_their_module_across_the_split(fake_corpus: Path) -> None:
    side = {d.id: split for split in SPLITS for d in iter_documents(fake_corpus, split)}
    pairs = [(i, "stdlib/" + i.removeprefix("docstrings/")) for i in side if i.startswith("docs")]
    assert len(pairs) >= 20
    assert all(side[doc] == side[code] for doc, code in pairs)


def test_manifest_figures_match_the_text(fake_corpus: Path) -> None:
    manifest = load_manifest(fake_corpus)
    texts = {d.id: d.text for split in SPLITS for d in iter_documents(fake_corpus, split)}
    for entry in manifest["documents"]:
        assert entry["sha256"] == text_sha256(texts[entry["id"]])
        assert entry["bytes"] == len(texts[entry["id"]].encode())
    code_bytes = sum(len(t.encode()) for i, t in texts.items() if i.startswith(("stdlib/", "pkg/")))
    totals = manifest["totals"]
    assert sum(totals[split][CODE]["bytes"] for split in SPLITS) == code_bytes
    assert manifest["split_rule"]["held_out_buckets"] == 2500
    assert manifest["duplicates_dropped"] == 5
    summary = summarize(manifest)
    assert summary["code_mb"] == round(code_bytes / 1e6, 3)
    assert set(summary["sources"]) == set(manifest["sources"])


def test_manifest_names_no_root_paths(fake_corpus: Path) -> None:
    text = (fake_corpus / "manifest.json").read_text()
    assert str(fake_corpus.parent) not in text


def test_loader_filters_and_checks(fake_corpus: Path, tmp_path: Path) -> None:
    code = list(iter_documents(fake_corpus, TRAIN, CODE))
    prose = list(iter_documents(fake_corpus, TRAIN, PROSE))
    assert code and prose
    assert all(isinstance(d, Document) and d.kind == CODE for d in code)
    assert all(d.kind == PROSE for d in prose)
    assert len(code) + len(prose) == len(list(iter_documents(fake_corpus, TRAIN)))
    with pytest.raises(ValueError, match="split"):
        list(iter_documents(fake_corpus, "validation"))
    with pytest.raises(ValueError, match="kind"):
        list(iter_documents(fake_corpus, TRAIN, "poetry"))
    missing = tmp_path / "no-such-corpus"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        list(iter_documents(missing, TRAIN))
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        load_manifest(tmp_path)


def test_empty_sources_are_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    roots = SourceRoots(stdlib=empty, common_licenses=empty, doc=empty, site_packages=(empty,))
    with pytest.raises(ValueError, match="no documents"):
        build_corpus(tmp_path / "out", roots)
    with pytest.raises(ValueError, match="held_out_fraction"):
        build_corpus(tmp_path / "out", roots, held_out_fraction=1.0)


def test_publish_keeps_only_held_out_entries(fake_corpus: Path, tmp_path: Path) -> None:
    small = publish_manifest(fake_corpus, tmp_path / "published")
    full = load_manifest(fake_corpus)
    assert small["corpus_sha256"] == full["corpus_sha256"]
    assert {d["split"] for d in small["documents"]} == {HELD_OUT, HELD_OUT_PACKAGES}
    assert (tmp_path / "published" / "held_out.txt").read_text() == (
        fake_corpus / "held_out.txt"
    ).read_text()
    assert json.loads((tmp_path / "published" / "manifest.json").read_text()) == small
