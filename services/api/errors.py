"""Errors in the OpenAI shape: ``{"error": {"message", "type", "param", "code"}}``, every route.

``param`` names the request field at fault as a dotted path (``stop``, ``spans.2``,
``rules``), so a client can point at it. Validation errors and requests over an operator
limit are 422, a body that is not JSON or not UTF-8 is 400, overload is 429 (queue full) or
503 (waited too long) with ``Retry-After``. Unexpected errors are 500 with a generic
message; the details go to the log.

Every 5xx answer carries ``Connection: close``: after an unexpected error the server cannot
vouch for the connection's state, and a client that reused it would be reset on its next
request. Text from the request that an error echoes (a field name, say) is escaped where it
is not valid Unicode, so the error itself can always be encoded.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from workflows.engine import EngineUnavailable, QueueFull
from workflows.limits import RequestRefused

log = logging.getLogger("remask.api")

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable_error",
}


class ErrorBody(BaseModel):
    message: str = Field(description="what went wrong, in words")
    type: str = Field(description="error class: invalid_request_error, authentication_error, ...")
    param: str | None = Field(None, description="the request field at fault (dotted path), if any")
    code: str | None = Field(None, description="a stable machine-readable code, if any")


class ErrorResponse(BaseModel):
    """The OpenAI error shape, used by every route."""

    error: ErrorBody = Field(description="the error")


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "tuple", "none"})


class APIError(Exception):
    """An error answer; raise it from a route or a dependency."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None, type: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}
        self.type = type or TYPES.get(status, "invalid_request_error")


def printable(text: str) -> str:
    """``text`` with lone surrogates escaped (``\\ud800``): always encodable as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_body(status: int, message: str, param: str | None = None, code: str | None = None,
               type: str | None = None) -> dict[str, Any]:
    return {"error": {"message": printable(message), "type": type or TYPES.get(status, "invalid_request_error"),
                      "param": None if param is None else printable(param), "code": code}}


def closing_headers(status: int, headers: dict[str, str] | None = None) -> dict[str, str]:
    """``headers`` plus ``Connection: close`` for a 5xx answer."""
    return {**(headers or {}), "Connection": "close"} if status >= 500 else dict(headers or {})


def error_response(err: APIError) -> JSONResponse:
    return JSONResponse(error_body(err.status, err.message, err.param, err.code, err.type),
                        status_code=err.status, headers=closing_headers(err.status, err.headers))


def _param(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """('body', 'spans', 2, 0) -> 'spans.2.0'; the union-member tags pydantic adds are dropped."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    # pydantic names the union member that failed (stop -> 'str', 'list[str]'); users know the field
    parts = [p for p in parts if p not in _TYPE_TAGS and "[" not in p]
    return ".".join(parts) or None


def _message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")


def validation_error(errors: list[dict[str, Any]]) -> APIError:
    """The first error names the field; the message lists them all (at most five)."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return APIError(400, "the request body is not valid JSON", code="invalid_json")
    first = errors[0]
    param = _param(first.get("loc", ()))
    parts = [f"{_param(e.get('loc', ())) or 'body'}: {_message(e)}" for e in errors[:5]]
    return APIError(422, "; ".join(parts), param=param, code=str(first.get("type", "invalid_value")))


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error, from routing to the engine, in the OpenAI shape."""

    @app.exception_handler(APIError)
    async def _api(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(list(exc.errors())))

    @app.exception_handler(ValidationError)
    async def _validation(_: Request, exc: ValidationError) -> JSONResponse:
        return error_response(validation_error(list(exc.errors())))  # type: ignore[arg-type]

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: "no such route", 405: "method not allowed on this route"}.get(exc.status_code, str(exc.detail))
        return error_response(APIError(exc.status_code, message, headers=dict(exc.headers or {})))

    @app.exception_handler(EngineUnavailable)
    async def _busy(_: Request, exc: EngineUnavailable) -> JSONResponse:
        status = 429 if isinstance(exc, QueueFull) else 503
        code = "queue_full" if status == 429 else "queue_timeout"
        retry = str(max(1, math.ceil(exc.retry_after)))
        return error_response(APIError(status, str(exc), code=code, headers={"Retry-After": retry}))

    @app.exception_handler(RequestRefused)
    async def _refused(_: Request, exc: RequestRefused) -> JSONResponse:
        return error_response(APIError(422, str(exc), param=exc.param, code=exc.code))

    @app.exception_handler(ValueError)
    async def _value(_: Request, exc: ValueError) -> JSONResponse:
        # the pipelines refuse bad input with ValueError (empty context, unknown language, ...)
        return error_response(APIError(400, str(exc), code="invalid_input"))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(APIError(500, "internal error; see the server log", code="internal_error"))
