import pytest
import torch

from refiner.sampler import SamplerConfig, denoise
from tests.refiner.stubs import MASK, CopyLeftPredictor, FixedPredictor


def _problem(length=8, editable_at=(2, 3, 4, 5)):
    ids = torch.arange(length)[None].clone()
    ed = torch.zeros(1, length, dtype=torch.bool)
    ed[0, list(editable_at)] = True
    return ids, ed


def test_fills_expected_tokens_in_expected_steps_and_keeps_context():
    target = [20, 21, 22, 23, 24, 25, 26, 27]
    probs = [0.9, 0.9, 0.5, 0.8, 0.6, 0.7, 0.9, 0.9]
    pred = FixedPredictor(target, probs)
    ids, ed = _problem()
    order = []
    res = denoise(pred, ids, ed, config=SamplerConfig(steps=4),
                  on_step=lambda ev: order.append(ev.committed[0].nonzero().flatten().tolist()))
    assert res.ids[0].tolist() == [0, 1, 22, 23, 24, 25, 6, 7]  # context never changes
    assert res.nfe == 4
    assert order == [[3], [5], [4], [2]]  # most confident first
    # the mask token is never proposed: its mass is removed and the rest renormalised
    assert res.confidence[0, 3].item() == pytest.approx(0.8 / (1 - 0.2 / 31), abs=1e-5)


def test_even_schedule_two_per_step():
    pred = FixedPredictor([20] * 8)
    ids, ed = _problem()
    res = denoise(pred, ids, ed, config=SamplerConfig(steps=2))
    assert res.nfe == 2 and not (res.ids == MASK).any()


def test_threshold_commits_at_least_one_per_step():
    # every probability is below the threshold: exactly one commit per step
    pred = FixedPredictor([20] * 8, [0.3] * 8)
    ids, ed = _problem()
    res = denoise(pred, ids, ed, config=SamplerConfig(steps=64, threshold=0.9))
    assert res.nfe == 4
    # the step budget still bounds the passes: 4 masks in 2 steps
    res = denoise(pred, ids, ed, config=SamplerConfig(steps=2, threshold=0.9))
    assert res.nfe == 2
    # all above: one step
    pred = FixedPredictor([20] * 8, [0.95] * 8)
    res = denoise(pred, ids, ed, config=SamplerConfig(steps=64, threshold=0.9))
    assert res.nfe == 1


def test_blocks_go_left_to_right():
    # the right half is far more confident, but blocks force the left block first
    pred = FixedPredictor([20] * 8, [0.1, 0.1, 0.2, 0.2, 0.9, 0.9, 0.1, 0.1])
    ids, ed = _problem()
    seen = []
    denoise(pred, ids, ed, config=SamplerConfig(steps=4, block_length=2),
            on_step=lambda ev: seen.append((ev.block, ev.committed[0].nonzero().flatten().tolist())))
    blocks = [b for b, _ in seen]
    assert blocks == sorted(blocks)
    first_block_positions = {p for b, ps in seen if b == 0 for p in ps}
    assert first_block_positions == {2, 3}


def test_copy_left_needs_context_order_and_threshold_follows_it():
    pred = CopyLeftPredictor()
    ids = torch.tensor([[5, MASK, MASK, MASK, MASK, 0]])
    ed = ids == MASK
    res = denoise(pred, ids, ed, config=SamplerConfig(steps=8, threshold=0.9))
    assert res.ids[0].tolist() == [5, 6, 7, 8, 9, 0]
    assert res.nfe == 4  # only the left-most masked position is confident each step


def test_same_seed_same_output_with_temperature():
    pred = FixedPredictor([20] * 8, [0.3] * 8)
    ids, ed = _problem()
    cfg = SamplerConfig(steps=4, temperature=1.0, seed=7)
    a = denoise(pred, ids, ed, config=cfg).ids
    b = denoise(pred, ids, ed, config=cfg).ids
    c = denoise(pred, ids, ed, config=SamplerConfig(steps=4, temperature=1.0, seed=8)).ids
    assert torch.equal(a, b)
    assert not torch.equal(a, c)  # 0.3 leaves plenty of room for other tokens


@pytest.mark.parametrize("policy", ["low_confidence", "random", "entropy", "margin"])
def test_every_policy_fills_only_editable(policy):
    pred = FixedPredictor(list(range(20, 28)), [0.5, 0.6, 0.7, 0.4, 0.8, 0.3, 0.9, 0.2])
    ids, ed = _problem()
    res = denoise(pred, ids, ed, config=SamplerConfig(steps=3, remasking=policy, seed=0))
    assert res.ids[0].tolist() == [0, 1, 22, 23, 24, 25, 6, 7]


def test_batched_rows_with_padding_and_different_masks():
    pred = FixedPredictor(list(range(20, 28)))
    ids = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 30, 30, 30]])
    attn = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
    ed = torch.zeros_like(ids, dtype=torch.bool)
    ed[0, [1, 6]] = True
    ed[1, [0, 1, 2]] = True
    ed[1, 6] = True  # padding: must be ignored
    res = denoise(pred, ids, ed, attn, SamplerConfig(steps=8))
    assert res.ids[0].tolist() == [0, 21, 2, 3, 4, 5, 26, 7]
    assert res.ids[1].tolist() == [20, 21, 22, 3, 4, 30, 30, 30]
    # row 0 finishes after 2 steps, then only row 1 is fed
    assert pred.batch_sizes[0] == 2 and pred.batch_sizes[-1] == 1
    assert res.row_steps.tolist() == [2, 3]


