"""Response models of the remask endpoints (documented field by field) and the functions that fill them.

The HTTP routes answer with these, and a batch job's result lines carry the same objects,
so a request's answer has one shape whichever way it arrives.

Every response carries a ``remask`` extension object with what only this service knows:
per-token confidences, which tokens the refiner changed, forward passes (nfe), queue and run
times, and the audit record. Clients that do not know it ignore it (the ``openai`` client
keeps unknown fields, so ``completion.remask`` works there too).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from workflows.compliance import ComplianceResult
from workflows.engine.protocol import Outcome
from workflows.infill import InfillResult
from workflows.repair import RepairResult
from workflows.revise import ReviseResult

FinishReason = Literal["stop", "length"]
SERVED_MODEL_NAME = "remask"  # the model id of an answer whose request names none, unless the operator sets one


class TokenInfo(BaseModel):
    text: str = Field(description="the token's text")
    confidence: float = Field(description="p of the token under the model that chose it")
    changed: bool = Field(description="the refiner replaced the drafter's token here")


class RemaskInfo(BaseModel):
    """remask's extension object; fields that do not apply to a route are null."""

    mode: str | None = Field(None, description="infill mode that ran: ar, diffusion or hybrid")
    start: int | None = Field(None, description="insertion offset in prompt+suffix (code points)")
    end: int | None = Field(None, description="end of the replaced range (equal to start: an insertion)")
    tokens: list[TokenInfo] | None = Field(None, description="the inserted tokens with confidences")
    changed: list[int] | None = Field(None, description="indices of the tokens the refiner changed")
    draft: str | None = Field(None, description="the drafter's text before refinement (ar, hybrid)")
    nfe: int = Field(0, description="refiner forward passes")
    confidence: float | None = Field(None, description="infill with candidates: the chosen completion's confidence "
                                     "(both models' geometric-mean token probability); an empty completion fell "
                                     "below min_confidence or had no candidate that kept the syntax")
    syntax_check: str | None = Field(None, description="infill with candidates: 'checked', or 'skipped' where remask "
                                     "has no parser for the file's language")
    candidates: int | None = Field(None, description="infill with candidates: distinct candidates that kept the syntax")
    queue_ms: float = Field(0.0, description="time spent waiting for a model")
    run_ms: float = Field(0.0, description="time the pipeline ran")
    audit: dict[str, Any] | None = Field(None, description="models with weight hashes, parameters, seed, timings")


class Usage(BaseModel):
    prompt_tokens: int = Field(description="tokens of prompt and suffix (or of the input text)")
    completion_tokens: int = Field(description="tokens produced")
    total_tokens: int = Field(description="prompt_tokens + completion_tokens")


class CompletionChoice(BaseModel):
    text: str = Field(description="the text to insert at the cursor")
    index: int = Field(0, description="choice index (always 0: n=1)")
    logprobs: None = Field(None, description="not provided; see remask.tokens for confidences")
    finish_reason: FinishReason | None = Field(description="stop: ended on its own or at a stop string; "
                                                           "length: max_tokens")


class CompletionResponse(BaseModel):
    id: str = Field(description="completion id")
    object: Literal["text_completion"] = Field("text_completion", description="object type")
    created: int = Field(description="Unix time of creation")
    model: str = Field(description="model id")
    choices: list[CompletionChoice] = Field(description="one choice")
    usage: Usage | None = Field(None, description="token counts")
    remask: RemaskInfo | None = Field(None, description="remask extension")


class FimMessage(BaseModel):
    role: Literal["assistant"] = Field("assistant", description="always assistant")
    content: str = Field(description="the code to insert at the cursor")


class FimChoice(BaseModel):
    index: int = Field(0, description="choice index (always 0)")
    message: FimMessage = Field(description="the insertion")
    finish_reason: FinishReason = Field(description="stop or length")


class FimResponse(BaseModel):
    id: str = Field(description="completion id")
    object: Literal["chat.completion"] = Field("chat.completion", description="object type (Mistral's FIM shape)")
    created: int = Field(description="Unix time of creation")
    model: str = Field(description="model id")
    choices: list[FimChoice] = Field(description="one choice")
    usage: Usage = Field(description="token counts")
    remask: RemaskInfo | None = Field(None, description="remask extension")


class EditOut(BaseModel):
    start: int = Field(description="start offset in the input, Python code points")
    end: int = Field(description="end offset (exclusive) in the input, Python code points")
    before: str = Field(description="input[start:end]")
    after: str = Field(description="what replaces it")
    reason: str = Field(description="user_span, low_confidence, syntax_repair, or the id of a compliance rule")
    confidence: float = Field(description="the refiner's confidence in the new text")


class IssueOut(BaseModel):
    start: int = Field(description="start offset of the broken region (code points)")
    end: int = Field(description="end offset of the broken region (code points)")
    message: str = Field(description="what the parser said")


class ReviewOut(BaseModel):
    """A banned phrase left as it was for a person to decide: no candidate was good enough to apply."""

    rule_id: str = Field(description="the rule the phrase breaks")
    start: int = Field(description="start offset of the phrase in the input (code points)")
    end: int = Field(description="end offset of the phrase (exclusive)")
    phrase: str = Field(description="input[start:end]")
    reason: str = Field(description="still_banned: every candidate kept a banned phrase; reads_worse: the best read "
                                    "worse than the original; over_budget: past max_rewrites, not tried")
    suggestion: str | None = Field(description="the phrase's sentence as the best candidate writes it (not applied)")
    fluency_before: float | None = Field(None, description="the sentence's mean log-probability per token")
    fluency_after: float | None = Field(None, description="the suggestion's mean log-probability per token")


