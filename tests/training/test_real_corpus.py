"""The real machine: the corpus built from its files, and the committed tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends.tokens import SPECIAL_TOKENS, special_ids
from training.corpus import (
    HELD_OUT,
    HELD_OUT_PACKAGES,
    TRAIN,
    build_corpus,
    iter_documents,
    split_of,
    summarize,
)
from training.packages import HELD_OUT_PACKAGES as HELD_OUT_PACKAGE_NAMES
from training.sources import CODE, PROSE
from training.tokenizer import load_tokenizer

REPO = Path(__file__).resolve().parents[2]
SHIPPED_TOKENIZER = REPO / "models" / "tokenizer"
SHIPPED_CORPUS = REPO / "models" / "corpus"


def split_key(doc_id: str) -> str:
    """Docstring documents split with their module's code (see training.sources.Document)."""
    if doc_id.startswith("docstrings/"):
        return "stdlib/" + doc_id.removeprefix("docstrings/")
    return doc_id


@pytest.mark.slow
def test_real_corpus_builds_with_code_and_prose(tmp_path: Path) -> None:
    """20 to 70 s on two shared cores: the standard library and every installed
    distribution are read, and the standard library parsed, once."""
    manifest = build_corpus(tmp_path / "corpus")
    summary = summarize(manifest)
    assert summary["code_mb"] > 5 and summary["prose_mb"] > 2
    assert {"stdlib-code", "stdlib-docstrings", "pydoc-topics"} <= set(manifest["sources"])
    ids = [d["id"] for d in manifest["documents"]]
    assert "stdlib/json/decoder.py" in ids and "pydoc-topics/assert" in ids
    stdlib = [i for i in ids if i.startswith(("stdlib/", "docstrings/"))]
    assert not [i for i in stdlib if "/test/" in i or "/tests/" in i or "idle_test" in i]
    assert not [i for i in stdlib if "site-packages" in i or "_sysconfigdata" in i]
    held = [d for d in manifest["documents"] if d["split"] == HELD_OUT]
    assert 0.02 < len(held) / len(ids) < 0.08
    assert {d["kind"] for d in held} == {CODE, PROSE}
    first = next(iter_documents(tmp_path / "corpus", TRAIN, CODE))
    assert first.id.startswith(("stdlib/", "pkg/")) and first.text
    # remask's own dependencies are installed beside it: their code is read, minus remask
    assert "package-code" in manifest["sources"]
    read = {p["package"] for p in manifest["packages"]}
    assert {"numpy", "pydantic"} <= read and "remask" not in read
    assert manifest["totals"][HELD_OUT_PACKAGES][CODE]["documents"] > 0


@pytest.mark.skipif(not (SHIPPED_TOKENIZER / "tokenizer.json").exists(), reason="not trained")
def test_shipped_tokenizer_loads_and_round_trips() -> None:
    tok = load_tokenizer(SHIPPED_TOKENIZER)
    vocab = tok.get_vocab()
    assert len(vocab) == 8192
    assert [vocab[t] for t in SPECIAL_TOKENS] == list(range(7))
    ids = special_ids(tok)
    assert (ids.pad, ids.eos, ids.mask, ids.filler) == (0, 1, 2, 3)
    text = 'def f(x):\n\t"""Ünïcode 日本 🤖."""\r\n    return x  \n'
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    # compression the README reports: a common identifier is a single token
    assert len(tok.encode(" return", add_special_tokens=False)) == 1


@pytest.mark.skipif(not (SHIPPED_CORPUS / "manifest.json").exists(), reason="not published")
def test_shipped_corpus_copy_matches_tokenizer_and_rule() -> None:
    manifest = json.loads((SHIPPED_CORPUS / "manifest.json").read_text())
    held = (SHIPPED_CORPUS / "held_out.txt").read_text().splitlines()
    assert held == [d["id"] for d in manifest["documents"]]
    for doc in manifest["documents"]:
        if doc["split"] == HELD_OUT_PACKAGES:
            assert doc["package"] in HELD_OUT_PACKAGE_NAMES
        else:
            assert split_of(split_key(doc["id"])) == HELD_OUT
    assert manifest["totals"][HELD_OUT_PACKAGES][CODE]["documents"] > 100
    # the tokenizer was trained on an earlier corpus (the standard library and prose) with
    # the same split rule: the file-level held-out documents were held out from it too, and
    # the held-out packages were not in that corpus at all
    info = json.loads((SHIPPED_TOKENIZER / "remask.json").read_text())
    assert "package-code" not in info["corpus"]["sources"]
    assert manifest["split_rule"]["salt"] == "remask-corpus-split/v1"  # the rule it used