def test_self_correction_remasks_weak_commits_within_budget():
    class Flip(FixedPredictor):
        # a committed token at position 2 looks wrong once its neighbours exist
        def __call__(self, input_ids, attention_mask):
            lg = super().__call__(input_ids, attention_mask)
            if input_ids[0, 3] != MASK:
                lg[:, 2] = torch.log(torch.full((lg.shape[-1],), 1e-3))
                lg[:, 2, 21] = 0.0
            return lg

    pred = Flip([20] * 8, [0.99, 0.99, 0.95, 0.6, 0.6, 0.6, 0.99, 0.99])
    ids, ed = _problem()
    res = denoise(pred, ids, ed, config=SamplerConfig(steps=4, correction_threshold=0.5, correction_budget=2))
    assert res.corrections[0].item() >= 1
    assert res.ids[0, 2].item() == 21
    assert not (res.ids == MASK).any()


def test_mask_and_suppressed_ids_are_never_proposed():
    pred = FixedPredictor([MASK] * 8, [0.99] * 8)
    ids, ed = _problem()
    res = denoise(pred, ids, ed, config=SamplerConfig(steps=4, suppress_ids=(0,)))
    filled = res.ids[0, 2:6]
    assert not (filled == MASK).any() and not (filled == 0).any()


def test_bad_config_and_shapes_raise():
    with pytest.raises(ValueError, match="steps"):
        SamplerConfig(steps=0)
    with pytest.raises(ValueError, match="remasking"):
        SamplerConfig(remasking="bogus")
    with pytest.raises(ValueError, match="threshold"):
        SamplerConfig(threshold=1.5)
    pred = FixedPredictor([20] * 8)
    with pytest.raises(ValueError, match="editable"):
        denoise(pred, torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 5, dtype=torch.bool))
    pred.max_length = 4
    with pytest.raises(ValueError, match="maximum length"):
        denoise(pred, torch.zeros(1, 8, dtype=torch.long), torch.ones(1, 8, dtype=torch.bool))


def _tiny_predictor():
    from refiner.model import RefinerModel, refiner_config
    from refiner.predictor import native_predictor

    torch.manual_seed(0)
    return native_predictor(RefinerModel(refiner_config("tiny")))


def test_cache_refreshed_every_step_equals_no_cache():
    pred = _tiny_predictor()
    ids = torch.randint(0, 56, (3, 40))
    ed = torch.zeros_like(ids, dtype=torch.bool)
    ed[0, 10:20] = True
    ed[1, 5:8] = True
    ed[2, 30:39] = True
    plain = denoise(pred, ids, ed, config=SamplerConfig(steps=8, block_length=4))
    exact = denoise(pred, ids, ed, config=SamplerConfig(steps=8, block_length=4, cache=True, cache_refresh=1))
    assert torch.equal(plain.ids, exact.ids) and plain.nfe == exact.nfe


def test_cached_sampler_keeps_context_and_fills_every_mask():
    pred = _tiny_predictor()
    ids = torch.randint(0, 56, (2, 40))
    ed = torch.zeros_like(ids, dtype=torch.bool)
    ed[0, 10:26] = True
    ed[1, 3:5] = True
    res = denoise(pred, ids, ed, config=SamplerConfig(steps=16, threshold=0.5, cache=True))
    assert torch.equal(res.ids[~ed], ids[~ed])
    assert not (res.ids == pred.mask_token_id).any()
    assert res.nfe <= 16


def test_factor_rule_commits_many_when_confident_and_one_when_not():
    ids, ed = _problem()
    confident = FixedPredictor([20] * 8, [0.97] * 8)
    res = denoise(confident, ids, ed, config=SamplerConfig(steps=64, factor=1.0))
    # (n + 1) * 0.03 < 1 for every n up to the 4 masks: one pass
    assert res.nfe == 1 and not (res.ids == MASK).any()
    unsure = FixedPredictor([20] * 8, [0.3] * 8)
    res = denoise(unsure, ids, ed, config=SamplerConfig(steps=64, factor=1.0))
    assert res.nfe == 4  # 2 * 0.7 >= 1: one token per pass
    # factor 0: (n + 1) * (1 - p) < 0 never holds, so the rule is off: the step budget alone decides
    res = denoise(confident, ids, ed, config=SamplerConfig(steps=4, factor=0.0))
    assert res.nfe == 4
    with pytest.raises(ValueError, match="factor"):
        SamplerConfig(factor=-0.5)


def test_early_exit_commits_the_rest_of_the_block_once_all_are_above_the_bar():
    ids, ed = _problem()
    sure = FixedPredictor([20] * 8, [0.8] * 8)
    # the even schedule alone takes a pass per mask; every mask is above 0.7 at the first pass
    assert denoise(sure, ids, ed, config=SamplerConfig(steps=4)).nfe == 4
    res = denoise(sure, ids, ed, config=SamplerConfig(steps=4, early_exit=0.7))
    assert res.nfe == 1 and not (res.ids == MASK).any()
    # one mask below the bar: no exit, the schedule goes on
    mixed = FixedPredictor([20] * 8, [0.8, 0.8, 0.5, 0.8, 0.8, 0.8, 0.8, 0.8])
    assert denoise(mixed, ids, ed, config=SamplerConfig(steps=4, early_exit=0.7)).nfe > 1
    with pytest.raises(ValueError, match="early_exit"):
        SamplerConfig(early_exit=1.5)
