"""The requests of the editing endpoints, documented field by field: one model per endpoint.

The HTTP API parses its bodies with these models (:mod:`services.api.schemas` re-exports
them, and they make up /openapi.json) and a batch job validates each line's body with the
very same ones (:mod:`workflows.queue.bodies`), so a request means the same and is bounded
the same on both paths:

* static bounds (``temperature <= 2``, ``n == 1``, a seed below 2**53) sit on the fields;
* the operator's limits (text length, spans, ``max_tokens``, ``steps``) are named on the
  fields with :func:`workflows.limits.limited` and applied by :meth:`RequestModel.check`;
* every string anywhere in a request (a rule's phrase too) must be valid Unicode and every
  number finite: one validator of the base class refuses a lone surrogate or an Infinity/NaN
  and names the field, so no pipeline, tokenizer or JSON encoder meets one.

Batch validation passes :data:`BATCH` as the validation context: a batch line cannot stream
or echo. ``params()`` turns a request into the parameter model its pipeline takes.

Every option a request shares with its pipeline (``steps``, ``threshold``, ``seed``, ...) is the
pipeline's own field, taken from :mod:`workflows.options` with :func:`~workflows.options.option`:
its bounds, default and description are written there once, and ``params()`` copies the
request's value of each such field, so an option left out of a request takes the very
default it takes on the CLI. ``params(limits)`` changes nothing with the operator's limits:
:meth:`RequestModel.check` refused the request over them already, and a pipeline's own caps
(``max_chars``) keep their defaults, so a direct request and a batch line (whose worker holds
no limits) record the same parameters in their audit records.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from workflows.limits import Limits, RequestRefused, check_limits, limited
from workflows.options import (
    INFILL_MAX_TOKENS,
    ComplianceParams,
    Detect,
    InfillParams,
    Mode,
    RepairParams,
    ReviseParams,
    option,
)
from workflows.rules import RuleSet, RuleSetError, parse_rules
from workflows.syntax import normalize_language

MAX_STOP = 8  # stop strings per request; each is matched on every drafted token
BATCH: dict[str, Any] = {"batch": True}  # validation context of a batch line
Options = TypeVar("Options", bound=BaseModel)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _bad_value(value: Any) -> PydanticCustomError | None:
    """The first lone surrogate or non-finite number inside ``value`` (any JSON shape), or None.

    Iterative, so a deeply nested rule set cannot exhaust the stack. The error names where
    inside the value it is (``rules[0].phrases[1]``) and never repeats the bad text.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, v = stack.pop()
        of = f" of {where}" if where else ""
        if isinstance(v, str):
            m = _SURROGATE.search(v)
            if m:
                return PydanticCustomError(
                    "invalid_unicode", "a lone surrogate (U+{code}) at character {at}{of}: send valid Unicode text",
                    {"code": f"{ord(m.group()):04X}", "at": m.start(), "of": of})
        elif isinstance(v, float) and not math.isfinite(v):
            return PydanticCustomError("finite_number", "{value}{of} is not a finite number",
                                       {"value": str(v), "of": of})
        elif isinstance(v, dict):
            for k, x in reversed(list(v.items())):
                key = str(k)
                if _SURROGATE.search(key):
                    return PydanticCustomError("invalid_unicode",
                                               "a key{of} holds a lone surrogate: send valid Unicode text", {"of": of})
                stack.append((f"{where}.{key}" if where else key, x))
        elif isinstance(v, (list, tuple)):
            stack.extend((f"{where}[{i}]", x) for i, x in reversed(list(enumerate(v))))
    return None


def _stop_list(v: str | list[str] | None) -> list[str]:
    """``stop`` as a list; empty strings would end every draft at once and are refused."""
    stops = [v] if isinstance(v, str) else list(v or [])
    if len(stops) > MAX_STOP:
        raise ValueError(f"at most {MAX_STOP} stop strings")
    if any(s == "" for s in stops):
        raise ValueError("stop strings must not be empty")
    return stops


class RequestModel(BaseModel):
    """What every request shares: unknown fields refused, valid text and finite numbers only."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    # fields whose contents a model of their own checks (and names better), e.g. a job's lines
    unchecked: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _valid_unicode_and_finite(cls, v: Any, info: ValidationInfo) -> Any:
        # before the field's own parsing: a union field (str | list[str]) or a free-form one
        # (a rule set) would let a surrogate through to the tokenizer or the JSON encoder
        if info.field_name in cls.unchecked:
            return v
        bad = _bad_value(v)
        if bad is not None:
            raise bad
        return v

    @field_validator("stream", "echo", check_fields=False)
    @classmethod
    def _not_in_batch(cls, v: bool, info: ValidationInfo) -> bool:
        if v and isinstance(info.context, dict) and info.context.get("batch"):
            what = "streaming" if info.field_name == "stream" else info.field_name
            raise ValueError(f"{what} is not available in batch jobs")
        return v

    def check(self, limits: Limits) -> None:
        """Raise :class:`~workflows.limits.RequestRefused` for what the operator's limits refuse."""
        check_limits(self, limits)

    def options(self, model: type[Options], **given: Any) -> Options:
        """``model`` with every option this request set, then ``given`` ones.

        ``given`` holds what a request names or shapes differently (a FIM request's
        ``random_seed``). An option the request left out keeps the model's default, the one
        the CLI and every other way in use (a revise request's rules get the compliance kind's).
        """
        return model(**{**{name: getattr(self, name) for name in self.model_fields_set if name in model.model_fields},
                        **given})


