"""Request bodies of the item endpoints, validated with the workflows' parameter models.

Each body model extends the workflow's own parameter model (so every option, bound and
description is the pipeline's, and unknown fields are refused) with the input itself
(``text``, ``code``, ``prompt`` + ``suffix``, ``rules``). ``params()`` hands back the plain
parameter model the pipeline takes. The same models can serve the HTTP API's synchronous
endpoints, so a batch line and a direct request are checked alike.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from workflows.compliance import ComplianceParams
from workflows.infill import InfillParams
from workflows.repair import RepairParams
from workflows.revise import ReviseParams
from workflows.rules import RuleSet, parse_rules


def _rules(v: dict[str, Any] | None) -> dict[str, Any] | None:
    if v is not None:
        parse_rules(v)  # RuleSetError (a ValueError) names the rule and field
    return v


class ReviseBody(ReviseParams):
    """``/v1/revise``: a document or code block; optional spans; optional rule set."""

    text: str = Field(min_length=1, description="the document or code to revise")
    rules: dict[str, Any] | None = Field(None, description="a compliance rule set; when given it is applied instead of a free revision")

    @field_validator("rules")
    @classmethod
    def _check_rules(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return _rules(v)

    def params(self) -> ReviseParams:
        return ReviseParams(**self.model_dump(exclude={"text", "rules"}))

    def compliance(self) -> tuple[RuleSet, ComplianceParams]:
        """The rule set and rule-application options, when ``rules`` is set."""
        assert self.rules is not None
        shared = {"steps": self.steps, "threshold": self.threshold, "window": self.window, "seed": self.seed}
        return parse_rules(self.rules), ComplianceParams.model_validate(shared)


class RepairBody(RepairParams):
    """``/v1/repair``: code that does not parse."""

    code: str = Field(min_length=1, description="the code to repair")

    def params(self) -> RepairParams:
        return RepairParams(**self.model_dump(exclude={"code"}))


class ComplianceBody(ComplianceParams):
    """``/v1/compliance``: a document and the rule set to apply to it."""

    text: str = Field(min_length=1, description="the document to check")
    rules: dict[str, Any] = Field(description="the rule set (the YAML rule file's structure, as JSON)")

    @field_validator("rules")
    @classmethod
    def _check_rules(cls, v: dict[str, Any]) -> dict[str, Any]:
        _rules(v)
        return v

    def params(self) -> ComplianceParams:
        return ComplianceParams(**self.model_dump(exclude={"text", "rules"}))

    def rule_set(self) -> RuleSet:
        return parse_rules(self.rules)


class CompletionBody(InfillParams):
    """``/v1/completions`` (OpenAI legacy, ``prompt`` + ``suffix``) and ``/v1/fim/completions``."""

    model: str | None = Field(None, description="model name; informational (the worker's models answer)")
    prompt: str = Field(description="text before the gap")
    suffix: str = Field("", description="text after the gap")
    stop: str | list[str] | None = Field(None, description="string(s) that end the draft")  # type: ignore[assignment]
    stream: bool = Field(False, description="must be false in a batch job")

    @field_validator("stream")
    @classmethod
    def _no_stream(cls, v: bool) -> bool:
        if v:
            raise ValueError("streaming is not available in batch jobs")
        return v

    def params(self) -> InfillParams:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return InfillParams(**self.model_dump(exclude={"model", "prompt", "suffix", "stop", "stream"}), stop=stop)


BODY_MODELS: dict[str, type[BaseModel]] = {
    "/v1/revise": ReviseBody,
    "/v1/repair": RepairBody,
    "/v1/compliance": ComplianceBody,
    "/v1/completions": CompletionBody,
    "/v1/fim/completions": CompletionBody,
}
