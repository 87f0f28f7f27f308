import pytest
import torch

from refiner.sampling import (
    confidence_scores,
    filter_top_k,
    filter_top_p,
    num_transfer_tokens,
    sample_tokens,
    select_commits,
)


def test_num_transfer_tokens_even_and_front_loaded():
    out = num_transfer_tokens(torch.tensor([10, 4, 0]), 4)
    assert out.tolist() == [[3, 3, 2, 2], [1, 1, 1, 1], [0, 0, 0, 0]]


def test_num_transfer_tokens_rejects_zero_steps():
    with pytest.raises(ValueError, match="steps"):
        num_transfer_tokens(torch.tensor([3]), 0)


def test_top_k_keeps_k_largest():
    lg = torch.tensor([[1.0, 5.0, 3.0, 4.0]])
    out = filter_top_k(lg, 2)
    assert torch.isinf(out[0, [0, 2]]).all() and out[0, 1] == 5.0 and out[0, 3] == 4.0


def test_top_p_keeps_nucleus_and_always_top_token():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    out = filter_top_p(probs.log(), 0.75)
    assert torch.isfinite(out[0, :2]).all() and torch.isinf(out[0, 2:]).all()
    out = filter_top_p(probs.log(), 0.1)
    assert torch.isfinite(out[0, 0]) and torch.isinf(out[0, 1:]).all()


def test_greedy_is_argmax_and_gumbel_is_seeded_and_float64():
    lg = torch.tensor([[0.0, 2.0, 1.0]])
    assert sample_tokens(lg, 0.0).tolist() == [1]
    a = sample_tokens(lg.repeat(500, 1), 1.0, torch.Generator().manual_seed(3))
    b = sample_tokens(lg.repeat(500, 1), 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # the empirical distribution follows softmax(logits)
    freq = torch.bincount(a, minlength=3).float() / 500
    assert torch.allclose(freq, torch.softmax(lg[0], -1), atol=0.07)


@pytest.mark.parametrize("temperature", [1e-40, 5e-324, 1e-5])
def test_a_tiny_temperature_is_greedy(temperature):
    # float64 logits / 5e-324 are inf for every positive logit: Gumbel-max would pick the first of them
    lg = torch.tensor([[0.5, 3.0, 2.0, -1.0]])
    gen = torch.Generator().manual_seed(0)
    assert sample_tokens(lg.repeat(50, 1), temperature, gen).tolist() == [1] * 50


def test_confidence_policies():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    chosen = torch.tensor([0, 0])
    lc = confidence_scores(probs, chosen, "low_confidence")
    assert torch.allclose(lc, torch.tensor([0.7, 0.4]))
    mg = confidence_scores(probs, chosen, "margin")
    assert torch.allclose(mg, torch.tensor([0.5, 0.05]))
    ent = confidence_scores(probs, chosen, "entropy")
    assert ent[0] > ent[1]  # the peaked row is more confident
    rnd = confidence_scores(probs, chosen, "random", torch.Generator().manual_seed(0))
    assert rnd.shape == (2,)
    with pytest.raises(ValueError, match="unknown remasking policy"):
        confidence_scores(probs, chosen, "nope")


def test_select_commits_top_k_and_threshold_min_one():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3]])
    cand = torch.tensor([[True, True, False, True]])
    out = select_commits(scores, cand, k=torch.tensor([2]))
    assert out.tolist() == [[False, True, False, True]]
    # threshold above every score still commits the single best candidate
    out = select_commits(scores, cand, threshold=0.95)
    assert out.tolist() == [[False, True, False, False]]
    out = select_commits(scores, cand, threshold=0.2)
    assert out.tolist() == [[False, True, False, True]]


def test_select_commits_ties_commit_exactly_k():
    scores = torch.full((1, 6), 0.5)
    cand = torch.ones(1, 6, dtype=torch.bool)
    assert select_commits(scores, cand, k=torch.tensor([1])).sum() == 1
    assert select_commits(scores, cand, threshold=0.9).sum() == 1


def test_select_commits_factor_rule_takes_the_likely_prefix():
    p = torch.tensor([[0.5, 0.99, 0.9, 0.95, 0.97]])
    cand = torch.tensor([[True, True, True, True, False]])
    # n=1: 2 * 0.01; n=2: 3 * 0.05; n=3: 4 * 0.1 = 0.4 < 1; n=4: 5 * 0.5 = 2.5: three commit,
    # and the non-candidate 0.97 never does
    out = select_commits(p, cand, factor=1.0, probs_of_chosen=p)
    assert out.tolist() == [[False, True, True, True, False]]
    # a strict factor: only n=1 holds (2 * 0.01 < 0.1; 3 * 0.05 is not)
    assert select_commits(p, cand, factor=0.1, probs_of_chosen=p).tolist() == [[False, True, False, False, False]]
    # nothing likely enough: still the best one, so every step makes progress
    low = torch.tensor([[0.2, 0.3, 0.1, 0.25, 0.0]])
    out = select_commits(low, cand, k=torch.tensor([1]), factor=1.0, probs_of_chosen=low)
    assert out.tolist() == [[False, True, False, False, False]]


def test_select_commits_early_exit_takes_a_row_whose_candidates_all_clear_the_bar():
    p = torch.tensor([[0.6, 0.7, 0.8, 0.0], [0.6, 0.2, 0.9, 0.9]])
    cand = torch.tensor([[True, True, True, False], [True, True, True, True]])
    out = select_commits(p, cand, k=torch.tensor([1, 1]), early_exit=0.5, probs_of_chosen=p)
    # row 0: every candidate above 0.5 (the non-candidate's 0.0 does not count): all three commit;
    # row 1: 0.2 is below, so only the even schedule's best one
    assert out.tolist() == [[True, True, True, False], [False, False, True, False]]
