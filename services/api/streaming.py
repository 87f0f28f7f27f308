"""Server-sent events: engine events framed as ``data: {json}`` lines, ending in ``data: [DONE]``.

A stream's first event is awaited before the response starts (:func:`prime`), so a request
refused at once (bad input, queue full) still gets its own status code; an error after that
arrives as a ``data: {"error": ...}`` event followed by ``[DONE]``.

In every stream the concatenated ``text`` (``delta.content`` for FIM) equals the non-streamed
answer: AR token deltas add up to it; in diffusion and hybrid mode, and when the candidate
search ranks its answer at the end, the whole-span snapshots travel in ``remask.snapshot``
with empty text and the final chunk carries what the deltas did not.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from fastapi.responses import StreamingResponse

from services.api.errors import error_body
from workflows.engine import EngineEvent, EngineUnavailable, Finished, Outcome, Snapshot, StreamCancelled, TokenDelta
from workflows.engine.responses import FinishReason, Usage, edit_response, finish_reason, new_id, remask_info, usage

log = logging.getLogger("remask.api")
DONE = "data: [DONE]\n\n"
UsageMode = Literal["none", "separate", "inline"]  # OpenAI: a separate last chunk; Mistral: in the last chunk
Shape = Literal["completion", "fim"]
CHUNK_OBJECT = {"completion": "text_completion", "fim": "chat.completion.chunk"}


def sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def event_stream(events: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    """``events`` as server-sent events; an error on the way is one more event; then ``[DONE]``."""
    return StreamingResponse(_framed(events), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _framed(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    try:
        async for event in events:
            yield sse(event)
    except StreamCancelled:
        return
    except Exception as exc:  # noqa: BLE001 - the status line is sent: report in-band
        yield sse(_stream_error(exc))
    yield DONE


async def prime(events: AsyncIterator[EngineEvent]) -> tuple[EngineEvent, AsyncIterator[EngineEvent]]:
    """Wait for the first event, letting errors before it raise in the route."""
    return await anext(aiter(events)), events


async def single(out: Outcome[Any]) -> AsyncIterator[EngineEvent]:
    """A stream of just the result, for pipelines that report no steps."""
    yield Finished(out)


async def _chain(first: EngineEvent, rest: AsyncIterator[EngineEvent]) -> AsyncIterator[EngineEvent]:
    yield first
    async for ev in rest:
        yield ev


def _stream_error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, ValueError):
        return error_body(400, str(exc), code="invalid_input")
    if isinstance(exc, EngineUnavailable):
        return error_body(503, str(exc), code="unavailable")
    log.error("error in a stream", exc_info=exc)
    return error_body(500, "internal error; see the server log", code="internal_error")


def chunk(shape: Shape, cid: str, created: int, model: str, text: str, finish: FinishReason | None,
          remask: dict[str, Any] | None = None, usage_: Usage | None = None) -> dict[str, Any]:
    """One streamed chunk: OpenAI's completion chunk, or Mistral's FIM (chat completion) chunk.

    The concatenated ``text`` (or ``delta.content``) of a stream always equals the non-streamed
    answer: AR token deltas add up to it; diffusion snapshots travel in ``remask.snapshot``
    with empty text, and the whole span comes in the last chunk.
    """
    choice = ({"text": text, "index": 0, "logprobs": None, "finish_reason": finish} if shape == "completion"
              else {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": finish})
    body: dict[str, Any] = {"id": cid, "object": CHUNK_OBJECT[shape], "created": created, "model": model,
                            "choices": [choice]}
    if usage_ is not None:
        body["usage"] = usage_.model_dump()
    if remask is not None:
        body["remask"] = remask
    return body


async def infill_events(first: EngineEvent, rest: AsyncIterator[EngineEvent], *, shape: Shape, model: str,
                        max_tokens: int, echo: str = "", usage_mode: UsageMode = "none",
                        on_done: Callable[[Outcome[Any]], None] | None = None) -> AsyncIterator[dict[str, Any]]:
    """Completion or FIM chunks for one infill stream."""
    cid, created = new_id("cmpl" if shape == "completion" else "fim"), int(time.time())
    if echo:
        yield chunk(shape, cid, created, model, echo, None)
    sent = ""  # the text token deltas carried so far
    async for ev in _chain(first, rest):
        if isinstance(ev, TokenDelta):
            sent += ev.text
            info = {"event": "token", "confidence": round(ev.confidence, 5)}
            yield chunk(shape, cid, created, model, ev.text, None, info)
        elif isinstance(ev, Snapshot):
            yield chunk(shape, cid, created, model, "", None, {"event": "snapshot", "snapshot": ev.text})
        elif isinstance(ev, Finished):
            out = ev.outcome
            if on_done is not None:
                on_done(out)
            info = {"event": "done", **remask_info(out).model_dump()}
            text = _unsent(out.result.text, sent)
            inline = usage(out) if usage_mode == "inline" else None
            yield chunk(shape, cid, created, model, text, finish_reason(out.result, max_tokens), info, inline)
            if usage_mode == "separate":  # OpenAI's last chunk: no choices, the usage
                yield {**chunk(shape, cid, created, model, "", None, None, usage(out)), "choices": []}


def _unsent(text: str, sent: str) -> str:
    """What the final chunk carries so that the stream adds up to ``text``: the rest after the
    deltas already sent (none when an AR draft streamed it all; all of it when the answer came as
    snapshots: diffusion, hybrid, or a candidate search ranking its answer at the end)."""
    if not text.startswith(sent):
        raise RuntimeError("streamed token deltas are not the start of the answer")  # an engine bug, not input
    return text[len(sent):]


async def edit_events(first: EngineEvent, rest: AsyncIterator[EngineEvent], *, model: str,
                      on_done: Callable[[Outcome[Any]], None] | None = None) -> AsyncIterator[dict[str, Any]]:
    """Revise/repair streams: ``{"object": "revision.snapshot", "text"}`` events, then the result."""
    async for ev in _chain(first, rest):
        if isinstance(ev, Snapshot):
            yield {"object": "revision.snapshot", "text": ev.text}
        elif isinstance(ev, Finished):
            if on_done is not None:
                on_done(ev.outcome)
            yield edit_response(ev.outcome, model).model_dump()
