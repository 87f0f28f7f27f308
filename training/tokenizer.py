"""Train remask's shared byte-level BPE tokenizer on the corpus's train split.

The drafter and the refiner share this tokenizer. Its shape:

- ids 0..6 are :data:`backends.tokens.SPECIAL_TOKENS`, in that order;
- then the 256 byte symbols, so every string is encodable and nothing is ever unknown;
- a byte-level pre-tokenizer (GPT-2 split rule, no prefix space) and decoder, with no
  normalizer, so ``decode(encode(text)) == text`` for any text, and character offsets
  (``return_offsets_mapping``) cover the input without trimming.

It is saved as a transformers fast tokenizer (``tokenizer.json`` plus config, with pad, eos
and mask tokens set) so ``AutoTokenizer.from_pretrained(dir)`` loads it; ``remask.json``
beside it records how it was trained and its tokens-per-character figures.

Training reads a deterministic, seed-chosen sample of whole train documents, balanced
between code and prose, so it takes minutes on two cores whatever the corpus size.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from backends.tokens import EOS, MASK, PAD, SPECIAL_TOKENS
from training import files
from training.corpus import HELD_OUT, SPLITS, TRAIN, iter_documents, load_manifest, summarize
from training.sources import CODE, KINDS, PROSE, Document

MIN_VOCAB_SIZE = len(SPECIAL_TOKENS) + 256  # the specials plus one token per byte
INFO_FILE = "remask.json"


@dataclass(frozen=True)
class TokenizerTrainConfig:
    """How to train the tokenizer; every field is recorded in ``remask.json``."""

    vocab_size: int = 8192  # small models: a small embedding table, still ~3.5 chars a token
    seed: int = 0  # picks the training sample; same corpus + seed -> same tokenizer
    max_train_chars: int = 12_000_000  # sample bound: keeps training to minutes on 2 cores
    code_share: float = 0.5  # fraction of the sample that is code; the rest is prose
    min_frequency: int = 2  # a pair seen once is noise, not a merge

    def validate(self) -> None:
        """Raise ``ValueError`` for settings that cannot train a usable tokenizer."""
        if self.vocab_size < MIN_VOCAB_SIZE:
            raise ValueError(
                f"vocab size {self.vocab_size} is too small: the {len(SPECIAL_TOKENS)} special "
                f"tokens and 256 byte tokens need at least {MIN_VOCAB_SIZE}"
            )
        if self.max_train_chars <= 0:
            raise ValueError(f"max_train_chars must be positive, got {self.max_train_chars}")
        if not 0.0 <= self.code_share <= 1.0:
            raise ValueError(f"code_share must be in [0, 1], got {self.code_share}")


def sample_training_texts(
    documents: Iterable[Document], max_chars: int, seed: int, code_share: float
) -> list[str]:
    """Whole documents chosen by a seeded hash of their ids, up to about ``max_chars``.

    Each kind gets its share of the budget; a kind with less text than its share passes the
    rest to the other. The order is the hash order, so the sample (and the trained merges)
    depend only on the documents and the seed, never on file order.
    """
    by_kind: dict[str, list[Document]] = {kind: [] for kind in KINDS}
    for doc in documents:
        by_kind[doc.kind].append(doc)
    for docs in by_kind.values():
        docs.sort(key=lambda d: hashlib.sha256(f"{seed}:{d.id}".encode()).digest())
    available = {kind: sum(len(d.text) for d in docs) for kind, docs in by_kind.items()}
    budget = {CODE: int(max_chars * code_share), PROSE: max_chars - int(max_chars * code_share)}
    for kind, other in ((CODE, PROSE), (PROSE, CODE)):
        spare = budget[kind] - available[kind]
        if spare > 0:
            budget[kind] -= spare
            budget[other] += spare

    picked: list[tuple[bytes, str]] = []
    for kind in KINDS:
        used = 0
        for doc in by_kind[kind]:
            if used >= budget[kind]:
                break
            picked.append((hashlib.sha256(f"{seed}:{doc.id}".encode()).digest(), doc.text))
            used += len(doc.text)
    picked.sort()  # interleave code and prose in one seeded order
    return [text for _, text in picked]


def new_bpe(config: TokenizerTrainConfig) -> tuple[Tokenizer, trainers.BpeTrainer]:
    """An untrained byte-level BPE tokenizer and its trainer, specials first."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    # trim_offsets=False: a token's span includes its leading space, so spans tile the text
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        min_frequency=config.min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return tokenizer, trainer


