"""``/v1/jobs``: batch jobs in OpenAI Batch conventions, over :class:`workflows.queue.JobQueue`.

Submit JSONL (``Content-Type: application/jsonl`` or ``application/x-ndjson``, one
``{custom_id, method, url, body}`` per line) or JSON (``{"requests": [...], ...}``); look at
a job, list jobs, cancel one (finished items are kept), read results and errors as JSONL.
Every call is scoped to the caller's tenant: another tenant's job id answers 404, exactly
like an unknown one, and so does a job id (or ``after``) not of the id format, before any key
is read. A ``webhook_url`` must resolve to public addresses only, unless the operator allows
it (``Settings.webhook_allow``): 422 naming ``webhook_url`` otherwise. The queue client and
the webhook's DNS lookup are synchronous, so they run in the thread pool, never on the event
loop.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Security
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from services.api.errors import APIError, ErrorResponse
from services.api.routes import ERRORS, bearer
from services.api.schemas import RequestModel
from services.api.settings import ANONYMOUS_TENANT
from workflows.limits import Limits
from workflows.queue import Job, JobNotFound, JobQueue, SubmissionError
from workflows.queue.keys import is_job_id
from workflows.queue.webhook import WebhookRefused

JSONL_TYPES = ("application/jsonl", "application/x-ndjson", "application/json-lines", "text/plain")


class JSONLResponse(PlainTextResponse):
    """JSON Lines (one JSON object per line), as job results and errors are served."""

    media_type = "application/jsonl"


class JobSubmission(RequestModel):
    """A job as JSON; JSONL bodies carry the options in headers and the query instead.

    Its strings must be valid Unicode like every request's; each line is checked by the
    queue's validation, which names the line and field.
    """

    unchecked = frozenset({"requests"})
    requests: list[dict[str, Any]] = Field(min_length=1, description="items: {custom_id, method, url, body}, url one "
                                           "of /v1/revise, /v1/repair, /v1/completions, /v1/fim/completions, "
                                           "/v1/compliance")
    idempotency_key: str | None = Field(None, description="a resubmission with the same key returns the first job")
    webhook_url: str | None = Field(None, description="POSTed the job object when it reaches a final state")
    metadata: dict[str, str] | None = Field(None, description="up to 16 string pairs, stored with the job")
    completion_window_s: int | None = Field(None, ge=60,
                                            description="seconds the job may wait and run before it expires")


class Counts(BaseModel):
    total: int = Field(description="items in the job")
    completed: int = Field(description="items that succeeded")
    failed: int = Field(description="items that failed")


class ReviewCountsOut(BaseModel):
    items: int = Field(description="items whose result leaves findings for review (compliance rewrites not applied)")
    findings: int = Field(description="those findings, in all (each item's result lists them under needs_review)")


class JobOut(BaseModel):
    """A job in OpenAI Batch shape (``object: "batch"``), plus ``progress``."""

    id: str = Field(description="job id")
    object: str = Field("batch", description="object type")
    status: str = Field(description="queued, validating, in_progress, finalizing, completed, failed, "
                                    "cancelling, cancelled or expired")
    request_counts: Counts = Field(description="items in all, succeeded and failed")
    progress: float = Field(description="share of items done, 0..1")
    created_at: int = Field(description="Unix time of submission")
    expires_at: int | None = Field(None, description="end of the completion window")
    in_progress_at: int | None = Field(None, description="when a worker started it")
    finalizing_at: int | None = Field(None, description="when its last item finished")
    completed_at: int | None = Field(None, description="when it completed")
    failed_at: int | None = Field(None, description="when it failed")
    cancelling_at: int | None = Field(None, description="when cancellation was asked")
    cancelled_at: int | None = Field(None, description="when it was cancelled")
    expired_at: int | None = Field(None, description="when it expired")
    attempts: int = Field(0, description="deliveries that started running it")
    current_item: str | None = Field(None, description="custom_id of the item running now")
    error: str | None = Field(None, description="why it failed, when it did")
    idempotency_key: str | None = Field(None, description="the key it was submitted with")
    webhook_url: str | None = Field(None, description="where its final state is POSTed")
    metadata: dict[str, str] = Field(default_factory=dict, description="what the submitter attached")
    review_counts: ReviewCountsOut = Field(default_factory=lambda: ReviewCountsOut(items=0, findings=0),
                                           description="findings left for a person across the job's results")


class JobList(BaseModel):
    object: str = Field("list", description="object type")
    data: list[JobOut] = Field(description="jobs, newest first")
    first_id: str | None = Field(None, description="id of the first job on this page")
    last_id: str | None = Field(None, description="id of the last job on this page; pass it as `after`")
    has_more: bool = Field(description="whether another page follows")


def _out(job: Job) -> JobOut:
    d = job.to_dict()
    d.pop("tenant", None)
    return JobOut(**d)


def _queue(request: Request) -> JobQueue:
    return request.app.state.jobs  # type: ignore[no-any-return]


def _limits(request: Request) -> Limits:
    """The operator's request limits: a line is bounded exactly like the request sent directly."""
    return request.app.state.settings.limits  # type: ignore[no-any-return]


def _tenant(request: Request) -> str:
    return str(getattr(request.state, "tenant", ANONYMOUS_TENANT))


