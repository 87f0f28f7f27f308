"""One joint score per candidate: how likely both models find it in its context.

- the drafter: log-probability of the candidate's tokens after the hole's FIM prompt, and of
  the format's end-of-middle token after them (the drafter's say that the middle ends there);
- the refiner: pseudo-log-likelihood of the candidate's tokens between the text before and
  after the hole, every ``PLL_STRIDE``-th token masked per pass (as revision's check does).

Each is a mean per token (long candidates are not punished for their length) and the joint
score is their mean; a mode without a drafter ranks by the refiner alone. ``exp`` of the
joint score, a geometric-mean token probability in (0, 1], is the completion's confidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from drafter.fim import FimPrompt
from drafter.model import Drafter
from refiner.scoring import ScoreRow
from refiner.text import TextRefiner
from workflows.infill import draft_prompt
from workflows.options import InfillParams

PLL_STRIDE = 4  # passes per candidate: each masks every 4th token, so each token sees most of its neighbours
REFINER_CONTEXT = 64  # refiner tokens on each side of the candidate: the near context decides most tokens
DRAFTER_CONTEXT = 192  # drafter tokens of prefix + suffix in the scoring prompt: one row per candidate, kept short


def refiner_scores(refiner: TextRefiner, prefix: str, suffix: str, candidates: Sequence[str]) -> list[float]:
    """Mean pseudo-log-likelihood per token of each candidate between ``prefix`` and ``suffix``,
    all candidates' passes in one batched call (an empty candidate scores 0)."""
    left = refiner.encode(prefix)[0][-REFINER_CONTEXT:]
    right = refiner.encode(suffix)[0][:REFINER_CONTEXT]
    rows: list[ScoreRow] = []
    owners: list[int] = []
    lengths: list[int] = []
    for c, text in enumerate(candidates):
        mid = refiner.encode(text)[0] if text else []
        if refiner.max_length is not None:
            mid = mid[: refiner.max_length]
        side = side_context(refiner.max_length, len(mid))
        before, after = left[len(left) - min(side, len(left)):], right[:side]
        lengths.append(len(mid))
        for phase in range(min(PLL_STRIDE, len(mid))):
            at = [len(before) + i for i in range(phase, len(mid), PLL_STRIDE)]
            rows.append(ScoreRow(before + mid + after, at, at))
            owners.append(c)
    sums = [0.0] * len(candidates)
    for owner, total in zip(owners, refiner.score(rows)):
        sums[owner] += total
    return [s / n if n else 0.0 for s, n in zip(sums, lengths)]


def side_context(max_length: int | None, n: int) -> int:
    """Context tokens on each side of an ``n``-token candidate that fit the refiner's rows."""
    return REFINER_CONTEXT if max_length is None else max(0, min(REFINER_CONTEXT, (max_length - n) // 2))


def middle_scores(drafter: Drafter, prefix: str, suffix: str, params: InfillParams,
                  candidates: Sequence[str]) -> list[float]:
    """:func:`drafter_scores` of candidates for the hole between ``prefix`` and ``suffix``, after
    a FIM prompt of the ``DRAFTER_CONTEXT`` tokens nearest the hole."""
    near = params.model_copy(update={"context_tokens": DRAFTER_CONTEXT})
    return drafter_scores(drafter, draft_prompt(prefix, suffix, near, drafter).prompt, candidates)


def drafter_scores(drafter: Drafter, prompt: FimPrompt, candidates: Sequence[str]) -> list[float]:
    """Mean log-probability per token of each candidate and the end-of-middle token after it,
    given the hole's FIM prompt as generation sees it; the prompt runs once and the
    candidates in one batch after it."""
    end = _end_of_middle(drafter, prompt)
    rows = [[*(drafter.encode(text) if text else []), end] for text in candidates]
    out: list[float] = []
    for logprobs in drafter.score_continuations(prompt.ids, rows):
        finite = [lp for lp in logprobs if math.isfinite(lp)]
        out.append(sum(finite) / len(finite) if finite else -math.inf)
    return out


def joint_scores(refiner_part: Sequence[float], drafter_part: Sequence[float] | None) -> list[float]:
    """The mean of the two models' per-token scores (the refiner's alone without a drafter)."""
    if drafter_part is None:
        return list(refiner_part)
    return [(r + d) / 2 for r, d in zip(refiner_part, drafter_part)]


def confidence(score: float) -> float:
    """A joint score as a geometric-mean token probability in [0, 1]."""
    return math.exp(min(0.0, score)) if math.isfinite(score) else 0.0


def _end_of_middle(drafter: Drafter, prompt: FimPrompt) -> int:
    """The token the format ends a middle with (EOS when it has none of its own)."""
    own = sorted(prompt.stop_ids - drafter.eos_ids) or sorted(prompt.stop_ids)
    return own[0]