def as_transformers(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """Wrap a trained tokenizer for transformers, naming pad, eos, mask and the rest."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        eos_token=EOS,
        mask_token=MASK,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (PAD, EOS, MASK)],
        clean_up_tokenization_spaces=False,  # the cleanup edits spaces: no exact round trip
    )


def train_tokenizer(
    corpus_dir: str | Path,
    out_dir: str | Path,
    config: TokenizerTrainConfig | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Train on ``corpus_dir``'s train split, save to ``out_dir``, return the training info.

    The info (also written to ``out_dir/remask.json`` and summarised in ``README.md``) holds
    the config, the corpus hash, the sample size and the tokens-per-character figures on
    held-out code and prose. ``command`` is the command line to record in the README.
    Raises ``FileNotFoundError`` for a missing corpus and ``ValueError`` for an empty one
    or a vocabulary too small.
    """
    config = config or TokenizerTrainConfig()
    config.validate()
    manifest = load_manifest(corpus_dir)
    texts = sample_training_texts(
        iter_documents(corpus_dir, TRAIN), config.max_train_chars, config.seed, config.code_share
    )
    if not texts:
        raise ValueError(f"the corpus at {corpus_dir} has no train documents")
    tokenizer, trainer = new_bpe(config)
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    check_special_ids(tokenizer)
    fast = as_transformers(tokenizer)

    info: dict[str, Any] = {
        "config": asdict(config),
        "vocab_size": tokenizer.get_vocab_size(),
        "special_tokens": {tok: tokenizer.token_to_id(tok) for tok in SPECIAL_TOKENS},
        "corpus_sha256": manifest["corpus_sha256"],
        "corpus": summarize(manifest),
        "sample": {"documents": len(texts), "chars": sum(len(t) for t in texts)},
        "held_out": evaluate(fast, corpus_dir),
        "command": command,
    }
    save(fast, Path(out_dir), info)
    return info


def check_special_ids(tokenizer: Tokenizer) -> None:
    """Raise ``ValueError`` unless the special tokens hold ids 0..6 in their named order."""
    ids = [tokenizer.token_to_id(tok) for tok in SPECIAL_TOKENS]
    if ids != list(range(len(SPECIAL_TOKENS))):
        raise ValueError(f"special tokens got ids {ids}, expected 0..{len(SPECIAL_TOKENS) - 1}")


def save(fast: PreTrainedTokenizerFast, out_dir: Path, info: dict[str, Any]) -> None:
    """Save the tokenizer, ``remask.json`` and ``README.md``; each file lands atomically.

    ``save_pretrained`` writes into a temporary directory beside ``out_dir``; each file then
    replaces its namesake with one ``os.replace``.
    """
    tmp = files.temporary_dir_beside(out_dir)
    try:
        fast.save_pretrained(str(tmp))
        _portable_config(tmp / "tokenizer_config.json")
        files.write_json(tmp / INFO_FILE, info)
        files.write_text(tmp / "README.md", readme(info))
        files.replace_files_from(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _portable_config(path: Path) -> None:
    """Use the keys that transformers 4.x and 5.x both read.

    5.x writes its own class name and ``extra_special_tokens``; 4.x knows neither, and 5.x
    still reads the generic class and the older ``additional_special_tokens`` list.
    """
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    extra = config.pop("extra_special_tokens", None)
    if isinstance(extra, list):
        config["additional_special_tokens"] = extra
    files.write_json(path, config)


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """Load a saved tokenizer directory with ``AutoTokenizer``."""
    root = Path(path)
    if not (root / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer.json in {root}")
    tokenizer = AutoTokenizer.from_pretrained(str(root))
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise TypeError(f"{root} holds a {type(tokenizer).__name__}, not a fast BPE tokenizer")
    return tokenizer


def tokens_per_char(tokenizer: PreTrainedTokenizerFast, texts: Sequence[str]) -> float:
    """Tokens per character over ``texts`` (lower is better compression)."""
    chars = sum(len(t) for t in texts)
    if chars == 0:
        return 0.0
    encoded = tokenizer.backend_tokenizer.encode_batch(list(texts), add_special_tokens=False)
    return sum(len(e.ids) for e in encoded) / chars


def evaluate(tokenizer: PreTrainedTokenizerFast, corpus_dir: str | Path) -> dict[str, Any]:
    """Tokens per character on the held-out split, per kind, with the sizes measured."""
    figures: dict[str, Any] = {}
    for kind in KINDS:
        texts = [d.text for d in iter_documents(corpus_dir, HELD_OUT, kind)]
        figures[kind] = {
            "documents": len(texts),
            "chars": sum(len(t) for t in texts),
            "tokens_per_char": round(tokens_per_char(tokenizer, texts), 4),
        }
    return figures


def readme(info: dict[str, Any]) -> str:
    """The ``README.md`` shipped beside the tokenizer: how it was built and how it does."""
    cfg, held, corpus = info["config"], info["held_out"], info["corpus"]
    specials = "\n".join(f"| {i} | `{t}` |" for t, i in info["special_tokens"].items())
    command = info.get("command") or "(built from Python: training.tokenizer.train_tokenizer)"
    lines = [
        "# remask shared tokenizer",
        "",
        "Byte-level BPE shared by the drafter and the refiner: any text round-trips exactly",
        "(no normalizer, byte-level pre-tokenizer and decoder), offsets are character offsets.",
        "Load it with `AutoTokenizer.from_pretrained(\"models/tokenizer\")`.",
        "",
        "## How it was built",
        "",
        "The corpus is rebuilt on the machine by `remask corpus build` (standard library code,",
        "license texts, Python docs and docstrings; see `training/sources.py`) and is not",
        "committed; its manifest hash is below, and `models/corpus/` keeps a copy of the",
        "manifest and the held-out ids. The tokenizer was then trained with:",
        "",
        "```",
        command,
        "```",
        "",
        f"- vocabulary size: {info['vocab_size']} (asked: {cfg['vocab_size']})",
        f"- seed: {cfg['seed']}; min pair frequency: {cfg['min_frequency']}",
        f"- corpus manifest hash (`corpus_sha256`): `{info['corpus_sha256']}`",
        (
            f"- training sample: {info['sample']['documents']} train documents, "
            f"{info['sample']['chars'] / 1e6:.2f} M characters "
            f"(bound {cfg['max_train_chars'] / 1e6:.1f} M, code share {cfg['code_share']})"
        ),
        "",
        "## Corpus (MB of UTF-8 text, after deduplication)",
        "",
        "| split | code MB | code documents | prose MB | prose documents |",
        "|---|---|---|---|---|",
        *(
            f"| {split} | {corpus[f'{split}_code_mb']} | {corpus[f'{split}_code_documents']} "
            f"| {corpus[f'{split}_prose_mb']} | {corpus[f'{split}_prose_documents']} |"
            for split in SPLITS
        ),
        "",
        "| source | documents | MB |",
        "|---|---|---|",
        *(f"| {name} | {s['documents']} | {s['mb']} |" for name, s in corpus["sources"].items()),
        f"| (exact duplicates dropped) | {corpus['duplicates_dropped']} | |",
        "",
        "## Held-out figures",
        "",
        "| kind | documents | characters | tokens per char | chars per token |",
        "|---|---|---|---|---|",
    ]
    for kind in KINDS:
        f = held[kind]
        per = f["tokens_per_char"]
        chars_per = f"{1 / per:.2f}" if per else "-"
        lines.append(f"| {kind} | {f['documents']} | {f['chars']} | {per} | {chars_per} |")
    lines += ["", "## Special tokens", "", "| id | token |", "|---|---|", specials, ""]
    return "\n".join(lines)
