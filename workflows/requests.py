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
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from workflows.compliance import ComplianceParams
from workflows.infill import InfillParams
from workflows.limits import (
    CEILING_STEPS,
    CEILING_TOKENS,
    Limits,
    RequestRefused,
    check_limits,
    limited,
)
from workflows.repair import RepairParams
from workflows.revise import ReviseParams
from workflows.rules import RuleSet, RuleSetError, parse_rules
from workflows.syntax import LANGUAGES, normalize_language

Mode = Literal["ar", "diffusion", "hybrid"]
MAX_STOP = 8  # stop strings per request; each is matched on every drafted token
# the largest integer every JSON client holds exactly (JavaScript's MAX_SAFE_INTEGER; the OpenAPI
# document writes bounds as doubles too); far inside a 64-bit generator seed, with room for the
# small offsets the pipelines add to it
SEED_MAX = 2**53 - 1
FIM_STEPS = 4
FIM_DEFAULT_TOKENS = 32  # max_tokens of a Mistral FIM request that leaves it null
BATCH: dict[str, Any] = {"batch": True}  # validation context of a batch line

_MODE_DOC = ("remask extension: ar = the drafter alone; diffusion = the refiner alone (span length searched); "
             "hybrid = the drafter drafts, its weak tokens are re-masked and the refiner denoises them")
_STEPS_DOC = ("remask extension: denoising step budget of the refiner (ignored in ar mode). The default, 4, is "
              "the editor's latency budget: in `remask bench sampler --sweep` 16-token spans lose about half a "
              "point of exact match against 16 steps at a quarter of the forward passes")
_SEED_DOC = f"makes sampling reproducible; 0 to {SEED_MAX}"
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
            return PydanticCustomError("finite_number", "{value}{of} is not a finite number", {"value": str(v), "of": of})
        elif isinstance(v, dict):
            for k, x in reversed(list(v.items())):
                key = str(k)
                if _SURROGATE.search(key):
                    return PydanticCustomError("invalid_unicode", "a key{of} holds a lone surrogate: send valid Unicode text",
                                               {"of": of})
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


class StreamOptions(RequestModel):
    """OpenAI ``stream_options``."""

    include_usage: bool = Field(False, description="send a last chunk with usage and empty choices before [DONE]")


# fields the two fill-in-the-middle requests share, each bound written once
Temperature = Annotated[float, Field(ge=0.0, le=2.0, description="0 = greedy (the same output every time); above 0 samples")]
TopP = Annotated[float, Field(gt=0.0, le=1.0, description="nucleus sampling mass; 1 turns it off")]
Stop = Annotated[str | list[str] | None, Field(description=f"up to {MAX_STOP} strings that end the insertion")]
Seed = Annotated[int | None, Field(ge=0, le=SEED_MAX, description=_SEED_DOC)]
Suffix = Annotated[str | None, Field(validate_default=True, json_schema_extra=limited("max_text_chars"),
                                     description="text after the cursor; null or empty: plain continuation")]
InfillSteps = Annotated[int, Field(ge=1, le=CEILING_STEPS, description=_STEPS_DOC, json_schema_extra=limited("max_steps"))]
Stream = Annotated[bool, Field(description="answer as server-sent events ending in 'data: [DONE]'")]
ModeField = Annotated[Mode, Field(description=_MODE_DOC)]


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
    max_tokens: int = Field(16, ge=1, le=CEILING_TOKENS, json_schema_extra=limited("max_tokens"),
                            description="most tokens to insert (at most the server's limit)")
    temperature: Temperature = 0.0
    top_p: TopP = 1.0
    stop: Stop = None
    seed: Seed = None
    stream: Stream = False
    stream_options: StreamOptions | None = Field(None, description="options of a streamed answer")
    n: int = Field(1, ge=1, le=1, description="completions per prompt; only 1 is supported")
    echo: bool = Field(False, description="put the prompt before the inserted text in the answer")
    user: str | None = Field(None, description="end-user id for the caller's own bookkeeping; not used")
    mode: ModeField = "hybrid"
    steps: InfillSteps = FIM_STEPS

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
        return InfillParams(mode=self.mode, max_tokens=self.max_tokens, steps=self.steps, temperature=self.temperature,
                            top_p=self.top_p, stop=self.stops, seed=self.seed)


class FimRequest(_Infill):
    """Mistral/Codestral fill-in-the-middle: the code between ``prompt`` and ``suffix``."""

    model: str | None = Field(None, description="model id; any value is accepted and echoed back")
    prompt: str = Field(description="code before the cursor", json_schema_extra=limited("max_text_chars"))
    suffix: Suffix = None
    max_tokens: int | None = Field(None, ge=1, le=CEILING_TOKENS, validate_default=True,
                                   json_schema_extra=limited("max_tokens"),
                                   description=f"most tokens to insert; null: {FIM_DEFAULT_TOKENS}")
    temperature: Temperature = 0.0
    top_p: TopP = 1.0
    stop: Stop = None
    random_seed: Seed = None
    stream: Stream = False
    mode: ModeField = "hybrid"
    steps: InfillSteps = FIM_STEPS

    @field_validator("max_tokens")
    @classmethod
    def _default_tokens(cls, v: int | None) -> int:
        return FIM_DEFAULT_TOKENS if v is None else v

    def params(self, limits: Limits | None = None) -> InfillParams:
        """The infill pipeline's parameters."""
        return InfillParams(mode=self.mode, max_tokens=self.max_tokens or FIM_DEFAULT_TOKENS, steps=self.steps,
                            temperature=self.temperature, top_p=self.top_p, stop=self.stops, seed=self.random_seed)


