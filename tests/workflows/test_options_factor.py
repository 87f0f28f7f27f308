"""The factor rule as a request option: declared once on Denoising, bounded, and a CLI flag of every pipeline."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from pydantic import ValidationError

from services.commands.edit import parsed_options, register
from workflows.options import MAX_FACTOR, ComplianceParams, InfillParams, RepairParams, ReviseParams


def cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("params", [InfillParams, ReviseParams, ComplianceParams, RepairParams])
def test_factor_is_bounded_and_defaults_to_the_models_own(params: type[InfillParams]) -> None:
    assert params().factor is None  # the model's calibrated value
    assert params(factor=0.0).factor == 0.0 and params(factor=MAX_FACTOR).factor == MAX_FACTOR
    for bad in (-0.5, MAX_FACTOR + 1):
        with pytest.raises(ValidationError, match="factor"):
            params(factor=bad)


def test_factor_is_a_cli_flag_checked_like_the_field() -> None:
    assert parsed_options(InfillParams, cli("infill", "--factor", "2.5")).factor == 2.5
    assert parsed_options(RepairParams, cli("repair", "--factor", "1")).factor == 1.0
    with pytest.raises(ValueError, match="--factor"):
        parsed_options(ReviseParams, cli("revise", "--factor", "-1"))


def test_a_requests_factor_reaches_the_sampler(tiny_refiner: Any) -> None:
    """The tiny random model is never sure (p ~ 1/vocab), so factor 16 commits up to 14 tokens
    per step where factor 0 (off) commits the even schedule's one per step."""
    from workflows.engine import Pipelines

    def nfe(factor: float) -> int | None:
        params = InfillParams(mode="diffusion", max_tokens=8, steps=8, candidates=False, factor=factor)
        return Pipelines(tiny_refiner).infill("x = ", "\n", params).result.nfe

    assert nfe(0.0) == 8 and nfe(MAX_FACTOR) == 1


def test_a_request_model_carries_the_factor() -> None:
    from workflows.requests import CompletionRequest

    body = CompletionRequest(prompt="x = ", factor=3.0)
    assert body.params().factor == 3.0
    with pytest.raises(ValidationError, match="factor"):
        CompletionRequest(prompt="x = ", factor=MAX_FACTOR + 1)
