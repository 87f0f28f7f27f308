"""The ``/v1`` routes: parse the request, check the operator's limits, call the engine, format.

Nothing here touches a model: the engine (:class:`workflows.engine.EngineClient`) is
taken from the app state, so the same routes serve an in-process engine or Ray handles.
The limits are checked by the request model itself (``req.check(limits)``, the check a
batch line gets too); a refusal is a 422 naming the field (see :mod:`services.api.errors`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Security
from fastapi.security import HTTPBearer

from refiner.remasking import validate_char_spans
from services.api.errors import APIError, ErrorResponse
from services.api.metrics import Metrics
from services.api.schemas import CompletionRequest, FimRequest, RepairRequest, ReviseRequest
from services.api.settings import ANONYMOUS_TENANT, Settings
from services.api.streaming import Shape, UsageMode, edit_events, event_stream, infill_events, prime, single
from workflows.engine import EngineClient, Outcome
from workflows.engine.responses import (
    CompletionResponse,
    EditResponse,
    FimResponse,
    completion_response,
    edit_response,
    fim_response,
)

# documents the bearer scheme in /openapi.json; the check itself runs in middleware, before
# the body is read (see services.api.middleware.Authenticate)
bearer = HTTPBearer(auto_error=False, description="API key, required when the server has keys configured")
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": what} for status, what in {
        400: "body not JSON or not UTF-8, or input the pipeline refuses",
        401: "missing or invalid API key",
        413: "request body over the size limit",
        422: "a field is invalid or over a limit; error.param names it",
        429: "the engine's queue is full; see Retry-After",
        503: "waited too long for a model; see Retry-After",
    }.items()
}
router = APIRouter(prefix="/v1", dependencies=[Security(bearer)], responses=ERRORS)
# `stream: true` answers 200 as server-sent events; documented beside the JSON answer
STREAMS: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {"itemSchema": {
    "type": "object", "required": ["data"], "description": "one server-sent event",
    "properties": {"data": {"type": "string", "description": "a JSON chunk; the last event's data is [DONE]"}}}}}}}


@dataclass
class Ctx:
    """What a route needs besides its request body."""

    engine: EngineClient
    settings: Settings
    metrics: Metrics
    tenant: str
    route: str
    t0: float

    def first_token(self) -> None:
        self.metrics.ttft.labels(self.route).observe(time.perf_counter() - self.t0)

    def done(self, out: Outcome[Any]) -> None:
        self.metrics.count_work(self.route, out.prompt_tokens, out.completion_tokens, int(out.result.nfe))

    def answered(self, out: Outcome[Any]) -> None:
        """A whole answer is ready: its first token and its work counted at once."""
        self.first_token()
        self.done(out)


def context(request: Request) -> Ctx:
    st, rs = request.app.state, request.state
    return Ctx(st.engine, st.settings, st.metrics, getattr(rs, "tenant", ANONYMOUS_TENANT),
               getattr(rs, "route", request.url.path), getattr(rs, "t0", time.perf_counter()))


CtxDep = Annotated[Ctx, Depends(context)]


def _model(settings: Settings, asked: str | None) -> str:
    return asked or settings.served_model_name


async def _infill(req: CompletionRequest | FimRequest, ctx: Ctx, prompt: str, shape: Shape, echo: str = "",
                  usage_mode: UsageMode = "none") -> Any:
    """An infill request in either API's shape: the answer object, or its stream of chunks."""
    req.check(ctx.settings.limits)
    suffix, params, model = req.suffix or "", req.params(), _model(ctx.settings, req.model)
    if req.stream:
        first, rest = await prime(ctx.engine.stream_infill(prompt, suffix, params))
        ctx.first_token()
        return event_stream(infill_events(first, rest, shape=shape, model=model, max_tokens=params.max_tokens,
                                          echo=echo, usage_mode=usage_mode, on_done=ctx.done))
    out = await ctx.engine.infill(prompt, suffix, params)
    ctx.answered(out)
    if shape == "fim":
        return fim_response(out, model, params.max_tokens)
    return completion_response(out, model, params.max_tokens, echo)


