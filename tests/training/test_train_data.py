"""Packed training data: the cached token stream, seeded resumable batches, held-out batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from train_fakes import toy_corpus, toy_tokenizer  # noqa: F401  (fixtures)

from backends.tokens import EOS
from training import data
from training.corpus import TRAIN, iter_documents
from training.data import (
    PackedBatches,
    cache_path,
    held_out_batches,
    load_training_data,
    step_generator,
    token_stream,
)
from training.tokenizer import load_tokenizer


def test_stream_is_documents_joined_by_eos_and_cached(
    toy_corpus: Path, toy_tokenizer: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    tok = load_tokenizer(toy_tokenizer)
    eos = tok.convert_tokens_to_ids(EOS)
    stream = token_stream(toy_corpus, toy_tokenizer, TRAIN)
    expected: list[int] = []
    for doc in iter_documents(toy_corpus, TRAIN):
        expected += tok(doc.text, add_special_tokens=False)["input_ids"] + [eos]
    assert stream.dtype == np.uint16
    assert stream.tolist() == expected
    path = cache_path(toy_corpus, toy_tokenizer, TRAIN)
    assert path.is_file() and path.parent == toy_corpus / "cache"

    # a second call reads the cache: tokenising again would fail here
    def no_tokenising(*_: object, **__: object) -> np.ndarray:
        raise AssertionError("re-tokenised although the cache exists")

    monkeypatch.setattr(data, "tokenize_documents", no_tokenising)
    again = token_stream(toy_corpus, toy_tokenizer, TRAIN)
    assert isinstance(again, np.memmap) and np.array_equal(again, stream)


def test_cache_key_follows_the_tokenizer(
    toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path  # noqa: F811
) -> None:
    other = tmp_path / "other_tok"
    other.mkdir()
    text = (toy_tokenizer / "tokenizer.json").read_text(encoding="utf-8")
    (other / "tokenizer.json").write_text(text + " ", encoding="utf-8")
    assert cache_path(toy_corpus, toy_tokenizer, TRAIN) != cache_path(toy_corpus, other, TRAIN)


def test_missing_directories_are_named(toy_corpus: Path, tmp_path: Path) -> None:  # noqa: F811
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"corpus directory not found: {missing}"):
        load_training_data(missing, toy_corpus, 16, 2, 0, 1)
    with pytest.raises(FileNotFoundError, match=f"tokenizer directory not found: {missing}"):
        load_training_data(toy_corpus, missing, 16, 2, 0, 1)


def stream_of(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.uint16)


def test_batches_are_seeded_windows_of_the_stream() -> None:
    a = PackedBatches(stream_of(1000), seq_len=10, batch_size=4, seed=1)
    b = PackedBatches(stream_of(1000), seq_len=10, batch_size=4, seed=1)
    c = PackedBatches(stream_of(1000), seq_len=10, batch_size=4, seed=2)
    first = [next(a) for _ in range(30)]
    assert all(x.shape == (4, 10) and x.dtype == torch.int64 for x in first)
    # each row is a contiguous window of the stream
    assert all(bool((row[1:] - row[:-1] == 1).all()) for x in first for row in x)
    assert all(torch.equal(x, next(b)) for x in first)
    assert not all(torch.equal(x, next(c)) for x in first)
    # one epoch visits every window once (100 windows / 4 = 25 batches)
    starts = torch.cat(first[:25])[:, 0]
    assert len(set(starts.tolist())) == 100 and len(set((starts % 10).tolist())) == 1


def test_batch_position_resumes_exactly() -> None:
    a = PackedBatches(stream_of(500), seq_len=8, batch_size=3, seed=7)
    for _ in range(25):  # past the first epoch (20 batches)
        next(a)
    state = a.state_dict()
    b = PackedBatches(stream_of(500), seq_len=8, batch_size=3, seed=7)
    b.load_state_dict(state)
    assert all(torch.equal(next(a), next(b)) for _ in range(10))
    with pytest.raises(ValueError, match="seq_len is 8 but this run's is 16"):
        PackedBatches(stream_of(500), seq_len=16, batch_size=3, seed=7).load_state_dict(state)


def test_small_streams() -> None:
    tiny = PackedBatches(stream_of(20), seq_len=8, batch_size=4)  # 2 windows, batch of 4
    assert next(tiny).shape == (4, 8)
    with pytest.raises(ValueError, match="fewer than one sequence of 32"):
        PackedBatches(stream_of(20), seq_len=32, batch_size=1)


def test_held_out_batches_are_fixed_and_spread() -> None:
    batches = held_out_batches(stream_of(1000), seq_len=10, batch_size=4, n_batches=3)
    assert len(batches) == 3 and all(b.shape == (4, 10) for b in batches)
    starts = torch.cat(batches)[:, 0]
    assert starts[0] == 0 and starts[-1] == 990  # first and last windows of the stream
    again = held_out_batches(stream_of(1000), seq_len=10, batch_size=4, n_batches=3)
    assert all(torch.equal(x, y) for x, y in zip(batches, again, strict=True))


def test_step_generator_is_a_function_of_seed_and_step() -> None:
    def draw(seed: int, step: int) -> torch.Tensor:
        return torch.rand(4, generator=step_generator(seed, step))

    assert torch.equal(draw(0, 5), draw(0, 5))
    assert not torch.equal(draw(0, 5), draw(0, 6))
    assert not torch.equal(draw(0, 5), draw(1, 5))
