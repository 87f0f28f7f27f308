"""remask's Python SDK: typed calls to a remask server over HTTP (httpx).

::

    from client import Remask

    with Remask("http://127.0.0.1:8000", api_key="...") as rm:
        ins = rm.infill("def add(a, b):\n    return ", "\n", max_tokens=8)
        print(ins.text, [t.confidence for t in ins.tokens])
        rev = rm.revise("The licensee shall not discloze it.", spans=[(23, 31)])
        print(rev.text, rev.edits)
        job = rm.submit_job("docs.jsonl")
        done = rm.wait_job(job.id, on_progress=lambda j: print(j.progress))
        rows = rm.job_results(job.id)

:class:`AsyncRemask` has the same methods as coroutines (``async for c in await
rm.stream_infill(...)``). Errors are :class:`RemaskError` subclasses carrying the server's
message, code and the field at fault. Nothing here imports the models.
"""

from client.aio import AsyncRemask
from client.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    JobWaitTimeout,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    RemaskError,
    ServiceUnavailableError,
    ValidationError,
)
from client.streaming import AsyncStream, Stream
from client.sync import Remask
from client.types import (
    Edit,
    Infill,
    InfillChunk,
    Issue,
    Job,
    JobCounts,
    JobOutput,
    JobPage,
    Repair,
    ReviewCounts,
    ReviseEvent,
    Revision,
    TokenConfidence,
    Usage,
)

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AsyncRemask",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "Edit",
    "Infill",
    "InfillChunk",
    "InternalServerError",
    "Issue",
    "Job",
    "JobCounts",
    "JobOutput",
    "JobPage",
    "JobWaitTimeout",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "Remask",
    "RemaskError",
    "Repair",
    "ReviewCounts",
    "ReviseEvent",
    "Revision",
    "ServiceUnavailableError",
    "Stream",
    "TokenConfidence",
    "Usage",
    "ValidationError",
]
