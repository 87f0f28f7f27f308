"""Generation against slow references: KV cache vs full recomputation, scores, stops, batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from drafter import Draft, Drafter, GenerationParams
from drafter.text import decode
from tests.drafter.conftest import CONTEXT, reference_greedy, reference_scores

PROMPTS = ["the cat", "def f3(x):\n    return", "Zürich, naïve café: non-ASCII text"]


def _greedy(d: Drafter, prompt: str, n: int = 24, **kw: object) -> Draft:
    return d.generate(prompt, GenerationParams(max_new_tokens=n, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_cached_greedy_equals_full_recomputation(drafter: Drafter, prompt: str) -> None:
    draft = _greedy(drafter, prompt)
    ref = reference_greedy(drafter, drafter.prompt_ids(prompt), 24)
    assert draft.finish_reason == "length"
    assert draft.token_ids == ref
    assert draft.text == decode(drafter.tokenizer, ref)


def test_logprobs_and_entropies_are_those_of_the_untempered_model(drafter: Drafter) -> None:
    prompt = drafter.prompt_ids(PROMPTS[0])
    for params in (
        GenerationParams(max_new_tokens=16),
        GenerationParams(max_new_tokens=16, temperature=1.7, top_k=5, seed=1),
    ):
        draft = drafter.generate(prompt, params)
        picked, entropy = reference_scores(drafter, prompt, draft.token_ids)
        assert torch.allclose(torch.tensor(draft.logprobs), picked, atol=1e-4)
        assert torch.allclose(torch.tensor(draft.entropies), entropy, atol=1e-4)
        assert all(lp <= 0 for lp in draft.logprobs)


def test_offsets_tile_the_text(drafter: Drafter) -> None:
    draft = _greedy(drafter, PROMPTS[1])
    assert len(draft.offsets) == len(draft.token_ids)
    assert draft.offsets[0][0] == 0 and draft.offsets[-1][1] == len(draft.text)
    assert all(a[1] == b[0] for a, b in zip(draft.offsets, draft.offsets[1:]))


def _stop_across_boundary(draft: Draft) -> tuple[str, int]:
    """A two-character stop string made of the end of one token and the start of the next."""
    for k in range(1, len(draft.token_ids) - 1):
        (a0, a1), (b0, b1) = draft.offsets[k], draft.offsets[k + 1]
        stop = draft.text[a1 - 1 : a1 + 1]
        # its first occurrence must be this boundary, or the test would not cross one
        if a1 > a0 and b1 > b0 and "\ufffd" not in stop and draft.text.find(stop) == a1 - 1:
            return stop, a1 - 1
    raise AssertionError("no token boundary with text on both sides")


@pytest.mark.parametrize("prompt", PROMPTS)
def test_stop_string_across_token_boundary(drafter: Drafter, prompt: str) -> None:
    full = _greedy(drafter, prompt, n=32)
    stop, cut = _stop_across_boundary(full)
    draft = _greedy(drafter, prompt, n=32, stop=["never-generated", stop])
    assert draft.finish_reason == "stop"
    assert draft.text == full.text[:cut]
    assert stop not in draft.text
    # the kept tokens are a prefix of the full draft and their text covers the cut text
    assert draft.token_ids == full.token_ids[: len(draft.token_ids)]
    assert decode(drafter.tokenizer, draft.token_ids).startswith(draft.text)


def test_end_token_ends_the_draft_without_being_returned(model_dir: Path) -> None:
    fresh = Drafter.from_pretrained(model_dir)
    full = _greedy(fresh, PROMPTS[0])
    end = full.token_ids[5]
    first = full.token_ids.index(end)
    via_arg = fresh.generate(
        PROMPTS[0], GenerationParams(max_new_tokens=24), stop_ids=frozenset({end})
    )
    assert via_arg.finish_reason == "eos"
    assert via_arg.token_ids == full.token_ids[:first]
    # the same token declared as EOS by the model's generation config
    fresh.model.generation_config.eos_token_id = [end]
    via_config = Drafter(fresh.model, fresh.tokenizer)
    assert via_config.generate(PROMPTS[0], GenerationParams(max_new_tokens=24)) == via_arg


def test_seed_makes_sampling_reproducible(drafter: Drafter) -> None:
    def sample(seed: int) -> list[int]:
        params = GenerationParams(max_new_tokens=20, temperature=1.5, seed=seed)
        return drafter.generate(PROMPTS[0], params).token_ids

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)
    greedy = _greedy(drafter, PROMPTS[0], n=20).token_ids
    top1 = GenerationParams(max_new_tokens=20, temperature=2.0, top_k=1, seed=3)
    assert drafter.generate(PROMPTS[0], top1).token_ids == greedy


def test_batched_greedy_equals_unbatched(drafter: Drafter) -> None:
    params = GenerationParams(max_new_tokens=20)
    batch = drafter.generate_batch(PROMPTS, params)
    assert len({len(drafter.prompt_ids(p)) for p in PROMPTS}) == 3  # really padded
    for prompt, row in zip(PROMPTS, batch):
        alone = drafter.generate(prompt, params)
        assert row.token_ids == alone.token_ids
        assert row.text == alone.text
        assert torch.allclose(torch.tensor(row.logprobs), torch.tensor(alone.logprobs), atol=1e-4)


def test_batch_rows_stop_on_their_own(drafter: Drafter) -> None:
    full = _greedy(drafter, PROMPTS[1], n=32)
    stop, cut = _stop_across_boundary(full)
    params = [
        GenerationParams(max_new_tokens=5),
        GenerationParams(max_new_tokens=32, stop=[stop]),
        GenerationParams(max_new_tokens=12, temperature=1.3, seed=5),
    ]
    batch = drafter.generate_batch(PROMPTS, params)
    assert [d.finish_reason for d in batch] == ["length", "stop", "length"]
    assert len(batch[0].token_ids) == 5 and len(batch[2].token_ids) == 12
    assert batch[1].text == full.text[:cut]
    # a seeded sampled row does not depend on its batch neighbours
    assert batch[2].token_ids == drafter.generate(PROMPTS[2], params[2]).token_ids


@pytest.mark.parametrize("stop", [[], ["e"], ["\n", "at "]])
def test_stream_yields_the_tokens_of_generate(drafter: Drafter, stop: list[str]) -> None:
    params = GenerationParams(max_new_tokens=24, stop=stop)
    for prompt in PROMPTS[:2]:
        draft = drafter.generate(prompt, params)
        stream = drafter.stream(prompt, params)
        assert stream.finish_reason is None
        tokens = list(stream)
        assert [t.id for t in tokens] == draft.token_ids
        assert "".join(t.text for t in tokens) == draft.text
        assert [t.logprob for t in tokens] == pytest.approx(draft.logprobs, abs=1e-5)
        assert [t.entropy for t in tokens] == pytest.approx(draft.entropies, abs=1e-5)
        assert stream.finish_reason == draft.finish_reason
        assert stream.draft() == draft


def test_generation_stops_where_the_context_ends(drafter: Drafter) -> None:
    prompt = drafter.prompt_ids(PROMPTS[1]) * 20
    prompt = prompt[: CONTEXT - 3]
    draft = drafter.generate(prompt, GenerationParams(max_new_tokens=50))
    assert draft.finish_reason in ("length", "eos")
    assert len(draft.token_ids) <= 4  # positions 93..95 are fed, the 4th token is not


def test_prompt_longer_than_context_is_refused(drafter: Drafter) -> None:
    prompt = list(range(10, 10 + CONTEXT + 4))
    with pytest.raises(ValueError, match=rf"{CONTEXT + 4}.*{CONTEXT}"):
        drafter.generate(prompt)
    with pytest.raises(ValueError, match=rf"{CONTEXT + 4}.*{CONTEXT}"):
        drafter.generate_batch(["the cat", prompt])


def test_params_are_validated() -> None:
    with pytest.raises(ValueError):
        GenerationParams(stop=[""])
    with pytest.raises(ValueError):
        GenerationParams(top_p=0.0)
    with pytest.raises(ValueError):
        GenerationParams(temperature=-1.0)
    with pytest.raises(ValueError):
        GenerationParams(max_new_tokens=8, unknown=1)  # type: ignore[call-arg]
