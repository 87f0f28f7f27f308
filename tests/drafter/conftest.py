"""Fixtures for the drafter tests: a tiny byte-level BPE tokenizer and a tiny Llama on disk.

The model is random but *decisive*: a large init range makes its greedy continuations vary from
token to token instead of repeating one token, which gives stop strings and end tokens something
to find. Everything is saved with ``save_pretrained`` and loaded back through
``Drafter.from_pretrained``, the path real checkpoints take.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import torch
from tokenizers import (
    AddedToken,
    Tokenizer,
    decoders,
    models,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from backends import tokens as T
from drafter import Drafter

# tiny models: starting threads costs more than the arithmetic, and the cores are shared
torch.set_num_threads(1)

CONTEXT = 96  # max_position_embeddings of the tiny model


def _corpus() -> list[str]:
    subjects = ["the cat", "a dog", "the licensee", "our parser", "this function"]
    verbs = ["returns", "reads", "shall not disclose", "writes", "checks"]
    objects = ["the value", "a token", "confidential information", "the file", "every line"]
    prose = [f"{s} {v} {o}." for s in subjects for v in verbs for o in objects]
    code = [f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(100)]
    accents = ["Zürich, naïve café: non-ASCII text must round-trip."] * 20
    return prose + code + accents


@cache
def make_tokenizer(
    special: tuple[str, ...] = T.SPECIAL_TOKENS, extra: tuple[str, ...] = (), bos: str | None = None
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on the corpus; ``extra`` special tokens added after;
    with ``bos``, it puts that token before every text (as Llama-family tokenizers do)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=list(special),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in extra])
    named = {"eos_token": T.EOS} if T.EOS in special else {}
    if bos is not None:
        tok.add_special_tokens([AddedToken(bos, special=True, normalized=False)])
        bos_id = tok.token_to_id(bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, bos_id)]
        )
        named["bos_token"] = bos
    if T.PAD in special:
        named["pad_token"] = T.PAD
    return PreTrainedTokenizerFast(tokenizer_object=tok, **named)


def tiny_llama(vocab_size: int, seed: int = 0, **overrides: Any) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    fields: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": CONTEXT,
        "initializer_range": 0.3,  # decisive logits: varied greedy output (module docstring)
        "tie_word_embeddings": False,
        "bos_token_id": None,
    }
    fields.update(overrides)
    return LlamaForCausalLM(LlamaConfig(**fields)).eval()


def save_drafter(root: Path, tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> Path:
    model = tiny_llama(
        len(tokenizer),
        seed=seed,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer: PreTrainedTokenizerFast) -> Path:
    return save_drafter(tmp_path_factory.mktemp("tiny-drafter"), tokenizer)


@pytest.fixture(scope="session")
def drafter(model_dir: Path) -> Drafter:
    """Shared by many tests: do not mutate it (load a fresh one instead)."""
    return Drafter.from_pretrained(model_dir)


def reference_greedy(d: Drafter, prompt: Sequence[int], n: int) -> list[int]:
    """Greedy decoding the slow way: a full forward pass over the whole sequence per token."""
    ids = list(prompt)
    with torch.inference_mode():
        for _ in range(n):
            logits = d.model(input_ids=torch.tensor([ids])).logits[0, -1]
            ids.append(int(logits.argmax()))
    return ids[len(prompt) :]


def reference_scores(
    d: Drafter, prompt: Sequence[int], generated: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """log p and entropy of each generated token from one full forward pass (no cache)."""
    ids = list(prompt) + list(generated)
    with torch.inference_mode():
        logits = d.model(input_ids=torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits[len(prompt) - 1 : len(ids) - 1], dim=-1)
    picked = logp.gather(-1, torch.tensor(generated)[:, None]).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return picked, entropy


class PositionRecorder:
    """Wraps a model's ``forward`` and records, per call, the most positions any row used:
    the highest position id + 1 and the most tokens a row attends to (its mask's sum)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.positions: list[int] = []
        self.attended: list[int] = []
        self._forward = model.forward
        model.forward = self  # type: ignore[method-assign]  # an instance attribute wins

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ids, mask = kwargs["input_ids"], kwargs.get("attention_mask")
        pos = kwargs.get("position_ids")
        width = ids.shape[1] if pos is None else int(pos.max()) + 1
        self.positions.append(width)
        self.attended.append(ids.shape[1] if mask is None else int(mask.sum(-1).max()))
        return self._forward(*args, **kwargs)

    @property
    def most(self) -> int:
        """The most positions any call used (0 before the first call)."""
        return max(self.positions + self.attended, default=0)
