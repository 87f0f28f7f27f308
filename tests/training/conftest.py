"""Fixtures for the training tests: fake source trees and a corpus built from one."""

from __future__ import annotations

from pathlib import Path

import pytest
from training_fakes import make_fake_roots

from training.corpus import build_corpus
from training.sources import SourceRoots


@pytest.fixture
def fake_roots(tmp_path: Path) -> SourceRoots:
    """A fresh fake tree for one test."""
    return make_fake_roots(tmp_path / "roots")


@pytest.fixture(scope="module")
def fake_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus built once per module from the fake tree, with a quarter held out."""
    base = tmp_path_factory.mktemp("corpus")
    roots = make_fake_roots(base / "roots")
    out = base / "corpus"
    build_corpus(out, roots, held_out_fraction=0.25)
    return out
