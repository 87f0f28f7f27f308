"""Loading checkpoints, clear errors, the forward seam, and scoring existing text."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import BertConfig, T5Config

from backends import tokens as T
from drafter import Drafter, GenerationParams
from drafter.text import encode_text
from tests.drafter.conftest import CONTEXT, make_tokenizer, save_drafter, tiny_llama


def test_from_pretrained_reads_model_and_tokenizer(drafter: Drafter, model_dir: Path) -> None:
    assert drafter.name == str(model_dir)
    assert drafter.context_length == CONTEXT
    assert drafter.eos_ids == {drafter.tokenizer.get_vocab()[T.EOS]}
    assert drafter.pad_id == drafter.tokenizer.get_vocab()[T.PAD]
    assert drafter.device == torch.device("cpu")
    assert next(drafter.model.parameters()).dtype == torch.float32
    assert not drafter.model.training


def test_constructor_takes_a_name(drafter: Drafter) -> None:
    assert Drafter(drafter.model, drafter.tokenizer, name="draft-1").name == "draft-1"


def test_missing_path_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        Drafter.from_pretrained(missing)


def test_directory_without_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="no config.json"):
        Drafter.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no config.json"):
        Drafter.from_pretrained(tmp_path / "weights.bin")


@pytest.mark.parametrize(
    ("config", "model_type"),
    [
        (
            BertConfig(
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=64,
                architectures=["BertForMaskedLM"],
            ),
            "bert",
        ),
        (T5Config(d_model=32, num_layers=1, num_heads=2, d_ff=64), "t5"),
    ],
)
def test_non_causal_checkpoint_names_its_model_type(
    tmp_path: Path, config: Any, model_type: str
) -> None:
    config.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=f"'{model_type}'"):
        Drafter.from_pretrained(tmp_path)


def test_generation_goes_through_the_forward_seam_with_a_kv_cache(model_dir: Path) -> None:
    calls: list[tuple[int, ...]] = []

    class Recording(Drafter):
        def forward(self, input_ids: torch.Tensor, *args: Any, **kw: Any) -> Any:
            calls.append(tuple(input_ids.shape))
            return super().forward(input_ids, *args, **kw)

    d = Recording.from_pretrained(model_dir)
    draft = d.generate_batch(["the cat", "a dog reads"], GenerationParams(max_new_tokens=6))
    assert all(len(x.token_ids) == 6 for x in draft)
    width = max(len(d.prompt_ids(p)) for p in ["the cat", "a dog reads"])
    # one prefill over the padded prompts, then one new token per row per step (the cache
    # holds the rest); the 6th token is sampled but never fed
    assert calls == [(2, width)] + [(2, 1)] * 5


def test_score_matches_a_full_forward_pass(drafter: Drafter) -> None:
    text = "the licensee reads the file. naïve 🙂"
    score = drafter.score(text)
    ids = encode_text(drafter.tokenizer, text)
    assert score.token_ids == ids and score.text == text
    eos = drafter.tokenizer.get_vocab()[T.EOS]
    with torch.inference_mode():
        logits = drafter.model(input_ids=torch.tensor([[eos, *ids]])).logits[0, :-1]
    logp = torch.log_softmax(logits.float(), dim=-1)
    expected = logp.gather(-1, torch.tensor(ids)[:, None]).squeeze(-1)
    assert torch.allclose(torch.tensor(score.logprobs), expected, atol=1e-5)
    entropy = -(logp.exp() * logp).sum(-1)
    assert torch.allclose(torch.tensor(score.entropies), entropy, atol=1e-5)
    # offsets tile the text, so weak tokens map back to characters
    assert "".join(text[a:b] for a, b in score.offsets) == text
    assert drafter.score(ids).logprobs == score.logprobs


def test_score_agrees_with_the_drafts_own_logprobs(drafter: Drafter) -> None:
    eos = drafter.tokenizer.get_vocab()[T.EOS]
    draft = drafter.generate([eos], GenerationParams(max_new_tokens=10))
    score = drafter.score(draft.token_ids)  # scored after EOS: the same context as the draft
    assert score.logprobs == pytest.approx(draft.logprobs, abs=1e-4)
    assert score.entropies == pytest.approx(draft.entropies, abs=1e-4)


def test_score_after_bos_and_without_any_start_token(tmp_path: Path) -> None:
    with_bos = make_tokenizer(bos="<s>")
    d = Drafter.from_pretrained(save_drafter(tmp_path / "bos", with_bos))
    bos = with_bos.get_vocab()["<s>"]
    assert d.leading_ids == [bos]
    assert d.prompt_ids("the cat")[0] == bos
    assert all(math.isfinite(x) for x in d.score("the cat").logprobs)
    no_start = make_tokenizer((T.PAD,))
    bare = Drafter(tiny_llama(len(no_start), eos_token_id=None), no_start, name="bare")
    assert not bare.eos_ids and not bare.leading_ids
    score = bare.score("the cat")
    assert math.isnan(score.logprobs[0]) and math.isnan(score.entropies[0])
    assert all(math.isfinite(x) for x in score.logprobs[1:])
