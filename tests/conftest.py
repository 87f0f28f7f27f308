"""Shared fixtures: a tiny byte-level BPE tokenizer with remask's special tokens."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from backends import tokens as T

SAMPLE_TEXT = [
    "def add(a, b):\n    return a + b\n",
    "The licensee shall not disclose confidential information to third parties.",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
    "Permission is hereby granted, free of charge, to any person obtaining a copy.",
    "for i in range(10):\n    print(i * i)\n",
    "Zürich, naïve café: non-ASCII text must round-trip.",
] * 20


def build_tiny_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(T.SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(SAMPLE_TEXT, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=T.PAD, eos_token=T.EOS, mask_token=T.MASK
    )


@pytest.fixture(scope="session")
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    return build_tiny_tokenizer()
