"""The shared BPE tokenizer trained on the fake corpus: ids, round trip, offsets, loading."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from backends.tokens import EOS, FILLER, MASK, PAD, SPECIAL_TOKENS, special_ids
from training.corpus import HELD_OUT, TRAIN, iter_documents
from training.sources import CODE, PROSE, Document
from training.tokenizer import (
    INFO_FILE,
    MIN_VOCAB_SIZE,
    TokenizerTrainConfig,
    load_tokenizer,
    sample_training_texts,
    train_tokenizer,
)

VOCAB = 420
TRICKY = (
    "def f(x):\n\treturn x  # tabs\tand  double  spaces   \r\n"
    "naïve café — 日本語 🤖 \u00a0nbsp \u200bzero-width\n\n\n"
    "<|mask|> looks special; <|not a token|> does not\n   trailing   "
)


@pytest.fixture(scope="module")
def trained(fake_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_tokenizer(fake_corpus, out, TokenizerTrainConfig(vocab_size=VOCAB), command="cmd")
    return out


def test_special_tokens_come_first_then_bytes(trained: Path) -> None:
    tok = load_tokenizer(trained)
    vocab = tok.get_vocab()
    assert [vocab[t] for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    assert len(vocab) == VOCAB
    # the 256 byte symbols follow the specials: single characters only
    singles = [t for t, i in vocab.items() if len(SPECIAL_TOKENS) <= i < MIN_VOCAB_SIZE]
    assert len(singles) == 256 and all(len(t) == 1 for t in singles)


def test_auto_tokenizer_loads_with_named_specials(trained: Path) -> None:
    tok = AutoTokenizer.from_pretrained(str(trained))
    assert (tok.pad_token, tok.eos_token, tok.mask_token) == (PAD, EOS, MASK)
    assert (tok.pad_token_id, tok.eos_token_id, tok.mask_token_id) == (0, 1, 2)
    ids = special_ids(tok)
    assert (ids.mask, ids.pad, ids.eos, ids.filler) == (2, 0, 1, 3)
    assert tok.convert_tokens_to_ids(FILLER) == 3
    assert set(SPECIAL_TOKENS) <= set(tok.all_special_tokens)


def test_round_trip_is_exact(trained: Path, fake_corpus: Path) -> None:
    tok = load_tokenizer(trained)
    texts = [d.text for d in iter_documents(fake_corpus, HELD_OUT)] + [TRICKY, "", " ", "\t\n"]
    assert any("\t" in t for t in texts) and any(ord(c) > 127 for t in texts for c in t)
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
    assert tok.decode(tok.encode(TRICKY), skip_special_tokens=False) == TRICKY
    assert tok.convert_tokens_to_ids(MASK) in tok.encode(TRICKY)  # literal specials are specials


def test_offsets_tile_ascii_text_and_stay_in_range(trained: Path) -> None:
    tok = load_tokenizer(trained)
    text = "class Buffer3:\n    def merge(self):\n\treturn  'span'  \n"
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    offsets = enc["offset_mapping"]
    assert len(offsets) == len(enc["input_ids"])
    assert "".join(text[a:b] for a, b in offsets) == text
    assert all(b == a2 for (_, b), (a2, _) in itertools.pairwise(offsets))
    enc = tok(TRICKY, return_offsets_mapping=True, add_special_tokens=False)
    starts = [a for a, _ in enc["offset_mapping"]]
    assert starts == sorted(starts)
    assert all(0 <= a < b <= len(TRICKY) for a, b in enc["offset_mapping"])
    # a multi-byte character split over byte tokens maps every piece to that character
    emoji = TRICKY.index("🤖")
    assert (emoji, emoji + 1) in enc["offset_mapping"]


def test_training_is_deterministic(trained: Path, fake_corpus: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    train_tokenizer(fake_corpus, again, TokenizerTrainConfig(vocab_size=VOCAB), command="cmd")
    for name in ("tokenizer.json", "tokenizer_config.json", INFO_FILE, "README.md"):
        assert (again / name).read_bytes() == (trained / name).read_bytes(), name


def test_info_and_readme_record_the_figures(trained: Path, fake_corpus: Path) -> None:
    info = json.loads((trained / INFO_FILE).read_text())
    manifest = json.loads((fake_corpus / "manifest.json").read_text())
    assert info["corpus_sha256"] == manifest["corpus_sha256"]
    assert info["vocab_size"] == VOCAB and info["config"]["seed"] == 0
    for kind in (CODE, PROSE):
        figures = info["held_out"][kind]
        assert figures["documents"] == len(list(iter_documents(fake_corpus, HELD_OUT, kind)))
        assert 0.0 < figures["tokens_per_char"] < 1.0
    readme = (trained / "README.md").read_text()
    assert manifest["corpus_sha256"] in readme and "cmd" in readme
    assert str(info["held_out"][CODE]["tokens_per_char"]) in readme
    assert not list(trained.parent.glob(".*.tmp"))  # no temporary leftovers


def docs(kind: str, n: int, size: int) -> list[Document]:
    return [Document(kind, f"{kind}/{i}", "x" * size) for i in range(n)]


def test_sample_is_balanced_bounded_and_seeded() -> None:
    pool = docs(CODE, 50, 100) + docs(PROSE, 50, 100)
    texts = sample_training_texts(pool, max_chars=2000, seed=0, code_share=0.5)
    assert len(texts) == 20  # 10 of each kind fill the 1000-char share each
    # a kind short of its share hands the rest over
    short = docs(CODE, 50, 100) + docs(PROSE, 2, 100)
    assert len(sample_training_texts(short, max_chars=2000, seed=0, code_share=0.5)) == 20
    tagged = [Document(d.kind, d.id, d.id) for d in pool]
    a = sample_training_texts(tagged, 2000, seed=0, code_share=0.5)
    assert a == sample_training_texts(list(reversed(tagged)), 2000, seed=0, code_share=0.5)
    assert a != sample_training_texts(tagged, 2000, seed=1, code_share=0.5)
    assert sum(t.startswith(CODE) for t in a) == len(a) // 2


def test_bad_settings_and_corpora_are_clear_errors(fake_corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"at least {MIN_VOCAB_SIZE}"):
        train_tokenizer(fake_corpus, tmp_path / "t", TokenizerTrainConfig(vocab_size=262))
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        train_tokenizer(missing, tmp_path / "t")
    empty = tmp_path / "empty-corpus"
    empty.mkdir()
    (empty / "manifest.json").write_text((fake_corpus / "manifest.json").read_text())
    (empty / "train.jsonl").write_text("")
    with pytest.raises(ValueError, match="no train documents"):
        train_tokenizer(empty, tmp_path / "t", TokenizerTrainConfig(vocab_size=300))
    assert not (tmp_path / "t").exists()
    assert list(iter_documents(fake_corpus, TRAIN))
