"""A repetitive toy corpus and a tiny tokenizer for the trainer tests, built once per session.

Import the fixtures into a test module (``from train_fakes import toy_corpus, toy_tokenizer``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from training.corpus import build_corpus
from training.sources import SourceRoots
from training.tokenizer import TokenizerTrainConfig, train_tokenizer

VOCAB_SIZE = 300  # the 7 specials, 256 bytes and a few merges

NAMES = ("alpha", "beta", "gamma", "delta")


def toy_module(i: int) -> str:
    """A short, very regular module: the same few lines with small variations."""
    lines = [f'"""Toy module {i}."""\n']
    for k in range(12):
        name = NAMES[(i + k) % len(NAMES)]
        lines.append(
            f"def {name}_{k}(value):\n"
            f"    return value + {k % 3}\n\n"
        )
    return "\n".join(lines)


def toy_license(i: int) -> str:
    return ("Permission is granted to copy and use this software.\n" * (3 + i % 3)
            + f"Copyright {2000 + i} Toy Authors\n")


def make_toy_roots(base: Path, modules: int = 20, licenses: int = 8) -> SourceRoots:
    stdlib, common = base / "stdlib", base / "common"
    stdlib.mkdir(parents=True, exist_ok=True)
    common.mkdir(parents=True, exist_ok=True)
    for i in range(modules):
        (stdlib / f"toy{i:02d}.py").write_text(toy_module(i), encoding="utf-8")
    for i in range(licenses):
        (common / f"LIC-{i}").write_text(toy_license(i), encoding="utf-8")
    return SourceRoots(stdlib=stdlib, common_licenses=common)


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built corpus with both splits non-empty."""
    base = tmp_path_factory.mktemp("toy")
    out = base / "corpus"
    manifest = build_corpus(out, make_toy_roots(base / "roots"), held_out_fraction=0.3)
    splits = {d["split"] for d in manifest["documents"]}
    assert splits == {"train", "held_out"}, splits
    return out


@pytest.fixture(scope="session")
def toy_tokenizer(toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("toytok") / "tokenizer"
    train_tokenizer(toy_corpus, out, TokenizerTrainConfig(vocab_size=VOCAB_SIZE))
    return out


def renamed_tokenizer(tokenizer_dir: Path, dest: Path) -> Path:
    """A copy of ``tokenizer_dir`` with one special token renamed: another tokenizer."""
    import json
    import shutil

    shutil.copytree(tokenizer_dir, dest)
    data = json.loads((dest / "tokenizer.json").read_text())
    data["added_tokens"][0]["content"] = "<|renamed|>"
    (dest / "tokenizer.json").write_text(json.dumps(data))
    return dest