def _not_found(job_id: str, param: str = "job_id") -> APIError:
    """The answer for a job this tenant cannot see: one body for unknown, malformed and
    other tenants' ids, so a probe learns nothing."""
    return APIError(404, str(JobNotFound(job_id)), param=param, code="job_not_found")


def _checked(job_id: str, param: str = "job_id") -> str:
    """``job_id`` if it has the id format; else the unknown-job 404 (no key is ever read)."""
    if not is_job_id(job_id):
        raise _not_found(job_id, param)
    return job_id


async def _check_webhook(request: Request, url: str | None) -> None:
    """422 unless ``url`` is an http(s) URL whose host resolves to allowed addresses only."""
    if url is None:
        return
    policy = request.app.state.settings.webhook_policy
    try:
        await run_in_threadpool(policy.check_url, url)  # a DNS lookup, bounded by the policy
    except WebhookRefused as exc:
        raise APIError(422, f"webhook_url: {exc}", param="webhook_url", code="invalid_webhook_url") from None


async def _call(fn: Any, *args: Any, not_found_param: str = "job_id", **kw: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args, **kw)
    except JobNotFound as exc:
        raise _not_found(exc.args[0], not_found_param) from None
    except SubmissionError as exc:
        first = exc.errors[0]
        where = f"line {first.line}" if first.line else ""
        param = ".".join(p for p in (where, first.field) if p) or None
        raise APIError(422, str(exc), param=param, code="invalid_submission") from None


router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Security(bearer)], responses=ERRORS)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "no such job for this tenant (unknown, malformed or another's id)"}}
_BODY_DOC = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": JobSubmission.model_json_schema()},
    "application/jsonl": {"schema": {"type": "string", "description": "one {custom_id, method, url, body} per line"}},
}}}


@router.post("", response_model=JobOut, summary="Submit a batch job", openapi_extra=_BODY_DOC,
             description="JSON (`{requests: [...]}`) or JSONL. With JSONL, `Idempotency-Key` comes as a header and "
                         "`webhook_url` in the query. Errors name the line and field of the first problem.")
async def submit(request: Request,
                 idempotency_key: Annotated[str | None, Header(description="JSONL: the idempotency key")] = None,
                 webhook_url: Annotated[str | None, Query(description="JSONL: the webhook URL")] = None) -> JobOut:
    raw = await request.body()  # BodyGuard has checked its size and UTF-8
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    queue, tenant = _queue(request), _tenant(request)
    if ctype in JSONL_TYPES:
        await _check_webhook(request, webhook_url)
        job = await _call(queue.submit, raw.decode("utf-8"), tenant, idempotency_key=idempotency_key,
                          webhook_url=webhook_url, limits=_limits(request))
        return _out(job)
    try:
        sub = JobSubmission.model_validate(json.loads(raw or b"null"))
    except json.JSONDecodeError:
        raise APIError(400, "the request body is not valid JSON (send JSONL as application/jsonl)",
                       code="invalid_json") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err["loc"]) or None
        raise APIError(422, f"{param or 'body'}: {err['msg']}", param=param, code=str(err["type"])) from None
    await _check_webhook(request, sub.webhook_url)
    job = await _call(queue.submit, sub.requests, tenant, idempotency_key=sub.idempotency_key or idempotency_key,
                      webhook_url=sub.webhook_url, metadata=sub.metadata, completion_window_s=sub.completion_window_s,
                      limits=_limits(request))
    return _out(job)


@router.get("", response_model=JobList, summary="List your jobs, newest first", responses=NOT_FOUND)
async def list_jobs(request: Request, limit: Annotated[int, Query(ge=1, le=100, description="jobs per page")] = 20,
                    after: Annotated[str | None, Query(description="last id of the previous page")] = None) -> JobList:
    if after is not None:
        _checked(after, "after")
    jobs = await _call(_queue(request).list, _tenant(request), limit + 1, after, not_found_param="after")
    page = [_out(j) for j in jobs[:limit]]
    return JobList(data=page, first_id=page[0].id if page else None, last_id=page[-1].id if page else None,
                   has_more=len(jobs) > limit)


@router.get("/{job_id}", response_model=JobOut, summary="A job's state, counts and progress", responses=NOT_FOUND)
async def get_job(request: Request, job_id: str) -> JobOut:
    return _out(await _call(_queue(request).get, _checked(job_id), _tenant(request)))


@router.post("/{job_id}/cancel", response_model=JobOut, summary="Cancel a job; finished items are kept",
             responses=NOT_FOUND)
async def cancel_job(request: Request, job_id: str) -> JobOut:
    return _out(await _call(_queue(request).cancel, _checked(job_id), _tenant(request)))


@router.get("/{job_id}/results", response_class=JSONLResponse, summary="Output lines of succeeded items (JSONL)",
            responses=NOT_FOUND)
async def job_results(request: Request, job_id: str) -> PlainTextResponse:
    return JSONLResponse(await _call(_queue(request).results_jsonl, _checked(job_id), _tenant(request)))


@router.get("/{job_id}/errors", response_class=JSONLResponse, summary="Output lines of failed items (JSONL)",
            responses=NOT_FOUND)
async def job_errors(request: Request, job_id: str) -> PlainTextResponse:
    return JSONLResponse(await _call(_queue(request).errors_jsonl, _checked(job_id), _tenant(request)))
