"""Request models of the HTTP API, documented field by field (they make up /openapi.json).

Three conventions users already speak:

* ``POST /v1/completions``: OpenAI legacy completions (``prompt`` + ``suffix``), so the
  official ``openai`` client works unchanged; ``mode`` and ``steps`` are remask extensions.
* ``POST /v1/fim/completions``: the Mistral/Codestral fill-in-the-middle request.
* ``POST /v1/revise`` and ``POST /v1/repair``: remask's own editing calls.

The models themselves live in :mod:`workflows.requests`, because a batch job's lines are
validated by the same models (the job queue may not import the HTTP layer): one definition
of every field and bound for both paths. Static bounds sit on the fields; the operator's
limits (:class:`workflows.limits.Limits`, configured in :class:`services.api.settings.Settings`)
are applied by each model's ``check(limits)`` and written into the published OpenAPI
document by :func:`workflows.limits.document_limits`. The response models are in
:mod:`services.api.responses`.
"""

from __future__ import annotations

from workflows.requests import (
    FIM_DEFAULT_TOKENS,
    FIM_STEPS,
    MAX_STOP,
    SEED_MAX,
    CompletionRequest,
    FimRequest,
    Mode,
    RepairRequest,
    RequestModel,
    ReviseRequest,
    StreamOptions,
)

__all__ = ["FIM_DEFAULT_TOKENS", "FIM_STEPS", "MAX_STOP", "SEED_MAX", "CompletionRequest", "FimRequest", "Mode",
           "RepairRequest", "RequestModel", "ReviseRequest", "StreamOptions"]