class StreamOptions(RequestModel):
    """OpenAI ``stream_options``."""

    include_usage: bool = Field(False, description="send a last chunk with usage and empty choices before [DONE]")


# fields of the two fill-in-the-middle requests that their pipeline's options do not have
Stop = Annotated[str | list[str] | None, Field(description=f"up to {MAX_STOP} strings that end the insertion")]
Suffix = Annotated[str | None, Field(validate_default=True, json_schema_extra=limited("max_text_chars"),
                                     description="text after the cursor; null or empty: plain continuation")]
Stream = Annotated[bool, Field(description="answer as server-sent events ending in 'data: [DONE]'")]


class _Infill(RequestModel):
    """Checks and conversions the two fill-in-the-middle requests share (their fields differ)."""

    if TYPE_CHECKING:  # declared by each subclass, in its own order (and type, for prompt)
        prompt: str | list[str]
        suffix: str | None
        stop: str | list[str] | None

    @field_validator("suffix", check_fields=False)
    @classmethod
    def _suffix_text(cls, v: str | None) -> str:
        return v or ""

    @field_validator("stop", check_fields=False)
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> list[str]:
        return _stop_list(v)

    @property
    def stops(self) -> list[str]:
        return _stop_list(self.stop)

    def check(self, limits: Limits) -> None:
        super().check(limits)
        if not self.prompt and not self.suffix:
            raise RequestRefused("prompt", "prompt and suffix are both empty: there is no context to fill",
                                 "empty_context")


class CompletionRequest(_Infill):
    """OpenAI legacy completion with fill-in-the-middle: the text between prompt and suffix."""

    model: str | None = Field(None, description="model id; any value is accepted and echoed back (see /v1/models)")
    prompt: str | list[str] = Field(description="text before the cursor; a list must hold exactly one string",
                                    json_schema_extra=limited("max_text_chars"))
    suffix: Suffix = None
    max_tokens: int = option(InfillParams, "max_tokens")
    temperature: float = option(InfillParams, "temperature")
    top_p: float = option(InfillParams, "top_p")
    stop: Stop = None
    seed: int | None = option(InfillParams, "seed")
    factor: float | None = option(InfillParams, "factor")
    stream: Stream = False
    stream_options: StreamOptions | None = Field(None, description="options of a streamed answer")
    n: int = Field(1, ge=1, le=1, description="completions per prompt; only 1 is supported")
    echo: bool = Field(False, description="put the prompt before the inserted text in the answer")
    user: str | None = Field(None, description="end-user id for the caller's own bookkeeping; not used")
    mode: Mode = option(InfillParams, "mode")
    steps: int = option(InfillParams, "steps")
    candidates: bool = option(InfillParams, "candidates")
    min_confidence: float = option(InfillParams, "min_confidence")
    accept_confidence: float = option(InfillParams, "accept_confidence")
    language: str | None = option(InfillParams, "language")

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: str | list[str]) -> str:
        if isinstance(v, list):
            if len(v) != 1:
                raise ValueError("a list prompt must hold exactly one string (batched prompts are not supported)")
            return v[0]
        return v

    @property
    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def params(self, limits: Limits | None = None) -> InfillParams:
        """The infill pipeline's parameters."""
        return self.options(InfillParams, stop=self.stops)


class FimRequest(_Infill):
    """Mistral/Codestral fill-in-the-middle: the code between ``prompt`` and ``suffix``."""

    model: str | None = Field(None, description="model id; any value is accepted and echoed back")
    prompt: str = Field(description="code before the cursor", json_schema_extra=limited("max_text_chars"))
    suffix: Suffix = None
    max_tokens: int | None = option(InfillParams, "max_tokens", default=None, validate_default=True,
                                    description=f"most tokens to insert; null: {INFILL_MAX_TOKENS}")
    temperature: float = option(InfillParams, "temperature")
    top_p: float = option(InfillParams, "top_p")
    stop: Stop = None
    random_seed: int | None = option(InfillParams, "seed")
    factor: float | None = option(InfillParams, "factor")
    stream: Stream = False
    mode: Mode = option(InfillParams, "mode")
    steps: int = option(InfillParams, "steps")
    candidates: bool = option(InfillParams, "candidates")
    min_confidence: float = option(InfillParams, "min_confidence")
    accept_confidence: float = option(InfillParams, "accept_confidence")
    language: str | None = option(InfillParams, "language")

    @field_validator("max_tokens")
    @classmethod
    def _default_tokens(cls, v: int | None) -> int:
        return INFILL_MAX_TOKENS if v is None else v

    def params(self, limits: Limits | None = None) -> InfillParams:
        """The infill pipeline's parameters."""
        return self.options(InfillParams, seed=self.random_seed, stop=self.stops)


