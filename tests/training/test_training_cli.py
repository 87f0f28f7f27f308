"""``remask corpus build`` and ``remask train tokenizer`` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from training_fakes import make_fake_roots

from services import cli
from training.tokenizer import MIN_VOCAB_SIZE

OUR_COMMANDS = ("services.commands.corpus", "services.commands.train")


@pytest.fixture(autouse=True)
def only_our_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parse with this feature's commands only, so other features' imports cannot interfere."""
    assert set(OUR_COMMANDS) <= set(cli.COMMAND_MODULES)
    monkeypatch.setattr(cli, "COMMAND_MODULES", OUR_COMMANDS)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def root_args(base: Path) -> list[str]:
    roots = make_fake_roots(base)
    return ["--stdlib", str(roots.stdlib), "--common-licenses", str(roots.common_licenses),
            "--doc", str(roots.doc), "--site-packages", str(roots.site_packages[0])]


def test_build_then_train(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus, published, tok = tmp_path / "corpus", tmp_path / "published", tmp_path / "tok"
    code, out, err = run(["corpus", "build", "--out", str(corpus), "--held-out-fraction", "0.25",
                          "--publish", str(published), *root_args(tmp_path / "roots")], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["train_code_documents"] > 0 and summary["prose_mb"] > 0
    assert (published / "held_out.txt").read_text() == (corpus / "held_out.txt").read_text()

    code, out, err = run(["train", "tokenizer", "--corpus", str(corpus), "--out", str(tok),
                          "--vocab-size", "300", "--seed", "3"], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert info["vocab_size"] == 300 and info["config"]["seed"] == 3
    assert info["command"] == (
        f"remask train tokenizer --corpus {corpus} --out {tok} --vocab-size 300 --seed 3"
    )
    assert info["command"] in (tok / "README.md").read_text()
    assert (tok / "tokenizer.json").is_file()


def test_missing_corpus_names_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no" / "corpus"
    code, _, err = run(["train", "tokenizer", "--corpus", str(missing), "--out",
                        str(tmp_path / "t")], capsys)
    assert code == 2
    assert err.startswith("remask: error:") and str(missing) in err


def test_too_small_vocab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["train", "tokenizer", "--corpus", str(tmp_path), "--out",
                        str(tmp_path / "t"), "--vocab-size", "64"], capsys)
    assert code == 2
    assert "vocab size 64 is too small" in err and str(MIN_VOCAB_SIZE) in err


def test_empty_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["--stdlib", str(empty), "--common-licenses", str(empty), "--doc", str(empty),
            "--site-packages", str(empty)]
    code, _, err = run(["corpus", "build", "--out", str(tmp_path / "c"), *args], capsys)
    assert code == 2 and "no documents found" in err
    assert not (tmp_path / "c" / "manifest.json").exists()


def test_missing_source_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nostdlib"
    code, _, err = run(["corpus", "build", "--out", str(tmp_path / "c"), "--stdlib",
                        str(missing)], capsys)
    assert code == 2 and f"--stdlib folder not found: {missing}" in err


def test_empty_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    assert run(["corpus", "build", "--out", str(corpus), *root_args(tmp_path / "r")], capsys)[0] == 0
    (corpus / "train.jsonl").write_text("")
    code, _, err = run(["train", "tokenizer", "--corpus", str(corpus), "--out",
                        str(tmp_path / "t"), "--vocab-size", "300"], capsys)
    assert code == 2 and "no train documents" in err and str(corpus) in err
