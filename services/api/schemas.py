"""Request models of the HTTP API, documented field by field (they make up /openapi.json).

Three conventions users already speak:

* ``POST /v1/completions``: OpenAI legacy completions (``prompt`` + ``suffix``), so the
  official ``openai`` client works unchanged; ``mode`` and ``steps`` are remask extensions.
* ``POST /v1/fim/completions``: the Mistral/Codestral fill-in-the-middle request.
* ``POST /v1/revise`` and ``POST /v1/repair``: remask's own editing calls.

Static bounds live here; the limits an operator configures (text length, spans, max_tokens,
steps) are checked by the routes against :class:`services.api.settings.Limits`. The response
models are in :mod:`services.api.responses`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from workflows.rules import RuleSet, RuleSetError, parse_rules
from workflows.syntax import LANGUAGES, normalize_language

Mode = Literal["ar", "diffusion", "hybrid"]
MAX_STOP = 8  # stop strings per request; each is matched on every drafted token

_MODE_DOC = ("remask extension: ar = the drafter alone; diffusion = the refiner alone (span length searched); "
             "hybrid = the drafter drafts, its weak tokens are re-masked and the refiner denoises them")
_STEPS_DOC = ("remask extension: denoising step budget of the refiner (ignored in ar mode). The default, 4, is "
              "the editor's latency budget: in `remask bench sampler --sweep` 16-token spans lose about half a "
              "point of exact match against 16 steps at a quarter of the forward passes")
FIM_STEPS = 4


def _stop_list(v: str | list[str] | None) -> list[str]:
    """``stop`` as a list; empty strings would end every draft at once and are refused."""
    stops = [v] if isinstance(v, str) else list(v or [])
    if len(stops) > MAX_STOP:
        raise ValueError(f"at most {MAX_STOP} stop strings")
    if any(s == "" for s in stops):
        raise ValueError("stop strings must not be empty")
    return stops


class StreamOptions(BaseModel):
    """OpenAI ``stream_options``."""

    model_config = ConfigDict(extra="forbid")
    include_usage: bool = Field(False, description="send a last chunk with usage and empty choices before [DONE]")


class CompletionRequest(BaseModel):
    """OpenAI legacy completion with fill-in-the-middle: the text between prompt and suffix."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, description="model id; any value is accepted and echoed back (see /v1/models)")
    prompt: str | list[str] = Field(description="text before the cursor; a list must hold exactly one string")
    suffix: str | None = Field(None, description="text after the cursor; null or empty: plain continuation")
    max_tokens: int = Field(16, ge=1, le=1024, description="most tokens to insert (also bounded by the server's limit)")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy (the same output every time); above 0 samples")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass; 1 turns it off")
    stop: str | list[str] | None = Field(None, description=f"up to {MAX_STOP} strings that end the insertion")
    seed: int | None = Field(None, description="makes sampling reproducible")
    stream: bool = Field(False, description="answer as server-sent events ending in 'data: [DONE]'")
    stream_options: StreamOptions | None = Field(None, description="options of a streamed answer")
    n: int = Field(1, description="completions per prompt; only 1 is supported")
    echo: bool = Field(False, description="put the prompt before the inserted text in the answer")
    user: str | None = Field(None, description="end-user id for the caller's own bookkeeping; not used")
    mode: Mode = Field("hybrid", description=_MODE_DOC)
    steps: int = Field(FIM_STEPS, ge=1, le=1024, description=_STEPS_DOC)

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and len(v) != 1:
            raise ValueError("a list prompt must hold exactly one string (batched prompts are not supported)")
        return v

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> list[str]:
        return _stop_list(v)

    @field_validator("n")
    @classmethod
    def _only_one(cls, v: int) -> int:
        if v != 1:
            raise ValueError("only n=1 is supported")
        return v

    @property
    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    @property
    def stops(self) -> list[str]:
        return _stop_list(self.stop)


class FimRequest(BaseModel):
    """Mistral/Codestral fill-in-the-middle: the code between ``prompt`` and ``suffix``."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, description="model id; any value is accepted and echoed back")
    prompt: str = Field(description="code before the cursor")
    suffix: str | None = Field(None, description="code after the cursor")
    max_tokens: int | None = Field(None, ge=1, le=1024, description="most tokens to insert; null: 32")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy; above 0 samples")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass; 1 turns it off")
    stop: str | list[str] | None = Field(None, description=f"up to {MAX_STOP} strings that end the insertion")
    random_seed: int | None = Field(None, description="makes sampling reproducible")
    stream: bool = Field(False, description="answer as server-sent events ending in 'data: [DONE]'")
    mode: Mode = Field("hybrid", description=_MODE_DOC)
    steps: int = Field(FIM_STEPS, ge=1, le=1024, description=_STEPS_DOC)

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> list[str]:
        return _stop_list(v)

    @property
    def stops(self) -> list[str]:
        return _stop_list(self.stop)


class ReviseRequest(BaseModel):
    """Revise a document or a code block: chosen spans, spans the models doubt, or a rule set."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, description="model id; any value is accepted and echoed back")
    text: str = Field(min_length=1, description="the document or code to revise")
    spans: list[tuple[int, int]] | None = Field(
        None, description="character spans [start, end) to redo, in Python code points; null: the models find doubtful spans")
    rules: dict[str, Any] | None = Field(
        None, description="a compliance rule set applied instead of a free revision: {name, version, rules: "
                          "[{id, type: banned_phrase|required_term|redact, ...}]}, the format of `remask revise --rules`")
    detect: Literal["refiner", "drafter", "both"] = Field(
        "refiner", description="which model's confidence finds doubtful tokens when no spans are given")
    remask_below: float = Field(0.2, gt=0.0, le=1.0, description="a token whose probability is below this is doubtful")
    max_fraction: float = Field(0.15, gt=0.0, le=1.0, description="most share of the text's tokens re-masked at once")
    steps: int = Field(16, ge=1, le=1024, description="denoising step budget")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy")
    seed: int | None = Field(0, description="makes sampling reproducible")
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
        if v is None:
            return v
        if info.data.get("spans") is not None:
            raise ValueError("give either spans or rules, not both")
        try:
            parse_rules(v)
        except RuleSetError as exc:
            raise ValueError(str(exc)) from None
        return v

    def rule_set(self) -> RuleSet | None:
        return parse_rules(self.rules) if self.rules is not None else None


class RepairRequest(BaseModel):
    """Repair code that does not parse, with the fewest edits found."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, description="model id; any value is accepted and echoed back")
    code: str = Field(min_length=1, description="the code to repair; it is parsed, never run")
    language: str = Field("python", description="one of: " + ", ".join(LANGUAGES))
    rounds: int = Field(3, ge=1, le=10, description="most repair rounds; each fixes the first remaining error")
    steps: int = Field(8, ge=1, le=256, description="denoising step budget per candidate")
    seed: int | None = Field(0, description="makes sampled candidates reproducible")
    stream: bool = Field(False, description="stream progress, then the result, as server-sent events")

    @field_validator("language")
    @classmethod
    def _known(cls, v: str) -> str:
        normalize_language(v)  # raises ValueError naming the supported languages
        return v
