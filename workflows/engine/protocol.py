"""What a caller may ask of the models, and the events and errors that come back.

The HTTP app holds an :class:`EngineClient` and nothing of the models (the vLLM layout). Two
implementations exist: the in-process engine of the HTTP package, and a client over Ray
Serve deployment handles. Both speak in the types below, so nothing here knows of either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from workflows.compliance import ComplianceResult
from workflows.infill import InfillResult
from workflows.options import ComplianceParams, InfillParams, RepairParams, ReviseParams
from workflows.repair import RepairResult
from workflows.revise import ReviseResult
from workflows.rules import RuleSet

R = TypeVar("R")


@dataclass
class Outcome(Generic[R]):
    """A pipeline's result and what it cost."""

    result: R
    prompt_tokens: int
    completion_tokens: int
    queue_ms: float = 0.0  # waiting for the models
    run_ms: float = 0.0  # the pipeline itself


@dataclass(frozen=True)
class TokenDelta:
    """AR streaming: the next piece of text, as the drafter writes it."""

    text: str
    confidence: float


@dataclass(frozen=True)
class Snapshot:
    """Diffusion streaming: the whole span (or document) as denoising stands now."""

    text: str


@dataclass(frozen=True)
class Finished(Generic[R]):
    """The last event of a stream."""

    outcome: Outcome[R]


EngineEvent = TokenDelta | Snapshot | Finished[Any]


class EngineUnavailable(Exception):
    """The engine cannot take the request now; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueueFull(EngineUnavailable):
    """Too many requests are already admitted."""


class QueueTimeout(EngineUnavailable):
    """The request waited too long for its models."""


class StreamCancelled(Exception):
    """Raised inside a pipeline's callback when the stream's reader went away."""


@runtime_checkable
class EngineClient(Protocol):
    """Everything the HTTP layer may ask of the models. Errors: ``ValueError`` for bad input,
    :class:`EngineUnavailable` for overload; streams end with a :class:`Finished` event."""

    async def infill(self, prefix: str, suffix: str, params: InfillParams) -> Outcome[InfillResult]: ...

    def stream_infill(self, prefix: str, suffix: str, params: InfillParams) -> AsyncIterator[EngineEvent]: ...

    async def revise(self, text: str, params: ReviseParams) -> Outcome[ReviseResult]: ...

    def stream_revise(self, text: str, params: ReviseParams) -> AsyncIterator[EngineEvent]: ...

    async def repair(self, code: str, params: RepairParams) -> Outcome[RepairResult]: ...

    async def compliance(self, text: str, rules: RuleSet, params: ComplianceParams) -> Outcome[ComplianceResult]: ...

    async def check_health(self) -> None:
        """Return when a tiny forward pass of every model works; raise otherwise."""
        ...

    def queue_depth(self) -> int:
        """Requests admitted and waiting for a model."""
        ...
