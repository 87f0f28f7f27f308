"""``AsyncRemask``: the asyncio client of the remask HTTP API (the same methods as :class:`client.Remask`)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self

import httpx

from client._core import (
    ClientConfig,
    InfillDecoder,
    JobSource,
    RetryPolicy,
    ReviseDecoder,
    infill_body,
    job_request,
    parse_jsonl,
    parse_retry_after,
    repair_body,
    revise_body,
)
from client.errors import JobWaitTimeout, connection_error, error_from_response
from client.streaming import AsyncStream
from client.types import (
    Infill,
    InfillChunk,
    Job,
    JobOutput,
    JobPage,
    Mode,
    Repair,
    ReviseEvent,
    Revision,
)

_sleep = asyncio.sleep  # one name to replace in tests that must not wait


class AsyncRemask:
    """An asyncio client of a remask server: the options, methods and errors of
    :class:`client.Remask`, every method a coroutine. Use it as an async context manager, or
    await :meth:`close`."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, timeout: float = 60.0,
                 max_retries: int = 2, backoff_s: float = 0.5, max_backoff_s: float = 8.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = ClientConfig.resolve(base_url, api_key, timeout, max_retries, backoff_s, max_backoff_s)
        self.retry = RetryPolicy(max_retries, backoff_s, max_backoff_s)
        self._http = httpx.AsyncClient(base_url=self.config.base_url, headers=self.config.headers(),
                                  timeout=timeout, transport=transport)

    # -- plumbing ---------------------------------------------------------------------------

    async def _send(self, method: str, path: str, *, stream: bool = False, **kw: Any) -> httpx.Response:
        """Send with retries; an error answer raises its typed error. A streamed answer is left open."""
        request = self._http.build_request(method, path, **kw)
        attempt = 0
        while True:
            try:
                resp = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                delay = self.retry.after_error(attempt, exc)
                if delay is None:
                    raise connection_error(exc) from exc
            else:
                delay = self.retry.after_response(attempt, resp)
                if delay is None:
                    if resp.is_error:
                        await resp.aread()
                        await resp.aclose()
                        raise error_from_response(resp, parse_retry_after(resp.headers.get("retry-after")))
                    return resp
                await resp.aclose()
            await _sleep(delay)
            attempt += 1

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        return (await self._send(method, path, **kw)).json()

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- fill in the middle -----------------------------------------------------------------

    async def infill(self, prefix: str, suffix: str = "", *, max_tokens: int = 16, mode: Mode = "hybrid",
               temperature: float = 0.0, top_p: float = 1.0, stop: str | list[str] | None = None,
               seed: int | None = None, steps: int | None = None,
               candidates: bool | None = None, min_confidence: float | None = None,
               language: str | None = None, accept_confidence: float | None = None) -> Infill:
        """The text to insert between ``prefix`` and ``suffix`` (``POST /v1/completions``).

        ``mode``: ar = the drafter alone, diffusion = the refiner alone, hybrid = the drafter
        drafts and the refiner redoes its weak tokens. The result carries per-token
        confidences (``tokens``), the refiner's forward passes (``nfe``) and the audit record.
        ``steps``: the refiner's denoising steps; None leaves it to the server, whose default
        for completions is the measured latency/quality trade-off (see ``/docs``).
        ``candidates``: the answer cut to the cursor's scope, checked by the parser and ranked
        (the server's default: on); False returns the models' raw answer. ``min_confidence``:
        below it the answer is empty. ``language``: the syntax check's (None: guessed).
        ``accept_confidence``: the search answers from its first stage (the mode's own answer and
        the document's continuations) at this confidence, else widens (None: the server's, 0).
        """
        body = infill_body(prefix, suffix, max_tokens=max_tokens, mode=mode, temperature=temperature, top_p=top_p,
                           stop=stop, seed=seed, steps=steps, stream=False,
                           candidates=candidates, min_confidence=min_confidence, language=language,
                           accept_confidence=accept_confidence)
        return Infill.from_completion(await self._json("POST", "/v1/completions", json=body))

    async def stream_infill(self, prefix: str, suffix: str = "", *, max_tokens: int = 16, mode: Mode = "hybrid",
                      temperature: float = 0.0, top_p: float = 1.0, stop: str | list[str] | None = None,
                      seed: int | None = None, steps: int | None = None,
               candidates: bool | None = None, min_confidence: float | None = None,
               language: str | None = None, accept_confidence: float | None = None) -> AsyncStream[InfillChunk, Infill]:
        """:meth:`infill` as a stream of :class:`InfillChunk`: the ``text`` pieces add up to the
        insertion; diffusion states arrive as ``snapshot``; the last chunk carries ``result``."""
        body = infill_body(prefix, suffix, max_tokens=max_tokens, mode=mode, temperature=temperature, top_p=top_p,
                           stop=stop, seed=seed, steps=steps, stream=True,
                           candidates=candidates, min_confidence=min_confidence, language=language,
                           accept_confidence=accept_confidence)
        resp = await self._send("POST", "/v1/completions", json=body, stream=True)
        return AsyncStream(resp, InfillDecoder())

    # -- editing ----------------------------------------------------------------------------

    async def revise(self, text: str, *, spans: Iterable[tuple[int, int]] | None = None,
               rules: Mapping[str, Any] | str | os.PathLike[str] | None = None, detect: str = "refiner",
               remask_below: float = 0.2, max_fraction: float = 0.15, steps: int | None = None,
               temperature: float = 0.0, seed: int | None = 0) -> Revision:
        """Revise ``text`` (``POST /v1/revise``): redo ``spans`` (code-point ``[start, end)``), or the
        spans the models doubt, or apply a compliance rule set (a mapping or a JSON/YAML path).
        The result has the new text, the edits, a unified diff and the audit record."""
        body = revise_body(text, spans=spans, rules=rules, detect=detect, remask_below=remask_below,
                           max_fraction=max_fraction, steps=steps, temperature=temperature, seed=seed, stream=False)
        return Revision.of(await self._json("POST", "/v1/revise", json=body))

    async def stream_revise(self, text: str, *, spans: Iterable[tuple[int, int]] | None = None,
                      detect: str = "refiner", remask_below: float = 0.2, max_fraction: float = 0.15,
                      steps: int | None = None, temperature: float = 0.0, seed: int | None = 0
                      ) -> AsyncStream[ReviseEvent, Revision]:
        """:meth:`revise` as a stream: denoising snapshots of the whole text, then the result."""
        body = revise_body(text, spans=spans, rules=None, detect=detect, remask_below=remask_below,
                           max_fraction=max_fraction, steps=steps, temperature=temperature, seed=seed, stream=True)
        return AsyncStream(await self._send("POST", "/v1/revise", json=body, stream=True), ReviseDecoder())

    async def repair(self, code: str, *, language: str = "python", rounds: int = 3, steps: int = 8,
               seed: int | None = 0) -> Repair:
        """Code that parses, with the fewest edits found (``POST /v1/repair``); ``parses`` says
        whether a repair was found within ``rounds``."""
        body = repair_body(code, language=language, rounds=rounds, steps=steps, seed=seed)
        return Repair.of(await self._json("POST", "/v1/repair", json=body))

    # -- batch jobs -------------------------------------------------------------------------

    async def submit_job(self, source: JobSource, *, idempotency_key: str | None = None, webhook_url: str | None = None,
                   metadata: Mapping[str, str] | None = None, completion_window_s: int | None = None) -> Job:
        """Queue a batch job: ``source`` is a path to a JSONL file or the lines themselves
        (``{custom_id, method, url, body}`` objects or JSON strings). Errors name line and field."""
        req = job_request(source, idempotency_key=idempotency_key, webhook_url=webhook_url, metadata=metadata,
                          completion_window_s=completion_window_s)
        return Job.of(await self._json("POST", "/v1/jobs", content=req.content, json=req.json, headers=req.headers,
                                 params=req.params))

    async def get_job(self, job_id: str) -> Job:
        return Job.of(await self._json("GET", f"/v1/jobs/{job_id}"))

    async def list_jobs(self, *, limit: int = 20, after: str | None = None) -> JobPage:
        """Your jobs, newest first; page on with ``after=page.last_id``."""
        params: dict[str, Any] = {"limit": limit} | ({"after": after} if after else {})
        return JobPage.of(await self._json("GET", "/v1/jobs", params=params))

    async def cancel_job(self, job_id: str) -> Job:
        """Cancel a job; items already finished keep their results."""
        return Job.of(await self._json("POST", f"/v1/jobs/{job_id}/cancel"))

    async def job_results(self, job_id: str) -> list[JobOutput]:
        """Output lines of the items that succeeded, in input order."""
        return [JobOutput.of(d) for d in parse_jsonl((await self._send("GET", f"/v1/jobs/{job_id}/results")).text)]

    async def job_errors(self, job_id: str) -> list[JobOutput]:
        """Output lines of the items that failed, in input order."""
        return [JobOutput.of(d) for d in parse_jsonl((await self._send("GET", f"/v1/jobs/{job_id}/errors")).text)]

    async def wait_job(self, job_id: str, *, poll_interval: float = 1.0, timeout: float | None = None,
                 on_progress: Callable[[Job], None] | None = None) -> Job:
        """Poll until the job is final and return it; ``on_progress`` sees every poll's job.

        Raises :class:`client.errors.JobWaitTimeout` after ``timeout`` seconds (the job goes on).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = await self.get_job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.final:
                return job
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise JobWaitTimeout(f"job {job_id} is still {job.status} after {timeout} s")
            await _sleep(poll_interval if left is None else min(poll_interval, left))
