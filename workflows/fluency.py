"""How well a sentence reads: the log-probability a model gives it, in all and per token.

Compliance rewrites are judged by it (:mod:`workflows.findings`). The judge is the drafter, a
left-to-right language model: its log-probability of the whole sentence, and that divided by
the number of tokens (the length-normalised fluency, comparable between a sentence and a
shorter or longer rewrite of it). A process that serves no drafter (a Serve
refiner replica) judges with the refiner's pseudo-log-likelihood instead: each token scored
with every ``stride``-th token masked, so no token vouches for itself; the audit record
names the judge that ran.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from refiner.text import TextRefiner

PLL_STRIDE = 4  # the refiner judge: passes per sentence, each masking every 4th token


class Reading(NamedTuple):
    """A judge's log-probability of a sentence: in all, and over how many tokens."""

    total: float
    tokens: int

    @property
    def mean(self) -> float:
        """Log-probability per token: the length-normalised fluency."""
        return self.total / self.tokens if self.tokens else 0.0


class Fluency(Protocol):
    """Reads sentences: higher reads better; comparable between sentences of one judge only."""

    name: str
    model: Any  # the model that judges (recorded in the audit record)

    def __call__(self, sentences: Sequence[str]) -> list[Reading]: ...


class DrafterFluency:
    """The drafter's mean log-probability per token of each sentence (scored after the document start)."""

    name = "drafter"

    def __init__(self, drafter: Any) -> None:
        self.model = drafter

    def __call__(self, sentences: Sequence[str]) -> list[Reading]:
        return [_reading(self.model.score(s).logprobs) if s.strip() else Reading(0.0, 0) for s in sentences]


class RefinerFluency:
    """The refiner's mean pseudo-log-likelihood per token of each sentence."""

    name = "refiner"

    def __init__(self, refiner: TextRefiner, stride: int = PLL_STRIDE) -> None:
        self.model = refiner
        self.stride = stride

    def __call__(self, sentences: Sequence[str]) -> list[Reading]:
        out = []
        for s in sentences:
            ids, _ = self.model.encode(s)
            if not ids:
                out.append(Reading(0.0, 0))
                continue
            out.append(_reading(self.model.token_logprobs(ids, [(0, len(ids))], context=0, stride=self.stride)))
        return out


def judge(refiner: TextRefiner, drafter: Any | None) -> Fluency:
    """The drafter's judgement where there is a drafter, else the refiner's."""
    return DrafterFluency(drafter) if drafter is not None else RefinerFluency(refiner)


def _reading(logprobs: Sequence[float]) -> Reading:
    """The log-probabilities but nan (a first token with no prediction), summed and counted."""
    vals = [v for v in logprobs if not math.isnan(v)]
    return Reading(sum(vals), len(vals))