async def _edit_answer(out: Outcome[Any], model: str, stream: bool) -> Any:
    """The answer of a pipeline that reports no steps: the result, or a stream of just the result."""
    if stream:
        return event_stream(edit_events(*(await prime(single(out))), model=model))
    return edit_response(out, model)


@router.post("/completions", response_model=CompletionResponse, responses=STREAMS,
             summary="Fill in the middle (OpenAI completions)",
             description="OpenAI legacy completions with `prompt` and `suffix`: the text to insert between them. "
                         "`stream: true` answers with server-sent events ending in `data: [DONE]`: token deltas in "
                         "ar mode, whole-span snapshots (in `remask.snapshot`) in diffusion and hybrid mode.")
async def completions(req: CompletionRequest, ctx: CtxDep) -> Any:
    include_usage = req.stream_options is not None and req.stream_options.include_usage
    return await _infill(req, ctx, req.prompt_text, "completion", req.prompt_text if req.echo else "",
                         "separate" if include_usage else "none")


@router.post("/fim/completions", response_model=FimResponse, responses=STREAMS,
             summary="Fill in the middle (Mistral/Codestral)",
             description="Mistral-style FIM: `prompt` (before the cursor) and `suffix` (after); the answer is a "
                         "chat.completion whose message content is the insertion. Streams as chat.completion.chunk "
                         "events ending in `data: [DONE]`, usage in the last chunk.")
async def fim_completions(req: FimRequest, ctx: CtxDep) -> Any:
    return await _infill(req, ctx, req.prompt, "fim", usage_mode="inline")


@router.post("/revise", response_model=EditResponse, responses=STREAMS, summary="Revise a document or code block",
             description="Redo the given character spans, or the spans the models doubt, or apply a compliance "
                         "rule set. Answers the new text, edits (code-point offsets into the input), a unified "
                         "diff and LanguageTool-style matches. `stream: true` streams denoising snapshots "
                         "(`revision.snapshot` events), then the result, then `data: [DONE]`.")
async def revise_route(req: ReviseRequest, ctx: CtxDep) -> Any:
    limits = ctx.settings.limits
    req.check(limits)
    if req.spans is not None:
        try:
            validate_char_spans(req.text, req.spans)
        except ValueError as exc:
            raise APIError(422, f"spans: {exc}", param="spans", code="invalid_span") from None
    model = _model(ctx.settings, req.model)
    if req.rules is not None:  # a rule set is applied as a whole; the pipeline reports no steps
        rules, cparams = req.compliance(limits)
        out: Outcome[Any] = await ctx.engine.compliance(req.text, rules, cparams)
    elif req.stream:
        first, rest = await prime(ctx.engine.stream_revise(req.text, req.params(limits)))
        ctx.first_token()
        return event_stream(edit_events(first, rest, model=model, on_done=ctx.done))
    else:
        out = await ctx.engine.revise(req.text, req.params(limits))
    ctx.answered(out)
    return await _edit_answer(out, model, req.stream)


@router.post("/repair", response_model=EditResponse, responses=STREAMS, summary="Repair code that does not parse",
             description="Code comes back parsing, with the fewest edits found, or unchanged (parses: false) when "
                         "no repair was found within `rounds`. `stream: true` answers the result as one event, "
                         "then `data: [DONE]` (repair reports no intermediate steps).")
async def repair_route(req: RepairRequest, ctx: CtxDep) -> Any:
    req.check(ctx.settings.limits)
    out = await ctx.engine.repair(req.code, req.params(ctx.settings.limits))
    ctx.answered(out)
    return await _edit_answer(out, _model(ctx.settings, req.model), req.stream)


@router.get("/models", summary="Models served (OpenAI list shape)")
async def list_models(ctx: CtxDep) -> dict[str, Any]:
    name = ctx.settings.served_model_name
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "remask"}]}
