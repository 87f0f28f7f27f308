"""Packed training sequences: tokenise the corpus once, cache it, cut it into windows.

Every document of a split is tokenised and followed by the end-of-text token, and the
documents are laid end to end in one ``uint16`` stream (8k-token vocabularies fit with room
to spare). The stream is cached as ``.npy`` under ``<corpus>/cache/``, keyed by the corpus
hash, the tokenizer's hash, the split and the kind, so a second run memory-maps it instead
of tokenising again.

Training batches are (B, L) windows of that stream. An *epoch* is one pass over the stream
cut at a seeded offset into non-overlapping windows taken in a seeded order; batch ``i`` is a
pure function of ``(seed, i)``, so a resumed run needs only the index of the next batch to
see exactly the batches an uninterrupted run would have seen. Held-out batches are windows
at evenly spaced, fixed positions of the held-out stream: the same batches at every
evaluation, so held-out losses are comparable across steps and runs. A corpus with whole
held-out packages (code by other authors, none of it trained on) gets a second set of
fixed batches from that split, the harder test of generalisation.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerFast

from backends.tokens import EOS
from training import files
from training.corpus import HELD_OUT, HELD_OUT_PACKAGES, TRAIN, iter_documents, load_manifest
from training.tokenizer import load_tokenizer

CACHE_DIR = "cache"  # under the corpus directory; the corpus folder is never committed
CACHE_FORMAT = "remask-tokens/1"  # bump when the stream layout changes: old caches miss
TOKENIZE_CHUNK = 256  # documents per encode_batch call: bounds memory, keeps Rust busy


def tokenizer_hash(tokenizer_dir: str | Path) -> str:
    """Hex sha256 of ``tokenizer.json``: the merges, vocabulary and special tokens."""
    path = Path(tokenizer_dir) / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer.json in tokenizer directory {tokenizer_dir}")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_path(
    corpus_dir: str | Path, tokenizer_dir: str | Path, split: str, kind: str | None = None
) -> Path:
    """Where the token stream of one split (and kind) is cached for this tokenizer."""
    manifest = load_manifest(corpus_dir)
    key = hashlib.sha256(
        f"{CACHE_FORMAT}\n{manifest['corpus_sha256']}\n{tokenizer_hash(tokenizer_dir)}".encode()
    ).hexdigest()[:16]
    return Path(corpus_dir) / CACHE_DIR / f"tokens-{split}-{kind or 'all'}-{key}.npy"


def tokenize_documents(
    texts: Iterator[str] | list[str], tokenizer: PreTrainedTokenizerFast
) -> np.ndarray:
    """Encode texts and join them, each followed by EOS, into one (N,) uint16 array."""
    eos = tokenizer.convert_tokens_to_ids(EOS)
    if not isinstance(eos, int) or eos < 0:
        raise ValueError(f"the tokenizer has no {EOS} token")
    if len(tokenizer) > np.iinfo(np.uint16).max + 1:
        raise ValueError(f"vocabulary of {len(tokenizer)} tokens does not fit in uint16")
    parts: list[np.ndarray] = []
    chunk: list[str] = []

    def flush() -> None:
        encoded = tokenizer.backend_tokenizer.encode_batch(chunk, add_special_tokens=False)
        for enc in encoded:
            parts.append(np.asarray([*enc.ids, eos], dtype=np.uint16))
        chunk.clear()

    for text in texts:
        chunk.append(text)
        if len(chunk) >= TOKENIZE_CHUNK:
            flush()
    if chunk:
        flush()
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)


def token_stream(
    corpus_dir: str | Path,
    tokenizer_dir: str | Path,
    split: str,
    kind: str | None = None,
    tokenizer: PreTrainedTokenizerFast | None = None,
) -> np.ndarray:
    """The split's token stream (N,) uint16, memory-mapped from the cache when present.

    Tokenises and writes the cache (atomically: a temporary file, then a rename) on a miss.
    Raises ``FileNotFoundError`` naming a missing corpus or tokenizer directory and
    ``ValueError`` for a split with no tokens.
    """
    for what, path in (("corpus", corpus_dir), ("tokenizer", tokenizer_dir)):
        if not Path(path).is_dir():
            raise FileNotFoundError(f"{what} directory not found: {path}")
    target = cache_path(corpus_dir, tokenizer_dir, split, kind)
    if not target.is_file():
        if tokenizer is None:
            tokenizer = load_tokenizer(tokenizer_dir)
        texts = (doc.text for doc in iter_documents(corpus_dir, split, kind))
        with files.atomic_open(target, "wb") as handle:
            np.save(handle, tokenize_documents(texts, tokenizer))
    stream: np.ndarray = np.load(target, mmap_mode="r")
    if stream.size == 0:
        raise ValueError(f"the {split} split of the corpus at {corpus_dir} holds no tokens")
    return stream


def unigram_counts(stream: np.ndarray, vocab_size: int, chunk: int = 1 << 22) -> np.ndarray:
    """How often each id occurs in ``stream``: (V,) int64, read in chunks of a memmap."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, len(stream), chunk):
        part = np.asarray(stream[start : start + chunk])
        counts += np.bincount(part, minlength=vocab_size)[:vocab_size]
    return counts