def _parsed_rules(v: dict[str, Any] | None) -> dict[str, Any] | None:
    if v is not None:
        try:
            parse_rules(v)
        except RuleSetError as exc:  # names the rule and its field
            raise ValueError(str(exc)) from None
    return v


def _max_chars(limits: Limits | None) -> dict[str, int]:
    # without limits (a worker re-reading a line that was checked at submission) the pipeline's own cap holds
    return {"max_chars": limits.max_text_chars} if limits is not None else {}


class ReviseRequest(RequestModel):
    """Revise a document or a code block: chosen spans, spans the models doubt, or a rule set."""

    model: str | None = Field(None, description="model id; any value is accepted and echoed back")
    text: str = Field(min_length=1, description="the document or code to revise",
                      json_schema_extra=limited("max_text_chars"))
    spans: list[tuple[int, int]] | None = Field(
        None, json_schema_extra=limited("max_spans"),
        description="character spans [start, end) to redo, in Python code points; null: the models find doubtful spans")
    rules: dict[str, Any] | None = Field(
        None, description="a compliance rule set applied instead of a free revision: {name, version, rules: "
                          "[{id, type: banned_phrase|required_term|redact, ...}]}, the format of `remask revise --rules`")
    detect: Literal["refiner", "drafter", "both"] = Field(
        "refiner", description="which model's confidence finds doubtful tokens when no spans are given")
    remask_below: float = Field(0.2, gt=0.0, le=1.0, description="a token whose probability is below this is doubtful")
    max_fraction: float = Field(0.15, gt=0.0, le=1.0, description="most share of the text's tokens re-masked at once")
    steps: int = Field(16, ge=1, le=CEILING_STEPS, description="denoising step budget",
                       json_schema_extra=limited("max_steps"))
    threshold: float | None = Field(0.9, ge=0.0, le=1.0, description="each denoising step commits every position "
                                    "above this confidence (at least one); null: an even schedule over steps")
    temperature: Temperature = 0.0
    seed: Seed = 0
    language: str | None = Field(None, description="the text's language: 'prose', or a code language (python, ...) "
                                                  "which is never proofread; null: guessed")
    spelling: bool = Field(True, description="no spans, prose: correct unknown words to a known word one edit away "
                                            "when context and frequency clearly favour it")
    word_order: bool = Field(True, description="no spans, prose: swap adjacent words when word-pair counts clearly favour it")
    rewrite_prose: bool = Field(False, description="no spans, prose: also re-mask and denoise low-confidence spans "
                                                  "(code always is); off by default: small models' prose rewrites hurt")
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
        """The revision pipeline's parameters (a free revision: no ``rules``)."""
        return ReviseParams(spans=self.spans, detect=self.detect, remask_below=self.remask_below,
                            max_fraction=self.max_fraction, steps=self.steps, threshold=self.threshold,
                            temperature=self.temperature, seed=self.seed, language=self.language,
                            spelling=self.spelling, word_order=self.word_order, rewrite_prose=self.rewrite_prose,
                            **_max_chars(limits))

    def compliance(self, limits: Limits | None = None) -> tuple[RuleSet, ComplianceParams]:
        """The rule set and the rule-application parameters, when ``rules`` is set."""
        if self.rules is None:
            raise ValueError("the request has no rule set")
        return parse_rules(self.rules), ComplianceParams(steps=self.steps, threshold=self.threshold, seed=self.seed,
                                                         **_max_chars(limits))


class RepairRequest(RequestModel):
    """Repair code that does not parse, with the fewest edits found."""

    model: str | None = Field(None, description="model id; any value is accepted and echoed back")
    code: str = Field(min_length=1, description="the code to repair; it is parsed, never run",
                      json_schema_extra=limited("max_text_chars"))
    language: str = Field("python", description="one of: " + ", ".join(LANGUAGES))
    rounds: int = Field(3, ge=1, le=10, description="most repair rounds; each fixes the first remaining error")
    steps: int = Field(8, ge=1, le=256, description="denoising step budget per candidate",
                       json_schema_extra=limited("max_steps"))
    samples: int = Field(1, ge=0, le=8, description="sampled candidates per edit site, besides the greedy one")
    seed: Seed = 0
    stream: bool = Field(False, description="stream progress, then the result, as server-sent events")

    @field_validator("language")
    @classmethod
    def _known(cls, v: str) -> str:
        normalize_language(v)  # raises ValueError naming the supported languages
        return v

    def params(self, limits: Limits | None = None) -> RepairParams:
        """The repair pipeline's parameters."""
        return RepairParams(language=self.language, rounds=self.rounds, steps=self.steps, samples=self.samples,
                            seed=self.seed, **_max_chars(limits))


class ComplianceRequest(RequestModel):
    """Apply a compliance rule set to a document (batch jobs' ``/v1/compliance``)."""

    model: str | None = Field(None, description="model id; informational")
    text: str = Field(min_length=1, description="the document to check", json_schema_extra=limited("max_text_chars"))
    rules: dict[str, Any] = Field(description="the rule set (the YAML rule file's structure, as JSON)")
    steps: int = Field(16, ge=1, le=256, description="denoising step budget", json_schema_extra=limited("max_steps"))
    threshold: float | None = Field(0.9, ge=0.0, le=1.0, description="commit threshold; null = even schedule")
    seed: Seed = 0

    @field_validator("rules")
    @classmethod
    def _valid_rules(cls, v: dict[str, Any]) -> dict[str, Any]:
        _parsed_rules(v)
        return v

    def rule_set(self) -> RuleSet:
        return parse_rules(self.rules)

    def params(self, limits: Limits | None = None) -> ComplianceParams:
        """The rule-application parameters."""
        return ComplianceParams(steps=self.steps, threshold=self.threshold, seed=self.seed, **_max_chars(limits))
