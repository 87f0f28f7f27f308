"""Sampling primitives on fixed logits: no model involved."""

from __future__ import annotations

import math

import pytest
import torch

from drafter.sampling import filter_top_k, filter_top_p, log_probs_and_entropy, sample_next


def test_log_probs_and_entropy_match_definitions() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    logp, entropy = log_probs_and_entropy(logits)
    p = torch.softmax(logits, dim=-1)
    assert torch.allclose(logp, torch.log(p))
    assert entropy.item() == pytest.approx(float(-(p * p.log()).sum()), abs=1e-6)


def test_entropy_of_uniform_is_log_v_and_handles_minus_inf() -> None:
    _, uniform = log_probs_and_entropy(torch.zeros(1, 8))
    assert uniform.item() == pytest.approx(math.log(8), abs=1e-6)
    masked = torch.tensor([[0.0, 0.0, float("-inf"), float("-inf")]])
    logp, entropy = log_probs_and_entropy(masked)
    assert entropy.item() == pytest.approx(math.log(2), abs=1e-6)  # not nan
    assert logp[0, 2].item() == float("-inf")


def test_top_k_keeps_the_k_largest() -> None:
    logits = torch.tensor([[0.1, 3.0, 2.0, -1.0, 2.5]])
    kept = torch.isfinite(filter_top_k(logits, 2))
    assert kept.tolist() == [[False, True, False, False, True]]
    assert torch.equal(filter_top_k(logits, 0), logits)


def test_top_p_keeps_smallest_set_reaching_p() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    assert torch.isfinite(filter_top_p(logits, 0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_top_p(logits, 0.8)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_top_p(logits, 0.81)).tolist() == [[True, True, True, False]]
    # the most likely token survives even a tiny p
    assert torch.isfinite(filter_top_p(logits, 0.01)).tolist() == [[True, False, False, False]]


def test_greedy_is_argmax_and_ignores_generator() -> None:
    logits = torch.tensor([[0.0, 5.0, 1.0], [3.0, 0.0, 2.9]])
    assert sample_next(logits, temperature=0.0).tolist() == [1, 0]


def test_sampling_is_deterministic_per_generator_and_respects_filters() -> None:
    logits = torch.zeros(1, 50)
    draws = [
        sample_next(logits, 1.0, generator=torch.Generator().manual_seed(3)).item()
        for _ in range(2)
    ]
    assert draws[0] == draws[1]
    gen = torch.Generator().manual_seed(0)
    seen = {sample_next(logits, 1.0, generator=gen).item() for _ in range(200)}
    assert len(seen) > 20  # flat distribution: many different tokens
    peaked = torch.tensor([[4.0, 3.0, 0.0, 0.0, 0.0]])
    gen = torch.Generator().manual_seed(0)
    top2 = {sample_next(peaked, 5.0, top_k=2, generator=gen).item() for _ in range(100)}
    assert top2 == {0, 1}


def test_low_temperature_concentrates_on_the_mode() -> None:
    logits = torch.tensor([[1.0, 0.8, 0.0]])
    gen = torch.Generator().manual_seed(0)
    draws = [sample_next(logits, 0.01, generator=gen).item() for _ in range(50)]
    assert set(draws) == {0}


@pytest.mark.parametrize("temperature", [1e-40, 5e-324, 1e-5])
def test_a_tiny_temperature_is_greedy_not_a_crash(temperature: float) -> None:
    # float32 logits / 1e-40 overflow to inf, their softmax is NaN and multinomial raises
    logits = torch.tensor([[1.0, 3.0, 2.0], [0.0, -1.0, 5.0]])
    gen = torch.Generator().manual_seed(0)
    assert sample_next(logits, temperature, top_p=0.9, generator=gen).tolist() == [1, 2]
