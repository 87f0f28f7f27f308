import torch

from refiner.schedule import (
    CosineSchedule,
    LinearSchedule,
    apply_noise,
    diffusion_loss,
    masked_diffusion_step,
    prompt_response_maskable,
    sample_times,
)


def test_linear_weight_is_one_over_t():
    t = torch.tensor([0.1, 0.5, 1.0])
    assert torch.allclose(LinearSchedule().loss_weight(t), 1 / t)
    assert torch.allclose(LinearSchedule().mask_prob(t), t)


def test_cosine_weight_matches_numeric_derivative():
    s = CosineSchedule()
    t = torch.tensor([0.3], dtype=torch.float64)
    h = 1e-6
    numeric = -(s.alpha(t + h) - s.alpha(t - h)) / (2 * h) / (1 - s.alpha(t))
    assert torch.allclose(s.loss_weight(t), numeric, rtol=1e-5)


def test_times_in_range():
    t = sample_times(10000, eps=0.05, generator=torch.Generator().manual_seed(0))
    assert t.min() >= 0.05 and t.max() <= 1.0
    assert abs(t.mean().item() - 0.525) < 0.01


def test_stratified_times_cover_every_slice_once():
    t = sample_times(8, eps=0.0, generator=torch.Generator().manual_seed(1), stratified=True)
    slices = (t * 8).floor().long().tolist()
    assert slices == list(range(8))
    many = torch.cat([sample_times(8, eps=0.05, generator=torch.Generator().manual_seed(s),
                                   stratified=True) for s in range(1000)])
    assert many.min() >= 0.05 and many.max() <= 1.0
    assert abs(many.mean().item() - 0.525) < 0.01


def test_noise_masks_at_rate_t_and_only_maskable():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50, (4, 5000), generator=g)
    t = torch.tensor([0.1, 0.5, 0.9, 0.5])
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[3, :2500] = False
    noisy, masked = apply_noise(ids, t, 99, maskable, generator=g)
    rate = masked.float().mean(1)
    assert torch.allclose(rate[:3], t[:3], atol=0.02)
    assert not masked[3, :2500].any() and abs(masked[3, 2500:].float().mean() - 0.5) < 0.03
    assert (noisy[masked] == 99).all() and torch.equal(noisy[~masked], ids[~masked])


def test_loss_is_weighted_ce_over_masked_normalised_by_maskable():
    logits = torch.zeros(1, 4, 3)
    logits[0, :, 0] = 2.0
    targets = torch.tensor([[0, 1, 0, 2]])
    masked = torch.tensor([[True, True, False, False]])
    t = torch.tensor([0.5])
    out = diffusion_loss(logits, targets, masked, t)
    ce = torch.nn.functional.cross_entropy(logits[0], targets[0], reduction="none")
    expected = (ce[0] + ce[1]) * 2.0 / 4
    assert torch.allclose(out.loss, expected)
    assert out.masked_tokens == 2
    assert torch.allclose(out.masked_ce, (ce[0] + ce[1]) / 2)


def test_perfect_model_has_zero_loss_and_loss_backprops():
    ids = torch.randint(0, 10, (2, 16))
    emb = torch.nn.Parameter(torch.zeros(1))

    def oracle(noisy, attn):
        return torch.nn.functional.one_hot(ids, 11).float() * 50 + emb

    out = masked_diffusion_step(oracle, ids, torch.ones_like(ids), 10, generator=torch.Generator().manual_seed(1))
    assert out.loss.item() < 1e-6
    out.loss.backward()
    assert emb.grad is not None


def test_prompt_response_variant_masks_only_response():
    attn = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    m = prompt_response_maskable(attn, torch.tensor([2, 4]))
    assert m.tolist() == [[False, False, True, True, True, False], [False] * 4 + [True, True]]
    seen = []
    ids = torch.randint(0, 10, (2, 6))

    def spy(noisy, a):
        seen.append(noisy.clone())
        return torch.zeros(2, 6, 11)

    masked_diffusion_step(spy, ids, attn, 10, prompt_lengths=torch.tensor([2, 4]),
                          generator=torch.Generator().manual_seed(0))
    assert torch.equal(seen[0][0, :2], ids[0, :2]) and torch.equal(seen[0][1, :4], ids[1, :4])