def _parsed_rules(v: dict[str, Any] | None) -> dict[str, Any] | None:
    if v is not None:
        try:
            parse_rules(v)
        except RuleSetError as exc:  # names the rule and its field
            raise ValueError(str(exc)) from None
    return v


class ReviseRequest(RequestModel):
    """Revise a document or a code block: chosen spans, spans the models doubt, or a rule set."""

    model: str | None = Field(None, description="model id; any value is accepted and echoed back")
    text: str = Field(min_length=1, description="the document or code to revise",
                      json_schema_extra=limited("max_text_chars"))
    spans: list[tuple[int, int]] | None = option(ReviseParams, "spans")
    rules: dict[str, Any] | None = Field(
        None, description="a compliance rule set applied instead of a free revision: {name, version, rules: "
                          "[{id, type: banned_phrase|required_term|redact, ...}]}, the format of "
                          "`remask revise --rules`")
    detect: Detect = option(ReviseParams, "detect")
    remask_below: float = option(ReviseParams, "remask_below")
    max_fraction: float = option(ReviseParams, "max_fraction")
    steps: int = option(ReviseParams, "steps")
    threshold: float | None = option(ReviseParams, "threshold")
    temperature: float = option(ReviseParams, "temperature")
    seed: int | None = option(ReviseParams, "seed")
    factor: float | None = option(ReviseParams, "factor")
    language: str | None = option(ReviseParams, "language")
    spelling: bool = option(ReviseParams, "spelling")
    word_order: bool = option(ReviseParams, "word_order")
    missing_words: bool = option(ReviseParams, "missing_words")
    rewrite_prose: bool = option(ReviseParams, "rewrite_prose")
    stream: bool = Field(False, description="stream denoising snapshots, then the result, as server-sent events")

    @field_validator("spans")
    @classmethod
    def _ordered(cls, v: list[tuple[int, int]] | None) -> list[tuple[int, int]] | None:
        for i, (s, e) in enumerate(v or []):
            if s < 0 or e <= s:
                raise ValueError(f"span {i} ({s}, {e}) must satisfy 0 <= start < end")
        return v

    @field_validator("rules")
    @classmethod
    def _valid_rules(cls, v: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        if v is not None and info.data.get("spans") is not None:
            raise ValueError("give either spans or rules, not both")
        return _parsed_rules(v)

    def rule_set(self) -> RuleSet | None:
        return parse_rules(self.rules) if self.rules is not None else None

    def params(self, limits: Limits | None = None) -> ReviseParams:
        """The revision pipeline's parameters, a free revision: no ``rules``."""
        return self.options(ReviseParams)

    def compliance(self, limits: Limits | None = None) -> tuple[RuleSet, ComplianceParams]:
        """The rule set and the rule-application parameters, when ``rules`` is set."""
        if self.rules is None:
            raise ValueError("the request has no rule set")
        return parse_rules(self.rules), self.options(ComplianceParams)


class RepairRequest(RequestModel):
    """Repair code that does not parse, with the fewest edits found."""

    model: str | None = Field(None, description="model id; any value is accepted and echoed back")
    code: str = Field(min_length=1, description="the code to repair; it is parsed, never run",
                      json_schema_extra=limited("max_text_chars"))
    language: str = option(RepairParams, "language")
    rounds: int = option(RepairParams, "rounds")
    steps: int = option(RepairParams, "steps")
    samples: int = option(RepairParams, "samples")
    seed: int | None = option(RepairParams, "seed")
    factor: float | None = option(RepairParams, "factor")
    stream: bool = Field(False, description="stream progress, then the result, as server-sent events")

    @field_validator("language")
    @classmethod
    def _known(cls, v: str) -> str:
        normalize_language(v)  # raises ValueError naming the supported languages
        return v

    def params(self, limits: Limits | None = None) -> RepairParams:
        """The repair pipeline's parameters."""
        return self.options(RepairParams)


class ComplianceRequest(RequestModel):
    """Apply a compliance rule set to a document (batch jobs' ``/v1/compliance``)."""

    model: str | None = Field(None, description="model id; informational")
    text: str = Field(min_length=1, description="the document to check", json_schema_extra=limited("max_text_chars"))
    rules: dict[str, Any] = Field(description="the rule set (the YAML rule file's structure, as JSON)")
    steps: int = option(ComplianceParams, "steps")
    threshold: float | None = option(ComplianceParams, "threshold")
    seed: int | None = option(ComplianceParams, "seed")
    factor: float | None = option(ComplianceParams, "factor")

    @field_validator("rules")
    @classmethod
    def _valid_rules(cls, v: dict[str, Any]) -> dict[str, Any]:
        _parsed_rules(v)
        return v

    def rule_set(self) -> RuleSet:
        return parse_rules(self.rules)

    def params(self, limits: Limits | None = None) -> ComplianceParams:
        """The rule-application parameters."""
        return self.options(ComplianceParams)
