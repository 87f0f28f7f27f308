"""How well a sentence reads: the log-probability a model gives it, in all and per token.

Compliance rewrites (:mod:`workflows.findings`) and proofreading (:mod:`workflows.proofread`)
are judged by the readers here. The drafter, a left-to-right language model, reads a sentence
as its log-probability, in all and divided by the number of tokens (the length-normalised
fluency, comparable between a sentence and a shorter or longer rewrite of it). The refiner
reads it as a pseudo-log-likelihood: each token scored with every ``stride``-th token masked,
so no token vouches for itself. A process that serves no drafter (a Serve refiner replica)
judges with the refiner alone; the audit record names the judge that ran.

Each reader keeps what it has read: one judge asks about the same sentence again and again
(a sentence before each of its candidate fixes), and a text is scored once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from refiner.scoring import ScoreRow
from refiner.text import TextRefiner

PLL_STRIDE = 4  # the refiner judge: passes per sentence, each masking every 4th token
BATCH_ROWS = 256  # the refiner judge: rows per forward pass


class Reading(NamedTuple):
    """A judge's log-probability of a sentence: in all, and over how many tokens."""

    total: float
    tokens: int

    @property
    def mean(self) -> float:
        """Log-probability per token: the length-normalised fluency (0 for an empty text)."""
        return self.total / self.tokens if self.tokens else 0.0


class Fluency(Protocol):
    """Reads sentences: higher reads better; comparable between sentences of one judge only."""

    name: str
    model: Any  # the model that judges (recorded in the audit record)

    def __call__(self, sentences: Sequence[str]) -> list[Reading]: ...


class DrafterFluency:
    """The drafter's log-probability of each sentence (scored after the document start)."""

    name = "drafter"

    def __init__(self, drafter: Any) -> None:
        self.model = drafter
        self.read: dict[str, Reading] = {}

    def __call__(self, sentences: Sequence[str]) -> list[Reading]:
        for s in dict.fromkeys(sentences):
            if s not in self.read:
                self.read[s] = _reading(self.model.score(s).logprobs) if s.strip() else Reading(0.0, 0)
        return [self.read[s] for s in sentences]


class RefinerFluency:
    """The refiner's pseudo-log-likelihood of each sentence: ``stride`` rows per sentence, row j
    masking the tokens i with i % stride == j; the rows of every new sentence in shared batches."""

    name = "refiner"

    def __init__(self, refiner: TextRefiner, stride: int = PLL_STRIDE, batch_rows: int = BATCH_ROWS) -> None:
        self.model = refiner
        self.stride = stride
        self.batch_rows = batch_rows
        self.read: dict[str, Reading] = {}

    def __call__(self, sentences: Sequence[str]) -> list[Reading]:
        todo = [s for s in dict.fromkeys(sentences) if s not in self.read]
        encoded = [self.model.encode(s)[0] for s in todo]
        limit = self.model.max_length
        rows: list[ScoreRow] = []
        owner: list[int] = []
        for k, ids in enumerate(encoded):
            if limit is not None and len(ids) > limit:  # too long for one row: scored in windows below
                continue
            for phase in range(min(self.stride, len(ids))):
                picked = list(range(phase, len(ids), self.stride))
                rows.append(ScoreRow(ids, picked, picked))
                owner.append(k)
        totals = [0.0] * len(todo)
        for k, logp in zip(owner, self.model.score(rows, self.batch_rows)):
            totals[k] += logp
        for s, ids, total in zip(todo, encoded, totals):
            if limit is not None and len(ids) > limit:
                self.read[s] = _reading(self.model.token_logprobs(ids, [(0, len(ids))], context=0, stride=self.stride))
            else:
                self.read[s] = Reading(total, len(ids))
        return [self.read[s] for s in sentences]


def judge(refiner: TextRefiner, drafter: Any | None) -> Fluency:
    """The drafter's judgement where there is a drafter, else the refiner's."""
    return DrafterFluency(drafter) if drafter is not None else RefinerFluency(refiner)


def _reading(logprobs: Sequence[float]) -> Reading:
    """The log-probabilities summed and counted, but nan (a first token with no prediction).

    Only nan is dropped: a token the model rules out (-inf) makes its sentence read as badly
    as it can, which is what a judge comparing sentences must see."""
    vals = [v for v in logprobs if not math.isnan(v)]
    return Reading(sum(vals), len(vals))
