"""The FastAPI application: ``build_app(engine, settings)``.

The app holds an :class:`~workflows.engine.EngineClient` and nothing of the models, and
imports nothing of Ray: ``remask serve-local`` runs it with uvicorn over a
:class:`~services.api.engine.LocalEngine`, and the Ray Serve ingress wraps the same app
with ``@serve.ingress`` over an engine client made of deployment handles.

Routes: ``POST /v1/completions``, ``POST /v1/fim/completions``, ``POST /v1/revise``,
``POST /v1/repair``, ``GET /v1/models``, and the ``/v1/jobs`` batch routes when a job queue
is given; ``GET /health`` (the process answers), ``GET /ready`` (models loaded and a tiny
forward pass works), ``GET /metrics`` (Prometheus), the OpenAPI document at
``/openapi.json`` (its bounds are the configured limits), and the browser playground at
``/`` (:mod:`services.api.playground`).
Request handling, outside in: metrics and access log, a JSON 500 for anything unexpected,
API keys, body size and encoding, then the route.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from services.api.errors import APIError, install_error_handlers
from services.api.jobs import router as jobs_router
from services.api.metrics import Metrics
from services.api.middleware import Authenticate, BodyGuard, Contain, Observe
from services.api.playground import STATIC_PREFIX, install_playground
from services.api.routes import router
from services.api.settings import Settings
from workflows.engine import EngineClient
from workflows.limits import document_limits
from workflows.queue import JobQueue

log = logging.getLogger("remask.api")

API_VERSION = "1"
DESCRIPTION = """remask: an AR drafter drafts, a masked-diffusion refiner re-masks and denoises spans.

* Fill in the middle: `/v1/completions` (OpenAI legacy completions, `prompt` + `suffix`) and
  `/v1/fim/completions` (Mistral/Codestral), both streaming as server-sent events.
* Editing: `/v1/revise` (spans, doubtful spans, or a compliance rule set) and `/v1/repair` (code).
* Offsets are Python code points. Errors use the OpenAI shape `{"error": {message, type, param, code}}`.
* Every response may carry a `remask` object: per-token confidences, changed tokens, nfe, audit record.
"""


class Health(BaseModel):
    status: str = Field(description="ok when the process answers; ready when the models work")


def _route_templates(app: FastAPI) -> list[str]:
    """Every route path of the app, from its OpenAPI document (stable across FastAPI versions)."""
    extra = [p for p in (app.openapi_url, app.docs_url, app.redoc_url, "/", f"{STATIC_PREFIX}/{{name}}") if p]
    return [*app.openapi()["paths"], *extra]


def _errors_as_json(doc: dict[str, Any]) -> dict[str, Any]:
    """Error answers are JSON on every route: FastAPI files them under the route's own media
    type (text/plain, application/jsonl), which would tell clients to expect otherwise."""
    for operation in (op for path in doc.get("paths", {}).values() for op in path.values() if isinstance(op, dict)):
        for status, answer in operation.get("responses", {}).items():
            content = answer.get("content", {})
            if status.isdigit() and int(status) >= 400 and content and "application/json" not in content:
                answer["content"] = {"application/json": next(iter(content.values()))}
    return doc


def build_app(engine: EngineClient, settings: Settings | None = None, jobs: JobQueue | None = None) -> FastAPI:
    """The HTTP API over ``engine``; ``settings`` default to :class:`Settings` () (env keys).

    With ``jobs`` (a queue client; workers run elsewhere) the ``/v1/jobs`` routes are served.
    """
    settings = settings or Settings()
    app = FastAPI(title="remask", version=API_VERSION, description=DESCRIPTION)
    metrics = Metrics(engine.queue_depth)
    app.state.engine = engine
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.jobs = jobs
    install_error_handlers(app)
    app.include_router(router)
    if jobs is not None:
        app.include_router(jobs_router)

    @app.get("/health", response_model=Health, summary="Liveness: the process answers")
    async def health() -> Health:
        return Health(status="ok")

    @app.get("/ready", response_model=Health, summary="Readiness: the models answer a tiny forward pass",
             responses={503: {"description": "a model failed or did not answer in time"}})
    async def ready() -> Any:
        try:
            await asyncio.wait_for(engine.check_health(), settings.ready_timeout_s)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is for the operator
            reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise APIError(503, f"not ready: {reason}", code="not_ready",
                           headers={"Retry-After": str(settings.retry_after_s)}) from None
        return Health(status="ready")

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus(_: Request) -> Response:
        if jobs is not None:
            try:
                metrics.set_jobs(await run_in_threadpool(jobs.stats))
            except Exception as exc:  # noqa: BLE001 - a scrape still answers when Redis does not
                log.warning("job queue figures unavailable: %s", type(exc).__name__)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    install_playground(app)

    def openapi() -> dict[str, Any]:
        # the published bounds are the configured limits, not the ceilings an operator may raise them to
        if app.openapi_schema is None:
            _errors_as_json(document_limits(FastAPI.openapi(app), settings.limits))
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]

    # added last = runs first: observe everything (a contained 500 too), contain what escapes,
    # then keys, then the body checks
    app.add_middleware(BodyGuard, max_body_bytes=settings.limits.max_body_bytes,
                       larger={"/v1/jobs": settings.limits.max_job_bytes})
    app.add_middleware(Authenticate, settings=settings)
    app.add_middleware(Contain)
    app.add_middleware(Observe, metrics=metrics, templates=lambda: _route_templates(app))
    return app
