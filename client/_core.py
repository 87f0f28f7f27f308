"""What the sync and async clients share: settings, retry policy, request bodies, decoders.

The two clients differ only in how they wait (``time.sleep`` or ``asyncio.sleep``) and
send; everything that decides *what* to send, *whether* to retry and *how* to read an
answer lives here, as plain functions and small classes.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from client.errors import RemaskError, error_from_body
from client.types import Infill, InfillChunk, Mode, ReviseEvent, Revision

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "REMASK_URL"
KEY_ENV = "REMASK_API_KEY"
RETRY_STATUSES = frozenset({429, 503})  # the server's "busy, come back" answers
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After is capped: a caller that waits longer should say so
# transport failures worth another try: nothing was answered (connect, read, broken stream)
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (httpx.TimeoutException, httpx.NetworkError,
                                                 httpx.RemoteProtocolError)
SSE_DONE = "[DONE]"
JSONL_TYPE = "application/jsonl"


@dataclass(frozen=True)
class ClientConfig:
    """Resolved settings of a client (arguments first, then the environment, then defaults)."""

    base_url: str
    api_key: str | None
    timeout: float
    max_retries: int
    backoff_s: float  # first retry delay without Retry-After; doubles per attempt
    max_backoff_s: float

    @classmethod
    def resolve(cls, base_url: str | None, api_key: str | None, timeout: float, max_retries: int,
                backoff_s: float, max_backoff_s: float) -> ClientConfig:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        url = (base_url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get(KEY_ENV) or None
        return cls(url, key, timeout, max_retries, backoff_s, max_backoff_s)

    def headers(self) -> dict[str, str]:
        h = {"Accept": "application/json", "User-Agent": "remask-python"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RetryPolicy:
    """When to try again and how long to wait first.

    429 and 503 answers and transport failures are retried up to ``max_retries`` times. The
    wait honours the server's ``Retry-After`` (capped at :data:`MAX_RETRY_AFTER_S`); without
    one it is exponential with jitter: attempt ``n`` waits between half and all of
    ``min(max_backoff_s, backoff_s * 2**n)``, so clients that failed together spread out.
    """

    def __init__(self, max_retries: int, backoff_s: float = 0.5, max_backoff_s: float = 8.0,
                 rng: random.Random | None = None) -> None:
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.rng = rng or random.Random()

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_S)
        cap = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
        return cap / 2 + self.rng.uniform(0, cap / 2)

    def after_response(self, attempt: int, resp: httpx.Response) -> float | None:
        """The wait before retrying this answer, or None to not retry it."""
        if resp.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
            return None
        return self.delay(attempt, parse_retry_after(resp.headers.get("retry-after")))

    def after_error(self, attempt: int, exc: Exception) -> float | None:
        """The wait before retrying after a transport failure, or None to give up."""
        if not isinstance(exc, RETRYABLE_ERRORS) or attempt >= self.max_retries:
            return None
        return self.delay(attempt)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def infill_body(prefix: str, suffix: str, *, max_tokens: int, mode: Mode, temperature: float, top_p: float,
                stop: str | list[str] | None, seed: int | None, steps: int | None, stream: bool,
                candidates: bool | None = None, min_confidence: float | None = None,
                language: str | None = None, accept_confidence: float | None = None) -> dict[str, Any]:
    """A ``/v1/completions`` request: OpenAI completions with ``suffix``, plus remask's mode, steps
    and the candidate search's options (None leaves each to the server)."""
    return _drop_none({"prompt": prefix, "suffix": suffix, "max_tokens": max_tokens, "mode": mode,
                       "temperature": temperature, "top_p": top_p, "stop": stop, "seed": seed, "steps": steps,
                       "candidates": candidates, "min_confidence": min_confidence, "language": language,
                       "accept_confidence": accept_confidence, "stream": stream or None})


