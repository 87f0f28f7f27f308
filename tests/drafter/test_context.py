"""The drafter never sees more positions than its config's context, on every path.

A tiny Llama with ``max_position_embeddings = 32`` runs generation (alone and batched with
rows that end at different times) and scoring of texts far longer than 32 tokens; a recorder
around the model's forward checks every call, and the results must still be complete.
"""

from __future__ import annotations

import math

import pytest
import torch

from drafter import Drafter, GenerationParams
from drafter.score import plan_windows
from tests.drafter.conftest import PositionRecorder, make_tokenizer, tiny_llama

SMALL = 32


@pytest.fixture()
def small() -> tuple[Drafter, PositionRecorder]:
    """A fresh 32-position drafter and the recorder on its model (fresh: the recorder)."""
    tok = make_tokenizer()
    model = tiny_llama(len(tok), max_position_embeddings=SMALL, eos_token_id=None,
                       pad_token_id=tok.pad_token_id)
    d = Drafter(model, tok, name="small")
    return d, PositionRecorder(d.model)


def test_a_batch_never_passes_the_context_while_rows_finish_apart(small) -> None:
    d, rec = small
    d.eos_ids = frozenset()  # the budgets alone end these drafts: lengths are known
    long_prompt = list(range(10, 10 + SMALL - 4))  # 28 tokens: room for 5 more
    short_prompt = [11, 12, 13]
    params = GenerationParams(max_new_tokens=40)
    drafts = d.generate_batch([long_prompt, short_prompt], params)
    assert rec.positions and rec.most <= SMALL
    assert drafts[0].finish_reason == "length" and len(drafts[0].token_ids) == SMALL - 28 + 1
    assert len(drafts[1].token_ids) == SMALL - 3 + 1  # its own budget, not the long row's
    # the row that finished first rode along masked: the other row is what it is alone
    rec.positions.clear()
    alone = d.generate(short_prompt, params)
    assert alone.token_ids == drafts[1].token_ids
    assert alone.logprobs == pytest.approx(drafts[1].logprobs, abs=1e-5)
    assert rec.most <= SMALL


def test_a_stream_stops_at_the_context(small) -> None:
    d, rec = small
    d.eos_ids = frozenset()
    stream = d.stream(list(range(10, 40)), GenerationParams(max_new_tokens=20))
    tokens = list(stream)
    assert stream.finish_reason == "length" and len(tokens) == 3
    assert rec.most <= SMALL


def test_a_text_longer_than_the_context_is_scored_in_windows(small) -> None:
    d, rec = small
    ids = [10 + (i * 7) % 200 for i in range(5 * SMALL)]
    score = d.score(ids)
    assert rec.positions and rec.most <= SMALL
    assert len(score.logprobs) == len(ids) == len(score.entropies)
    assert all(math.isfinite(x) for x in score.logprobs + score.entropies)
    # the first window is the text's start: its tokens score as the start scored alone
    head = d.score(ids[: SMALL - 1])
    assert score.logprobs[: SMALL - 1] == pytest.approx(head.logprobs, abs=1e-5)
    # a later token is scored with half a context of text before it, not from scratch
    start = [min(d.eos_ids)] if d.eos_ids else []
    windows = plan_windows(len(start) + len(ids), 0, SMALL)
    w = windows[2]
    window_ids = (start + ids)[w.start : w.end]
    with torch.inference_mode():
        logits = d.model(input_ids=torch.tensor([window_ids])).logits[0].float()
    k = w.first - w.start  # the first prediction this window keeps
    expected = torch.log_softmax(logits[k], -1)[window_ids[k + 1]]
    assert score.logprobs[w.first + 1 - len(start)] == pytest.approx(float(expected), abs=1e-5)


@pytest.mark.parametrize(("length", "first", "context"), [(100, 0, 32), (33, 0, 32), (97, 3, 16), (9, 0, 3)])
def test_score_windows_cover_every_prediction_once_with_context(length, first, context) -> None:
    windows = plan_windows(length, first, context)
    kept = [k for w in windows for k in range(w.first, w.end - 1)]
    assert kept == list(range(first, length - 1))  # every prediction once, in order
    assert all(w.end - w.start <= context for w in windows)
    overlap = min(context // 2, context - 2)
    assert all(w.first - w.start >= overlap for w in windows[1:])


def test_plan_windows_of_a_text_that_fits_is_one_pass() -> None:
    assert plan_windows(20, 0, 32) == [(0, 20, 0)]
    assert plan_windows(20, 0, None) == [(0, 20, 0)]
    assert plan_windows(1, 0, 32) == []  # one token and no start: nothing to predict
    with pytest.raises(ValueError, match="context of 1 tokens"):
        plan_windows(10, 0, 1)


def test_forward_refuses_a_position_past_the_context(small) -> None:
    d, _ = small
    ids = torch.tensor([[10, 11]])
    with pytest.raises(ValueError, match=rf"position {SMALL} is past the context.*{SMALL} tokens"):
        d.forward(ids, torch.ones_like(ids), torch.tensor([[SMALL - 1, SMALL]]), None)
