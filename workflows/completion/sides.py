"""The two models as the completion search sees them: a few batched calls on each side.

The search (:mod:`workflows.completion.search`) only ever asks the drafter side for drafts
and for scores of middles, and the refiner side for refinements, fills, alternatives and
scores. In one process :class:`LocalDrafter` and :class:`LocalRefiner` answer from the
models themselves; on Ray Serve the ingress answers from the drafter and refiner
deployments (``services.serve.engine``), so one search orchestrates calls between two
replicas that each hold one model. The calls are coroutines for that reason; in process they
never suspend, and :func:`run_now` runs the search without an event loop.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from drafter.model import Drafter
from drafter.outputs import Draft
from refiner.text import TextRefiner
from workflows.completion.candidates import alternatives, diffusion_fills
from workflows.completion.rank import middle_scores, refiner_scores
from workflows.infill import InfillResult, draft_many, refine_drafts
from workflows.options import InfillParams

T = TypeVar("T")

Hole = tuple[str, str, InfillParams]  # (prefix, suffix, params)
DraftedHole = tuple[str, str, Draft, InfillParams]  # (prefix, suffix, draft, params)


class DrafterSide(Protocol):
    """What the search asks of the drafter."""

    async def drafts(self, holes: list[Hole]) -> list[Draft]:
        """FIM drafts of the holes, one batched generation (:func:`workflows.infill.draft_many`)."""
        ...

    async def middle_scores(self, prefix: str, suffix: str, params: InfillParams, texts: list[str]) -> list[float]:
        """Mean log-probability per token of each text as the hole's middle (:func:`~workflows.
        completion.rank.drafter_scores`)."""
        ...


class RefinerSide(Protocol):
    """What the search asks of the refiner."""

    async def refined(self, items: list[DraftedHole]) -> list[InfillResult]:
        """The hybrid refinement of each draft, batched (:func:`workflows.infill.refine_drafts`)."""
        ...

    async def fills(self, prefix: str, suffix: str, params: InfillParams) -> list[InfillResult]:
        """The refiner's fill at each of diffusion mode's span lengths, best first, one batch."""
        ...

    async def alternatives(self, prefix: str, suffix: str, draft: Draft, params: InfillParams) -> list[InfillResult]:
        """The draft with its weakest tokens replaced by the refiner's likeliest ones, one pass."""
        ...

    async def scores(self, prefix: str, suffix: str, texts: list[str]) -> list[float]:
        """Mean pseudo-log-likelihood per token of each text between prefix and suffix."""
        ...


class LocalDrafter:
    """:class:`DrafterSide` over a drafter in this process."""

    def __init__(self, drafter: Drafter) -> None:
        self.drafter = drafter

    async def drafts(self, holes: list[Hole]) -> list[Draft]:
        return draft_many(holes, self.drafter)

    async def middle_scores(self, prefix: str, suffix: str, params: InfillParams, texts: list[str]) -> list[float]:
        return middle_scores(self.drafter, prefix, suffix, params, texts)


class LocalRefiner:
    """:class:`RefinerSide` over a refiner in this process."""

    def __init__(self, refiner: TextRefiner) -> None:
        self.refiner = refiner

    async def refined(self, items: list[DraftedHole]) -> list[InfillResult]:
        return refine_drafts(items, self.refiner)

    async def fills(self, prefix: str, suffix: str, params: InfillParams) -> list[InfillResult]:
        return diffusion_fills(prefix, suffix, params, self.refiner)

    async def alternatives(self, prefix: str, suffix: str, draft: Draft, params: InfillParams) -> list[InfillResult]:
        return alternatives(prefix, suffix, draft, params, self.refiner)

    async def scores(self, prefix: str, suffix: str, texts: list[str]) -> list[float]:
        return refiner_scores(self.refiner, prefix, suffix, texts)


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """The value of a coroutine that never suspends (every call it awaits answers at once, as
    the local sides do), without an event loop: the search runs so inside worker threads and
    inside code that already runs one."""
    try:
        coro.send(None)
    except StopIteration as done:
        value: T = done.value
        return value
    coro.close()
    raise RuntimeError("the completion search waited on a real event: run it on an event loop")
