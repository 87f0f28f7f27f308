"""remask's sampler against a reference of LLaDA's sampling loop, on a tiny random refiner.

The reference is written here from the LLaDA paper's description (semi-autoregressive
blocks, low-confidence remasking, greedy): the answer starts fully masked after the prompt;
blocks are denoised left to right, each in ``steps / blocks`` steps; at each step the whole
sequence is predicted, and of the current block's masked positions the ones whose greedy
token is most probable are committed, as many as the schedule says: the block's masks split
evenly over its steps, the first ``masks % steps`` steps taking one more. The mask token is
never a prediction (remask bans it; the reference does the same, so the two can agree
exactly).
"""

from __future__ import annotations

import pytest
import torch

from refiner.model import RefinerModel, refiner_config
from refiner.predictor import MaskPredictor, native_predictor
from refiner.sampler import SamplerConfig, StepEvent, denoise


def transfer_schedule(masks: int, steps: int) -> list[int]:
    """Tokens committed at each of ``steps`` steps of a block holding ``masks`` masks."""
    return [masks // steps + (1 if i < masks % steps else 0) for i in range(steps)]


def reference_generate(
    predictor: MaskPredictor, prompt: list[int], gen_length: int, block_length: int, steps: int
) -> tuple[list[int], list[list[int]]]:
    """LLaDA-style greedy generation; returns the ids and the positions committed per step."""
    assert gen_length % block_length == 0
    blocks = gen_length // block_length
    assert steps % blocks == 0
    mask = predictor.mask_token_id
    x = torch.tensor([[*prompt, *[mask] * gen_length]])
    committed: list[list[int]] = []
    for b in range(blocks):
        lo = len(prompt) + b * block_length
        hi = lo + block_length
        for count in transfer_schedule(block_length, steps // blocks):
            logits = predictor(x, torch.ones_like(x))[0].float().clone()
            logits[:, mask] = float("-inf")
            probs = torch.softmax(logits, dim=-1)
            guess = probs.argmax(dim=-1)
            confidence = probs.gather(-1, guess[:, None]).squeeze(-1)
            candidate = torch.zeros_like(confidence, dtype=torch.bool)
            candidate[lo:hi] = x[0, lo:hi] == mask
            confidence = torch.where(candidate, confidence, torch.tensor(float("-inf")))
            picked = confidence.topk(count).indices
            x[0, picked] = guess[picked]
            committed.append(sorted(picked.tolist()))
    return x[0].tolist(), committed


@pytest.fixture(scope="module")
def predictor() -> MaskPredictor:
    torch.manual_seed(0)
    return native_predictor(RefinerModel(refiner_config("tiny")))


def _remask_generate(
    predictor: MaskPredictor, prompts: list[list[int]], gen_length: int, block_length: int, steps: int
) -> tuple[torch.Tensor, list[tuple[int, list[list[int]]]]]:
    mask = predictor.mask_token_id
    ids = torch.tensor([[*p, *[mask] * gen_length] for p in prompts])
    editable = ids == mask
    events: list[tuple[int, list[list[int]]]] = []

    def on_step(ev: StepEvent) -> None:
        events.append((ev.block, [row.nonzero().flatten().tolist() for row in ev.committed]))

    config = SamplerConfig(steps=steps, block_length=block_length, remasking="low_confidence")
    result = denoise(predictor, ids, editable, config=config, on_step=on_step)
    return result.ids, events


@pytest.mark.parametrize(("gen_length", "block_length", "steps"), [
    (32, 32, 32),  # one block, one token per step (LLaDA's plain setting)
    (32, 8, 16),  # four blocks of four steps: two tokens per step
    (30, 10, 12),  # three blocks of four steps over ten masks: 3, 3, 2, 2
])
def test_greedy_low_confidence_matches_the_reference(predictor, gen_length, block_length, steps) -> None:
    prompt = [5, 17, 3, 42, 8, 11, 29, 2]
    want_ids, want_steps = reference_generate(predictor, prompt, gen_length, block_length, steps)
    got_ids, events = _remask_generate(predictor, [prompt], gen_length, block_length, steps)

    assert got_ids[0].tolist() == want_ids
    assert [rows[0] for _, rows in events] == want_steps
    per_block = steps // (gen_length // block_length)
    schedule = transfer_schedule(block_length, per_block) * (gen_length // block_length)
    assert [len(rows[0]) for _, rows in events] == schedule
    assert [block for block, _ in events] == [b for b in range(gen_length // block_length) for _ in range(per_block)]


def test_a_batch_denoises_each_row_as_alone(predictor) -> None:
    prompts = [[5, 17, 3, 42, 8, 11, 29, 2], [9, 9, 30, 1, 14, 7, 21, 6]]
    got_ids, _ = _remask_generate(predictor, prompts, 16, 8, 8)
    for row, prompt in zip(got_ids.tolist(), prompts):
        assert row == reference_generate(predictor, prompt, 16, 8, 8)[0]


def test_transfer_schedule_spreads_the_remainder_first() -> None:
    assert transfer_schedule(10, 4) == [3, 3, 2, 2]
    assert transfer_schedule(8, 8) == [1] * 8
    assert sum(transfer_schedule(37, 5)) == 37
