"""Each option is declared once: the request models and the CLI flags take theirs from workflows.options."""

from __future__ import annotations

import argparse
from typing import Any, get_args

import pytest
from pydantic import BaseModel

import client.types
from services.commands.edit import parsed_options, register
from workflows.limits import CEILING_STEPS
from workflows.options import (
    DEFAULTS,
    INFILL_MAX_TOKENS,
    ComplianceParams,
    Denoising,
    InfillParams,
    Kind,
    Mode,
    RepairParams,
    ReviseParams,
)
from workflows.requests import CompletionRequest, ComplianceRequest, FimRequest, RepairRequest, ReviseRequest

RULES = {"name": "house", "rules": [{"id": "say-customer", "type": "banned_phrase", "phrases": ["client"],
                                     "preferred": "customer"}]}
# each request model, a minimal valid body, and the options model of its pipeline
REQUESTS: list[tuple[type[BaseModel], dict[str, Any], type[BaseModel]]] = [
    (CompletionRequest, {"prompt": "a"}, InfillParams),
    (FimRequest, {"prompt": "a"}, InfillParams),
    (ReviseRequest, {"text": "a"}, ReviseParams),
    (RepairRequest, {"code": "a"}, RepairParams),
    (ComplianceRequest, {"text": "a", "rules": RULES}, ComplianceParams),
]
KINDS: dict[type[BaseModel], Kind] = {InfillParams: "infill", ReviseParams: "revise", ComplianceParams: "compliance",
                                      RepairParams: "repair"}


def cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(("request_model", "body", "options"), REQUESTS)
def test_a_request_field_is_its_pipelines_option(request_model: type[BaseModel], body: dict[str, Any],
                                                 options: type[BaseModel]) -> None:
    # the wire formats' own shapes: stop may be one string; a Mistral FIM request's max_tokens may be null
    shaped = {"stop", "max_tokens"} if request_model is FimRequest else {"stop"}
    shared = [n for n in request_model.model_fields if n in options.model_fields and n not in shaped]
    assert "steps" in shared
    for name in shared:
        ours, theirs = request_model.model_fields[name], options.model_fields[name]
        assert (ours.default, ours.description, ours.metadata, ours.json_schema_extra) == \
               (theirs.default, theirs.description, theirs.metadata, theirs.json_schema_extra), name


@pytest.mark.parametrize(("request_model", "body", "options"), REQUESTS)
def test_a_request_that_leaves_options_out_gets_its_kinds_defaults(request_model: type[BaseModel],
                                                                   body: dict[str, Any],
                                                                   options: type[BaseModel]) -> None:
    params = request_model.model_validate(body).params()  # type: ignore[attr-defined]
    assert params == options()  # every option, the ones the request cannot set too
    kind = DEFAULTS[KINDS[options]]
    assert (params.steps, params.seed) == (kind.steps, kind.seed)


def test_the_kinds_defaults_and_the_one_step_ceiling() -> None:
    assert {k: d.steps for k, d in DEFAULTS.items()} == {"infill": 4, "revise": 16, "compliance": 16, "repair": 8}
    for options in KINDS:
        assert issubclass(options, Denoising)  # steps, threshold and seed: declared once
        assert options.model_json_schema()["properties"]["steps"]["maximum"] == CEILING_STEPS
    assert FimRequest(prompt="a").params().max_tokens == CompletionRequest(prompt="a").max_tokens == INFILL_MAX_TOKENS


def test_a_request_passes_every_option_it_sets() -> None:
    fim = FimRequest(prompt="a", random_seed=7, stop="\n", mode="diffusion", steps=2, temperature=0.5)
    assert fim.params() == InfillParams(seed=7, stop=["\n"], mode="diffusion", steps=2, temperature=0.5)
    revise = ReviseRequest(text="a", rules=RULES, steps=3, threshold=None, seed=None)
    assert revise.compliance()[1] == ComplianceParams(steps=3, threshold=None, seed=None)


def test_the_sdk_and_the_server_know_the_same_modes() -> None:
    assert get_args(client.types.Mode) == get_args(Mode)


def test_cli_flags_left_out_take_the_defaults_of_a_direct_request() -> None:
    assert parsed_options(InfillParams, cli("infill")) == CompletionRequest(prompt="a").params()
    assert parsed_options(ReviseParams, cli("revise")) == ReviseRequest(text="a").params()
    assert parsed_options(ComplianceParams, cli("revise", "--rules", "r.yaml")) == \
        ReviseRequest(text="a", rules=RULES).compliance()[1]
    assert parsed_options(RepairParams, cli("repair")) == RepairRequest(code="a").params()


def test_cli_flags_are_generated_from_the_fields() -> None:
    args = cli("infill", "--mode", "ar", "--max-tokens", "5", "--threshold", "none", "--no-cache",
               "--stop", "\n", "--stop", ";", "--seed", "3", "--top-p", "0.5")
    assert parsed_options(InfillParams, args) == InfillParams(mode="ar", max_tokens=5, threshold=None, cache=False,
                                                              stop=["\n", ";"], seed=3, top_p=0.5)
    revise = parsed_options(ReviseParams, cli("revise", "--no-spelling", "--detect", "both", "--language", "prose"))
    assert (revise.spelling, revise.detect, revise.language) == (False, "both", "prose")
    rules = parsed_options(ComplianceParams, cli("revise", "--rules", "r.yaml", "--fluency-margin", "0.2",
                                                 "--steps", "5"))
    assert (rules.fluency_margin, rules.steps) == (0.2, 5)


def test_cli_flags_refuse_what_the_request_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli("infill", "--mode", "fast")
    assert "invalid choice: 'fast'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--steps: Input should be less than or equal to 1024"):
        parsed_options(RepairParams, cli("repair", "--steps", "5000"))
