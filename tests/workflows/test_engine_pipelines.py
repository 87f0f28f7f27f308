"""The engine seam's pipelines: which models a request runs on, and the outcome's token counts."""

from __future__ import annotations

from typing import Any

import pytest

from workflows.engine import DRAFTER, REFINER, Pipelines, infill_needs, revise_needs
from workflows.options import InfillParams, RepairParams, ReviseParams


def test_each_infill_mode_needs_its_models() -> None:
    assert infill_needs(InfillParams(mode="ar", candidates=False)) == (DRAFTER,)
    assert infill_needs(InfillParams(mode="ar")) == (DRAFTER, REFINER)  # the refiner helps rank the drafts
    assert infill_needs(InfillParams(mode="diffusion")) == (REFINER,)
    assert infill_needs(InfillParams(mode="hybrid")) == (DRAFTER, REFINER)  # the lock order


def test_a_revision_needs_the_drafter_to_score_the_text_itself_or_check_proofreading() -> None:
    unproofread = {"spelling": False, "word_order": False, "missing_words": False}
    assert revise_needs(ReviseParams(detect="both", **unproofread)) == (DRAFTER, REFINER)
    assert revise_needs(ReviseParams(detect="both", **unproofread), prescored=True) == (REFINER,)
    assert revise_needs(ReviseParams(detect="drafter", spans=[(0, 1)])) == (REFINER,)
    assert revise_needs(ReviseParams(detect="refiner", **unproofread)) == (REFINER,)
    assert revise_needs(ReviseParams(detect="refiner")) == (DRAFTER, REFINER)  # it checks proofreading's fixes
    assert revise_needs(ReviseParams(detect="refiner", language="python")) == (REFINER,)


def test_pipelines_refuse_a_missing_model_as_bad_input(tiny_drafter: Any) -> None:
    with pytest.raises(ValueError, match="refiner, a drafter or both"):
        Pipelines(None, None)
    drafter_only = Pipelines(None, tiny_drafter)
    with pytest.raises(ValueError, match="no refiner"):
        drafter_only.repair("x = (\n", RepairParams())
    assert drafter_only.count("x = 1", "") == len(tiny_drafter.encode("x = 1"))


def test_an_outcome_counts_input_and_output_tokens_with_the_refiners_tokenizer(tiny_refiner: Any) -> None:
    out = Pipelines(tiny_refiner).infill("x = ", "\n", InfillParams(mode="diffusion", max_tokens=3, steps=2))
    assert out.prompt_tokens == len(tiny_refiner.encode("x = ")[0]) + len(tiny_refiner.encode("\n")[0])
    assert out.completion_tokens == len(out.result.tokens) and out.result.mode == "diffusion"
    assert out.result.audit is not None and out.result.audit.parameters["steps"] == 2
