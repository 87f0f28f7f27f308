"""Response models of the HTTP API (documented field by field) and the functions that fill them.

Every response may carry a ``remask`` extension object with what only this service knows:
per-token confidences, which tokens the refiner changed, forward passes (nfe), queue and run
times, and the audit record. Clients that do not know it ignore it (the ``openai`` client
keeps unknown fields, so ``completion.remask`` works there too).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from services.api.engine import Outcome
from services.commands.edit import to_jsonable
from workflows.compliance import ComplianceResult
from workflows.infill import InfillResult
from workflows.revise import ReviseResult

FinishReason = Literal["stop", "length"]


class ErrorBody(BaseModel):
    message: str = Field(description="what went wrong, in words")
    type: str = Field(description="error class: invalid_request_error, authentication_error, ...")
    param: str | None = Field(None, description="the request field at fault (dotted path), if any")
    code: str | None = Field(None, description="a stable machine-readable code, if any")


class ErrorResponse(BaseModel):
    """The OpenAI error shape, used by every route."""

    error: ErrorBody = Field(description="the error")


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
    finish_reason: FinishReason | None = Field(description="stop: ended on its own or at a stop string; length: max_tokens")


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
    unresolved: list[str] | None = Field(None, description="compliance: rule ids whose hits could not be fixed")
    parses: bool | None = Field(None, description="repair: whether the output parses")
    rounds: int | None = Field(None, description="repair: rounds run")
    issues_before: list[IssueOut] | None = Field(None, description="repair: syntax issues of the input")
    issues_after: list[IssueOut] | None = Field(None, description="repair: syntax issues left (empty when repaired)")
    remask: RemaskInfo = Field(description="remask extension: nfe, timings, audit record")


class JSONLResponse(PlainTextResponse):
    """JSON Lines (one JSON object per line), as job results and errors are served."""

    media_type = "application/jsonl"


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
    audit = to_jsonable(r.audit) if getattr(r, "audit", None) is not None else None
    info = RemaskInfo(nfe=r.nfe, queue_ms=round(out.queue_ms, 2), run_ms=round(out.run_ms, 2), audit=audit)
    if isinstance(r, InfillResult):
        info.mode, info.start, info.end, info.draft = r.mode, r.start, r.end, r.draft
        info.tokens = [TokenInfo(text=t.text, confidence=round(t.confidence, 5), changed=t.changed) for t in r.tokens]
        info.changed = r.changed
    return info


def completion_response(out: Outcome[InfillResult], model: str, max_tokens: int, echo: str = "") -> CompletionResponse:
    choice = CompletionChoice(text=echo + out.result.text, finish_reason=finish_reason(out.result, max_tokens))
    return CompletionResponse(id=new_id("cmpl"), created=int(time.time()), model=model, choices=[choice],
                              usage=usage(out), remask=remask_info(out))


def fim_response(out: Outcome[InfillResult], model: str, max_tokens: int) -> FimResponse:
    choice = FimChoice(message=FimMessage(content=out.result.text), finish_reason=finish_reason(out.result, max_tokens))
    return FimResponse(id=new_id("fim"), created=int(time.time()), model=model, choices=[choice],
                       usage=usage(out), remask=remask_info(out))


def _edits(edits: list[Any]) -> list[EditOut]:
    return [EditOut(**to_jsonable(e)) for e in edits]


def edit_response(out: Outcome[Any], model: str) -> EditResponse:
    """The /v1/revise or /v1/repair answer for whichever pipeline produced ``out``."""
    r = out.result
    common: dict[str, Any] = {"id": new_id("edit"), "created": int(time.time()), "model": model, "text": r.text,
                              "edits": _edits(r.edits), "diff": r.diff, "matches": r.matches,
                              "remask": remask_info(out)}
    if isinstance(r, ReviseResult):
        return EditResponse(object="revision", spans=[tuple(s) for s in r.spans], **common)
    if isinstance(r, ComplianceResult):
        return EditResponse(object="compliance", unresolved=r.unresolved, **common)
    return EditResponse(object="repair", parses=r.parses, rounds=r.rounds,
                        issues_before=[IssueOut(**to_jsonable(i)) for i in r.issues_before],
                        issues_after=[IssueOut(**to_jsonable(i)) for i in r.issues_after], **common)


# --- streamed chunks ------------------------------------------------------------------------
# The concatenated ``text`` (or ``delta.content``) of a stream always equals the non-streamed
# answer: AR token deltas add up to it; diffusion snapshots travel in ``remask.snapshot`` with
# empty text, and the whole span comes in the last chunk.


def completion_chunk(cid: str, created: int, model: str, text: str, finish: FinishReason | None,
                     remask: dict[str, Any] | None = None, usage_: Usage | None = None,
                     choices: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"id": cid, "object": "text_completion", "created": created, "model": model,
                            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]
                            if choices else []}
    if usage_ is not None:
        body["usage"] = usage_.model_dump()
    if remask is not None:
        body["remask"] = remask
    return body


def fim_chunk(cid: str, created: int, model: str, content: str, finish: FinishReason | None,
              remask: dict[str, Any] | None = None, usage_: Usage | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                            "choices": [{"index": 0, "delta": {"role": "assistant", "content": content},
                                         "finish_reason": finish}]}
    if usage_ is not None:
        body["usage"] = usage_.model_dump()
    if remask is not None:
        body["remask"] = remask
    return body