def load_rules(rules: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """A rule set given as a mapping, or as a path to its JSON or YAML file."""
    if isinstance(rules, Mapping):
        return dict(rules)
    text = Path(rules).read_text(encoding="utf-8")
    if str(rules).endswith(".json"):
        return dict(json.loads(text))
    import yaml

    return dict(yaml.safe_load(text))


def revise_body(text: str, *, spans: Iterable[tuple[int, int]] | None, rules: Mapping[str, Any] | str |
                os.PathLike[str] | None, detect: str, remask_below: float, max_fraction: float, steps: int | None,
                temperature: float, seed: int | None, stream: bool) -> dict[str, Any]:
    body = _drop_none({"text": text, "spans": [list(s) for s in spans] if spans is not None else None,
                       "rules": load_rules(rules) if rules is not None else None, "detect": detect,
                       "remask_below": remask_below, "max_fraction": max_fraction, "steps": steps,
                       "temperature": temperature, "stream": stream or None})
    body["seed"] = seed  # None is meaningful here: "do not seed"
    return body


def repair_body(code: str, *, language: str, rounds: int, steps: int, seed: int | None) -> dict[str, Any]:
    return {"code": code, "language": language, "rounds": rounds, "steps": steps, "seed": seed}


JobSource = str | os.PathLike[str] | Iterable[Mapping[str, Any] | str]


@dataclass(frozen=True)
class JobRequest:
    """How to send a job: a JSONL body (``content``) or a JSON one (``json``), headers, query."""

    content: bytes | None
    json: dict[str, Any] | None
    headers: dict[str, str]
    params: dict[str, str]


def job_request(source: JobSource, *, idempotency_key: str | None, webhook_url: str | None,
                metadata: Mapping[str, str] | None, completion_window_s: int | None) -> JobRequest:
    """The submission of ``source``: a path to a JSONL file, or lines (objects or JSON strings).

    JSONL goes as it is, so the server's errors name the file's own line numbers; options
    that only the JSON form carries (metadata, completion window) switch to that form. An
    idempotency key is always sent (a fresh one unless given), so a retried submission can
    never queue the job twice.
    """
    key = idempotency_key or f"sdk-{uuid.uuid4().hex}"
    if isinstance(source, (str, os.PathLike)):
        jsonl = Path(source).read_bytes()
    else:
        jsonl = "".join((line if isinstance(line, str) else json.dumps(dict(line), ensure_ascii=False))
                        .rstrip("\n") + "\n" for line in source).encode("utf-8")
    if metadata is None and completion_window_s is None:
        params = {"webhook_url": webhook_url} if webhook_url else {}
        return JobRequest(jsonl, None, {"Content-Type": JSONL_TYPE, "Idempotency-Key": key}, params)
    requests = [json.loads(line) for line in jsonl.decode("utf-8").splitlines() if line.strip()]
    body = _drop_none({"requests": requests, "idempotency_key": key, "webhook_url": webhook_url,
                       "metadata": dict(metadata) if metadata is not None else None,
                       "completion_window_s": completion_window_s})
    return JobRequest(None, body, {}, {})


def parse_jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- server-sent events -----------------------------------------------------------------------


class SSEParser:
    """Turns lines of an event stream into the ``data`` of each event (multi-line data joined)."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        """One line (without its newline); returns an event's data when the line ends it."""
        line = line.rstrip("\r")
        if not line:
            data, self._data = self._data, []
            return "\n".join(data) if data else None
        if line.startswith(":"):  # a comment (keep-alive)
            return None
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value.removeprefix(" "))
        return None

    def flush(self) -> str | None:
        """Data of a last event the stream ended without a blank line after."""
        return self.feed("")


def decode_event(data: str) -> dict[str, Any]:
    """One event's JSON; ``{"error": ...}`` (sent after the status line) raises."""
    try:
        event = json.loads(data)
    except json.JSONDecodeError as exc:
        raise RemaskError(f"the server sent an event that is not JSON: {data[:200]!r}") from exc
    if isinstance(event, dict) and "error" in event:
        raise error_from_body(None, event)
    if not isinstance(event, dict):
        raise RemaskError(f"the server sent an event that is not an object: {data[:200]!r}")
    return event


class InfillDecoder:
    """Completion chunks -> :class:`InfillChunk`; keeps the text so far and the final result."""

    def __init__(self) -> None:
        self.text = ""
        self.result: Infill | None = None

    def __call__(self, event: dict[str, Any]) -> InfillChunk | None:
        choices = event.get("choices") or []
        if not choices:  # a usage-only chunk
            return None
        choice = choices[0]
        piece = choice.get("text") or ""
        self.text += piece
        info = event.get("remask") or {}
        kind = info.get("event", "token")
        if kind == "done":
            self.result = Infill.from_completion(event, text=self.text)
            return InfillChunk(piece, "done", finish_reason=choice.get("finish_reason"), result=self.result)
        if kind == "snapshot":
            return InfillChunk(piece, "snapshot", snapshot=info.get("snapshot"))
        return InfillChunk(piece, kind, confidence=info.get("confidence"))


class ReviseDecoder:
    """Revision stream events -> :class:`ReviseEvent`; keeps the final result."""

    def __init__(self) -> None:
        self.result: Revision | None = None

    def __call__(self, event: dict[str, Any]) -> ReviseEvent | None:
        if str(event.get("object", "")).endswith(".snapshot"):
            return ReviseEvent(snapshot=event.get("text", ""))
        if "text" in event and "edits" in event:
            self.result = Revision.of(event)
            return ReviseEvent(result=self.result)
        return None