def _windows(stream: np.ndarray, starts: np.ndarray, seq_len: int) -> torch.Tensor:
    """Rows ``stream[s : s + seq_len]`` for each start -> (len(starts), seq_len) int64."""
    rows = np.stack([np.asarray(stream[s : s + seq_len]) for s in starts.tolist()])
    return torch.from_numpy(rows.astype(np.int64))


@dataclass
class PackedBatches:
    """Seeded, resumable iterator of (B, L) training batches over a token stream.

    ``position`` is the index of the next batch; it is all the state a resume needs, since
    batch ``i`` depends only on the seed and ``i``.
    """

    stream: np.ndarray  # (N,) token ids
    seq_len: int
    batch_size: int
    seed: int = 0
    position: int = 0
    _epoch_cache: tuple[int, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.seq_len < 2 or self.batch_size < 1:
            raise ValueError(
                f"need seq_len >= 2 and batch_size >= 1, got {self.seq_len} and {self.batch_size}"
            )
        if len(self.stream) < self.seq_len:
            raise ValueError(
                f"the token stream holds {len(self.stream)} tokens, fewer than one sequence "
                f"of {self.seq_len}; use a shorter --seq-len or a larger corpus"
            )

    @property
    def windows_per_epoch(self) -> int:
        return len(self.stream) // self.seq_len

    @property
    def batches_per_epoch(self) -> int:
        # a stream smaller than one batch still yields a batch: its windows repeat
        return max(1, self.windows_per_epoch // self.batch_size)

    def _epoch_starts(self, epoch: int) -> np.ndarray:
        """Window start offsets of one epoch, in training order (cached for the last epoch)."""
        if self._epoch_cache is not None and self._epoch_cache[0] == epoch:
            return self._epoch_cache[1]
        rng = np.random.default_rng([self.seed, epoch])
        n = self.windows_per_epoch
        spare = len(self.stream) - n * self.seq_len
        # a fresh phase each epoch: windows do not always cut documents at the same places
        offset = int(rng.integers(0, spare + 1))
        order = rng.permutation(n)
        need = self.batches_per_epoch * self.batch_size
        if need > n:
            order = np.resize(order, need)
        starts = offset + order[:need] * self.seq_len
        self._epoch_cache = (epoch, starts)
        return starts

    def batch_at(self, index: int) -> torch.Tensor:
        """Batch number ``index`` (counting across epochs) -> (B, L) int64."""
        epoch, within = divmod(index, self.batches_per_epoch)
        starts = self._epoch_starts(epoch)
        b = self.batch_size
        return _windows(self.stream, starts[within * b : (within + 1) * b], self.seq_len)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        batch = self.batch_at(self.position)
        self.position += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint stores: the next batch index and what it depends on."""
        return {
            "position": self.position,
            "seed": self.seed,
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
            "stream_tokens": len(self.stream),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint; refuses a different stream, seed or batch shape."""
        for key in ("seed", "seq_len", "batch_size", "stream_tokens"):
            mine = self.state_dict()[key]
            if state.get(key) != mine:
                raise ValueError(
                    f"the checkpoint's data {key} is {state.get(key)!r} but this run's is "
                    f"{mine!r}; resume with the settings (and corpus, tokenizer) it was made with"
                )
        self.position = int(state["position"])


def held_out_batches(
    stream: np.ndarray, seq_len: int, batch_size: int, n_batches: int
) -> list[torch.Tensor]:
    """``n_batches`` fixed (B, L) batches from windows spread evenly over ``stream``.

    Spreading the windows (rather than taking the first ones) samples many documents, code
    and prose alike, with no seed to drift between runs.
    """
    if len(stream) < seq_len:
        raise ValueError(
            f"the held-out stream holds {len(stream)} tokens, fewer than one sequence of {seq_len}"
        )
    count = n_batches * batch_size
    starts = np.linspace(0, len(stream) - seq_len, num=count).astype(np.int64)
    rows = _windows(stream, starts, seq_len)
    return [rows[i : i + batch_size] for i in range(0, count, batch_size)]


def step_seed(seed: int, step: int, salt: int = 0) -> int:
    """A 63-bit seed for one step's random choices, a pure function of (seed, step, salt).

    Augmentations draw from generators seeded with it instead of the global RNG, so step
    ``s`` noises its batch the same way in a resumed run and in an uninterrupted one.
    """
    state = np.random.SeedSequence([seed, step, salt]).generate_state(1, dtype=np.uint64)[0]
    return int(state) >> 1


def step_generator(seed: int, step: int, salt: int = 0) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`step_seed`."""
    return torch.Generator().manual_seed(step_seed(seed, step, salt))


TOKENIZER_FILES: tuple[str, ...] = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
)


def copy_tokenizer(tokenizer_dir: str | Path, directory: Path) -> list[str]:
    """Copy the tokenizer's files (not its README) next to a saved model."""
    copied = []
    for name in TOKENIZER_FILES:
        src = Path(tokenizer_dir) / name
        if src.is_file():
            shutil.copyfile(src, directory / name)
            copied.append(name)
    return copied


@dataclass
class TrainingData:
    """Everything a trainer needs from the corpus and the tokenizer."""

    tokenizer: PreTrainedTokenizerFast
    train: PackedBatches
    held_out: list[torch.Tensor]
    info: dict[str, Any]  # corpus hash, tokenizer hash, token counts: for training.json
    # fixed batches of the held-out packages; empty when the corpus has none (or less
    # than one window of them)
    held_out_packages: list[torch.Tensor] = field(default_factory=list)


def load_training_data(
    corpus_dir: str | Path,
    tokenizer_dir: str | Path,
    seq_len: int,
    batch_size: int,
    seed: int,
    eval_batches: int,
) -> TrainingData:
    """Load the tokenizer, the cached train and held-out streams, and cut them into batches.

    The held-out packages split, when the corpus has one, gives its own ``eval_batches``
    fixed batches. Raises ``FileNotFoundError`` naming a missing corpus or tokenizer
    directory.
    """
    for what, path in (("corpus", corpus_dir), ("tokenizer", tokenizer_dir)):
        if not Path(path).is_dir():
            raise FileNotFoundError(f"{what} directory not found: {path}")
    tokenizer = load_tokenizer(tokenizer_dir)
    train_stream = token_stream(corpus_dir, tokenizer_dir, TRAIN, tokenizer=tokenizer)
    held_stream = token_stream(corpus_dir, tokenizer_dir, HELD_OUT, tokenizer=tokenizer)
    manifest = load_manifest(corpus_dir)
    packages: list[torch.Tensor] = []
    package_tokens = 0
    if any(d.get("split") == HELD_OUT_PACKAGES for d in manifest.get("documents", [])):
        package_stream = token_stream(corpus_dir, tokenizer_dir, HELD_OUT_PACKAGES,
                                      tokenizer=tokenizer)
        package_tokens = len(package_stream)
        if package_tokens >= seq_len:
            packages = held_out_batches(package_stream, seq_len, batch_size, eval_batches)
    info = {
        "corpus_sha256": manifest["corpus_sha256"],
        "tokenizer_sha256": tokenizer_hash(tokenizer_dir),
        "vocab_size": len(tokenizer),
        "train_tokens": len(train_stream),
        "held_out_tokens": len(held_stream),
        "held_out_packages_tokens": package_tokens,
        "held_out_packages_evaluated": bool(packages),
    }
    return TrainingData(
        tokenizer=tokenizer,
        train=PackedBatches(train_stream, seq_len, batch_size, seed),
        held_out=held_out_batches(held_stream, seq_len, batch_size, eval_batches),
        info=info,
        held_out_packages=packages,
    )
