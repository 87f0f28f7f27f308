"""Both ONNX backends stay within the trained context, and load bfloat16 shards.

The backends only replace the network: generation, scoring and windowing are the shared
Python code. These tests check that what reaches each ONNX session fits the model's
``max_position_embeddings`` on input longer than it, and that an export traced from a
bfloat16-sharded checkpoint matches the float32 torch model it is loaded as.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from drafter import GenerationParams
from refiner.editing import SpanEdit, fill_spans
from refiner.onnx_backend import load_onnx_predictor
from refiner.predictor import load_predictor
from refiner.sampler import SamplerConfig
from refiner.scoring import window_scores

pytest.importorskip("onnxruntime")
from drafter.onnx_backend import OnnxDrafter, load_drafter
from refiner.onnx_backend import OnnxMaskPredictor

DRAFTER_CONTEXT = 128  # conftest's tiny drafter
REFINER_CONTEXT = 256  # the tiny refiner preset


class SessionRecorder:
    """Stands in for an ONNX Runtime session, recording the positions each run is fed."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.lengths: list[int] = []

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def get_providers(self) -> Any:
        return self.session.get_providers()

    def run(self, names: Any, feeds: dict[str, Any]) -> Any:
        if "position_ids" in feeds:  # the drafter: positions and the tokens a row attends to
            self.lengths.append(int(feeds["position_ids"].max()) + 1)
            self.lengths.append(int(feeds["attention_mask"].sum(-1).max()))
        else:  # the refiner: the window length
            self.lengths.append(int(feeds["input_ids"].shape[1]))
        return self.session.run(names, feeds)


@pytest.fixture(scope="module")
def onnx_drafter(drafter_dir: Path) -> OnnxDrafter:
    d = load_drafter(drafter_dir, "onnx")
    assert isinstance(d, OnnxDrafter) and d.context_length == DRAFTER_CONTEXT
    return d


def test_onnx_drafter_generates_and_scores_within_the_context(onnx_drafter: OnnxDrafter) -> None:
    rec = SessionRecorder(onnx_drafter.network.session)
    onnx_drafter.network.session = rec
    try:
        long_prompt = [10 + i % 500 for i in range(DRAFTER_CONTEXT - 6)]
        drafts = onnx_drafter.generate_batch([long_prompt, [11, 12]], GenerationParams(max_new_tokens=30))
        assert drafts[0].finish_reason in ("length", "eos") and len(drafts[0].token_ids) <= 7
        assert drafts[1].token_ids
        score = onnx_drafter.score([10 + (i * 7) % 500 for i in range(3 * DRAFTER_CONTEXT)])
        assert len(score.logprobs) == 3 * DRAFTER_CONTEXT
        assert rec.lengths and max(rec.lengths) <= DRAFTER_CONTEXT
    finally:
        onnx_drafter.network.session = rec.session


def test_onnx_refiner_windows_fit_the_context(refiner_dir: Path) -> None:
    pred, _ = load_onnx_predictor(refiner_dir)
    assert isinstance(pred, OnnxMaskPredictor) and pred.max_length == REFINER_CONTEXT
    rec = SessionRecorder(pred.session)
    pred.session = rec
    doc = [i % 60 for i in range(3 * REFINER_CONTEXT)]
    edits = [SpanEdit.remask(10, 20), SpanEdit.remask(400, 405), SpanEdit(700, 700, 6)]
    res = fill_spans(pred, [doc], [edits], pad_id=62, config=SamplerConfig(steps=3))[0]
    assert [len(s.raw_tokens) for s in res.spans] == [10, 5, 6]
    scores = window_scores(pred, doc, [(0, len(doc))], context=64, pad_id=62)
    assert bool(torch.isfinite(scores).all())
    assert rec.lengths and max(rec.lengths) <= REFINER_CONTEXT


def test_a_bf16_sharded_refiner_exports_and_matches_float32(tmp_path: Path) -> None:
    from refiner.model import RefinerModel, refiner_config

    torch.manual_seed(0)
    model = RefinerModel(refiner_config("tiny"))
    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(tmp_path, max_shard_size="10KB")
    eager, _ = load_predictor(tmp_path)
    onnx, _ = load_onnx_predictor(tmp_path)
    ids = torch.randint(0, 60, (2, 40))
    mask = torch.ones_like(ids)
    assert float((onnx(ids, mask) - eager(ids, mask)).abs().max()) < 1e-3
