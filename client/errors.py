"""Typed errors of the SDK, built from the server's OpenAI-shaped error body.

Every error answer of the service reads ``{"error": {"message", "type", "param", "code"}}``;
:func:`error_from_response` turns it into the subclass for its status, so a caller can catch
exactly what it can handle (``except RateLimitError``) and read the server's own words
(``err.message``) and the field at fault (``err.param``).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

# the error type the server names in a streamed error event -> the status it stands for
_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "server_error": 500,
    "service_unavailable_error": 503,
}


class RemaskError(Exception):
    """Any failure of a remask call; ``status`` is None when no answer came back."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 param: str | None = None, type: str | None = None, retry_after: float | None = None,
                 body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status  # HTTP status of the answer
        self.code = code  # the server's stable machine-readable code, e.g. "queue_full"
        self.param = param  # the request field at fault, as a dotted path ("spans.2")
        self.type = type  # the server's error class, e.g. "invalid_request_error"
        self.retry_after = retry_after  # seconds the server asked to wait (429, 503)
        self.body = body  # the decoded error body, as sent

    def __str__(self) -> str:
        where = f" [{self.param}]" if self.param else ""
        status = f"{self.status} " if self.status is not None else ""
        return f"{status}{self.message}{where}"


class BadRequestError(RemaskError):
    """400: the body is not JSON or UTF-8, or the pipeline refused the input."""


class ValidationError(BadRequestError):
    """422: a field is invalid or over a limit; :attr:`param` names it."""

    @property
    def field(self) -> str | None:
        return self.param


class AuthenticationError(RemaskError):
    """401: no API key, or one the server does not know."""


class PermissionDeniedError(RemaskError):
    """403."""


class NotFoundError(RemaskError):
    """404: no such route, or no such job for this API key's tenant."""


class PayloadTooLargeError(RemaskError):
    """413: the request body is over the server's size limit."""


class RateLimitError(RemaskError):
    """429: the server's queue is full; see :attr:`retry_after`."""


class InternalServerError(RemaskError):
    """500 and other 5xx answers without a class of their own."""


class ServiceUnavailableError(RemaskError):
    """503: the server waited too long for a model, or is not ready; see :attr:`retry_after`."""


class APIConnectionError(RemaskError):
    """No answer: the server could not be reached, or the connection broke."""


class APITimeoutError(APIConnectionError):
    """No answer within the client's timeout."""


class JobWaitTimeout(RemaskError, TimeoutError):
    """``wait_job`` gave up before the job reached a final state (the job goes on)."""


_BY_STATUS: dict[int, type[RemaskError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_class(status: int) -> type[RemaskError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return InternalServerError if status >= 500 else RemaskError


def error_from_body(status: int | None, body: Any, *, fallback: str = "", retry_after: float | None = None
                    ) -> RemaskError:
    """The typed error for an answer whose decoded body is ``body`` (any shape)."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        err = {"message": err} if isinstance(err, str) else {}
    if status is None:  # an error event inside a stream carries no status: its type does
        status = _TYPE_STATUS.get(str(err.get("type")), 500)
    message = str(err.get("message") or fallback or f"HTTP {status}")
    cls = error_class(status)
    return cls(message, status=status, code=err.get("code"), param=err.get("param"), type=err.get("type"),
               retry_after=retry_after, body=body)


def error_from_response(resp: httpx.Response, retry_after: float | None = None) -> RemaskError:
    """The typed error for an answer with an error status; the body must have been read."""
    try:
        body: Any = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    fallback = resp.text.strip()[:500] or resp.reason_phrase
    return error_from_body(resp.status_code, body, fallback=fallback, retry_after=retry_after)


def connection_error(exc: Exception) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"no answer within the timeout ({type(exc).__name__})")
    return APIConnectionError(f"could not reach the server: {exc or type(exc).__name__}")
