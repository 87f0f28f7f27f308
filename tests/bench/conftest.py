"""A small hand-written corpus with both held-out splits, and tiny saved models over a tiny
tokenizer, for the model and quality benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from refiner.model import RefinerModel, tokenizer_config
from tests.conftest import build_tiny_tokenizer
from training.corpus import FORMAT

torch.set_num_threads(1)  # two cores, shared: no thread pools fighting over them

CONTEXT = 48  # the tiny models' trained context: below the benchmark's default window of 512


def module(name: str, i: int) -> str:
    """A distinct Python module that parses: a class and a few functions."""
    return (
        f'"""{name} module {i}."""\n\nimport os\n\n\n'
        f"class {name.title()}{i}:\n"
        f"    def __init__(self, value: int = {i}) -> None:\n"
        f"        self.value = value\n"
        f"        self.name = '{name}-{i}'\n\n"
        f"    def total(self, items: list[int]) -> int:\n"
        f"        result = self.value\n"
        f"        for item in items:\n"
        f"            result += item\n"
        f"        return result\n\n\n"
        f"def path_{i}(root: str) -> str:\n"
        f"    return os.path.join(root, '{name}-{i}.txt')\n"
    )


def prose(i: int) -> str:
    return (f"Document {i}. Permission is hereby granted, free of charge, to any person "
            "obtaining a copy of this software. The licensee shall not disclose it.\n") * 3


def write_corpus(root: Path, splits: dict[str, list[dict[str, str]]]) -> Path:
    """A corpus directory in the builder's format: a manifest and one JSON-lines file per split."""
    root.mkdir(parents=True)
    manifest = {"format": FORMAT, "corpus_sha256": f"test-{root.parent.name}", "documents": []}
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    for split, docs in splits.items():
        with open(root / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for d in docs:
                row = {"source": "package-code" if d.get("package") else "stdlib", "group": "",
                       "package": "", **d}
                fh.write(json.dumps(row) + "\n")
    return root


def package_docs(packages: dict[str, int]) -> list[dict[str, str]]:
    """``{name: files}`` -> code documents of whole packages, ids as the corpus builder writes."""
    return [{"kind": "code", "id": f"pkg/{name}/{name}/m{i}.py", "text": module(name, i),
             "package": name}
            for name, files in packages.items() for i in range(files)]


def stdlib_docs(files: int = 6) -> list[dict[str, str]]:
    return ([{"kind": "code", "id": f"stdlib/lib{i}.py", "text": module("lib", i)} for i in range(files)]
            + [{"kind": "prose", "id": f"doc/{i}", "text": prose(i), "source": "doc"} for i in range(3)])


@pytest.fixture(scope="session")
def bench_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """held_out (stdlib code and prose, one file of a trained-on package) and
    held_out_packages (code of three whole packages)."""
    root = tmp_path_factory.mktemp("bench-corpus") / "corpus"
    # a held-out file of a package trained on: the benchmarks leave it out of held_out
    trained_pkg = {"kind": "code", "id": "pkg/numpy/numpy/x.py", "package": "numpy",
                   "text": "import numpy\n\n\ndef numpy_only():\n    return numpy.zeros(3)\n" * 40}
    return write_corpus(root, {"train": [], "held_out": [*stdlib_docs(), trained_pkg],
                               "held_out_packages": package_docs({"alpha": 5, "beta": 3, "gamma": 8})})


@pytest.fixture(scope="session")
def old_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus without the held_out_packages split (as built before issue 12)."""
    root = tmp_path_factory.mktemp("bench-old-corpus") / "corpus"
    return write_corpus(root, {"train": [], "held_out": stdlib_docs()})


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``drafter`` and ``refiner`` directories trained (by nobody) on a 48-token context,
    with a ``training.json`` that says a CPU trained them."""
    root = tmp_path_factory.mktemp("bench-models")
    tok = build_tiny_tokenizer()
    torch.manual_seed(0)
    refiner = RefinerModel(tokenizer_config("tiny", tok, max_position_embeddings=CONTEXT))
    drafter = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=CONTEXT,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    info = {"hardware": {"device": "cpu"}, "loop": {"seq_len": CONTEXT}}
    for name, model in (("refiner", refiner), ("drafter", drafter)):
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        (root / name / "training.json").write_text(json.dumps(info), encoding="utf-8")
    return root