class EditResponse(BaseModel):
    """Shared by /v1/revise and /v1/repair: the new text and how it differs from the input."""

    id: str = Field(description="response id")
    object: Literal["revision", "compliance", "repair"] = Field(description="which pipeline answered")
    created: int = Field(description="Unix time of creation")
    model: str = Field(description="model id")
    text: str = Field(description="the revised text or repaired code")
    edits: list[EditOut] = Field(description="edits into the input, as LanguageTool reports matches")
    diff: str = Field(description="unified diff from input to output; empty when unchanged")
    matches: list[dict[str, Any]] = Field(description="the edits as LanguageTool matches")
    spans: list[tuple[int, int]] | None = Field(None, description="revise: character ranges that were re-masked")
    unresolved: list[str] | None = Field(None, description="compliance: rule ids with a hit left as it was (needs "
                                                           "review, or a required term with no clause to add)")
    needs_review: list[ReviewOut] | None = Field(None, description="compliance: banned phrases not rewritten, each "
                                                                   "with its rule, span and best suggestion")
    applied: int | None = Field(None, description="compliance: banned phrases rewritten in the text")
    parses: bool | None = Field(None, description="repair: whether the output parses")
    rounds: int | None = Field(None, description="repair: rounds run")
    issues_before: list[IssueOut] | None = Field(None, description="repair: syntax issues of the input")
    issues_after: list[IssueOut] | None = Field(None, description="repair: syntax issues left (empty when repaired)")
    remask: RemaskInfo = Field(description="remask extension: nfe, timings, audit record")


EditResult = ReviseResult | ComplianceResult | RepairResult


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def finish_reason(res: InfillResult, max_tokens: int) -> FinishReason:
    """The pipelines do not report why a span ended; a full span most likely hit the cap."""
    return "length" if len(res.tokens) >= max_tokens else "stop"


def usage(out: Outcome[Any]) -> Usage:
    return Usage(prompt_tokens=out.prompt_tokens, completion_tokens=out.completion_tokens,
                 total_tokens=out.prompt_tokens + out.completion_tokens)


def remask_info(out: Outcome[Any]) -> RemaskInfo:
    """The extension object of any outcome; infill results add their tokens."""
    r = out.result
    audit = r.audit.to_dict() if r.audit is not None else None
    info = RemaskInfo(nfe=r.nfe, queue_ms=round(out.queue_ms, 2), run_ms=round(out.run_ms, 2), audit=audit)
    if isinstance(r, InfillResult):
        info.mode, info.start, info.end, info.draft = r.mode, r.start, r.end, r.draft
        info.tokens = [TokenInfo(text=t.text, confidence=round(t.confidence, 5), changed=t.changed) for t in r.tokens]
        info.changed = r.changed
        if r.syntax_check is not None:  # the candidate search ran
            info.confidence, info.syntax_check, info.candidates = r.confidence, r.syntax_check, r.candidates
    return info


def _header(out: Outcome[Any], id_prefix: str, model: str) -> dict[str, Any]:
    """The fields every response opens with, and its extension object."""
    return {"id": new_id(id_prefix), "created": int(time.time()), "model": model, "remask": remask_info(out)}


def completion_response(out: Outcome[InfillResult], model: str, max_tokens: int, echo: str = "") -> CompletionResponse:
    choice = CompletionChoice(text=echo + out.result.text, finish_reason=finish_reason(out.result, max_tokens))
    return CompletionResponse(choices=[choice], usage=usage(out), **_header(out, "cmpl", model))


def fim_response(out: Outcome[InfillResult], model: str, max_tokens: int) -> FimResponse:
    choice = FimChoice(message=FimMessage(content=out.result.text), finish_reason=finish_reason(out.result, max_tokens))
    return FimResponse(choices=[choice], usage=usage(out), **_header(out, "fim", model))


def edit_response(out: Outcome[EditResult], model: str) -> EditResponse:
    """The /v1/revise or /v1/repair answer for whichever pipeline produced ``out``."""
    r = out.result
    common: dict[str, Any] = {"text": r.text, "diff": r.diff, "matches": r.matches, **_header(out, "edit", model),
                              "edits": [EditOut.model_validate(e, from_attributes=True) for e in r.edits]}
    if isinstance(r, ReviseResult):
        return EditResponse(object="revision", spans=[tuple(s) for s in r.spans], **common)
    if isinstance(r, ComplianceResult):
        return EditResponse(object="compliance", unresolved=r.unresolved, applied=r.applied,
                            needs_review=[ReviewOut.model_validate(v, from_attributes=True) for v in r.needs_review],
                            **common)
    return EditResponse(object="repair", parses=r.parses, rounds=r.rounds,
                        issues_before=[IssueOut.model_validate(i, from_attributes=True) for i in r.issues_before],
                        issues_after=[IssueOut.model_validate(i, from_attributes=True) for i in r.issues_after],
                        **common)
