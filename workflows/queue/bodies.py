"""Request bodies of the item endpoints: the HTTP API's own request models, one per URL.

A batch line is a request to one of the synchronous endpoints, so its body is validated by
the very model that endpoint parses (:mod:`workflows.requests`) and checked against the same
operator limits (:mod:`workflows.limits`): every bound is written once, and a line is
refused exactly when the direct request would be (plus what a batch cannot do: stream or
echo, refused through the :data:`~workflows.requests.BATCH` validation context). The one
endpoint without an HTTP route, ``/v1/compliance``, has its own model beside the others.

``params()`` of a validated body hands back the parameter model its pipeline takes.
"""

from __future__ import annotations

from typing import Any

from workflows.limits import Limits, RequestRefused
from workflows.requests import (
    BATCH,
    CompletionRequest,
    ComplianceRequest,
    FimRequest,
    RepairRequest,
    RequestModel,
    ReviseRequest,
)

# the names the worker's handlers and older callers know
ReviseBody = ReviseRequest
RepairBody = RepairRequest
ComplianceBody = ComplianceRequest
CompletionBody = CompletionRequest

BODY_MODELS: dict[str, type[RequestModel]] = {
    "/v1/revise": ReviseRequest,
    "/v1/repair": RepairRequest,
    "/v1/compliance": ComplianceRequest,
    "/v1/completions": CompletionRequest,
    "/v1/fim/completions": FimRequest,
}


def validate_body(url: str, body: Any, limits: Limits) -> RequestModel:
    """The body of a line for ``url``, validated as a batch line and checked against ``limits``.

    Raises :class:`pydantic.ValidationError` (field problems) or
    :class:`~workflows.limits.RequestRefused` (over a limit), each naming the field.
    """
    request = BODY_MODELS[url].model_validate(body, context=BATCH)
    request.check(limits)
    return request


__all__ = ["BODY_MODELS", "CompletionBody", "ComplianceBody", "RepairBody", "RequestRefused", "ReviseBody",
           "validate_body"]
