"""Request models of the HTTP API, documented field by field (they make up /openapi.json).

Three conventions users already speak:

* ``POST /v1/completions``: OpenAI legacy completions (``prompt`` + ``suffix``), so the
  official ``openai`` client works unchanged; ``mode`` and ``steps`` are remask extensions.
* ``POST /v1/fim/completions``: the Mistral/Codestral fill-in-the-middle request.
* ``POST /v1/revise`` and ``POST /v1/repair``: remask's own editing calls.

The models themselves live in :mod:`workflows.requests`, because a batch job's lines are
validated by the same models (the job queue may not import the HTTP layer), and every option
they share with a pipeline is that pipeline's own field in :mod:`workflows.options`: one
definition of every field, bound and default for the HTTP API, batch lines and the CLI.
Static bounds sit on the fields; the operator's limits (:class:`workflows.limits.Limits`,
configured in :class:`services.api.settings.Settings`) are applied by each model's
``check(limits)`` and written into the published OpenAPI document by
:func:`workflows.limits.document_limits`. The response models and their builders are in
:mod:`workflows.engine.responses`, shared with the Serve replicas and the batch worker.
"""

from __future__ import annotations

from workflows.options import DEFAULTS, INFILL_MAX_TOKENS, SEED_MAX, Mode
from workflows.requests import (
    MAX_STOP,
    CompletionRequest,
    FimRequest,
    RepairRequest,
    RequestModel,
    ReviseRequest,
    StreamOptions,
)

FIM_STEPS = DEFAULTS["infill"].steps  # the step default of both completion endpoints, under the name clients know

__all__ = ["FIM_STEPS", "INFILL_MAX_TOKENS", "MAX_STOP", "SEED_MAX", "CompletionRequest", "FimRequest", "Mode",
           "RepairRequest", "RequestModel", "ReviseRequest", "StreamOptions"]
