"""A completion an editor can insert: candidates cut to the cursor's scope, checked, ranked.

The models' single raw answer runs past the end of the line or block and breaks the file.
Here every candidate (:mod:`~workflows.completion.candidates`) is cut to the scope the
cursor gives (:mod:`~workflows.completion.scope`), dropped if it adds a syntax error
(:mod:`~workflows.completion.check`), and the rest are ranked by both models' scores
(:mod:`~workflows.completion.rank`). Below the confidence floor the answer is empty: an
editor prefers no suggestion to a wrong one.

The search is a cascade, so that an editor's request costs about what the raw answer does.
First the mode's own answer (in hybrid also the draft it refined) and the document's
continuations: those that pass the check are ranked by the drafter's score alone (its
prompt runs once, the candidates in one batch after it). A model's answer that passes
alone, and diffusion's own answer (no drafter to rank with), keep the confidence they were
written with. When the best has a confidence of at least ``params.accept_confidence`` it is
the completion. Otherwise, or when none passes, the search widens to sampled drafts and the
refiner's alternatives, and every candidate is ranked by the joint score of both models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from drafter.model import Drafter
from refiner.text import TextRefiner
from workflows.audit import AuditRecord
from workflows.completion.candidates import Candidates, first, more
from workflows.completion.check import SyntaxJudge, confirmed, judge
from workflows.completion.rank import confidence, joint_scores
from workflows.completion.scope import Scope, cut, scope_at
from workflows.completion.sides import DrafterSide, LocalDrafter, LocalRefiner, RefinerSide, run_now
from workflows.infill import InfillResult, InfillToken
from workflows.options import InfillParams


def complete(prefix: str, suffix: str, params: InfillParams, refiner: TextRefiner, drafter: Drafter | None,
             audit: AuditRecord) -> InfillResult:
    """The best candidate in the request's mode, or an empty completion (stages timed in ``audit``),
    with both models in this process."""
    local = LocalDrafter(drafter) if drafter is not None and params.mode != "diffusion" else None
    return run_now(search(prefix, suffix, params, LocalRefiner(refiner), local, audit))


@dataclass
class _Hole:
    """One request's search state: the scope, the check and the candidates found so far."""

    prefix: str
    suffix: str
    params: InfillParams
    scope: Scope
    syntax: SyntaxJudge
    found: Candidates


async def search(prefix: str, suffix: str, params: InfillParams, refiner: RefinerSide, drafter: DrafterSide | None,
                 audit: AuditRecord) -> InfillResult:
    """:func:`complete` against the two sides of :mod:`workflows.completion.sides` (``drafter``
    None: diffusion, ranked by the refiner alone)."""
    scope = scope_at(prefix, suffix)
    with audit.timed("candidates"):
        found = await first(prefix, suffix, params, scope, refiner, drafter)
    with audit.timed("check"):
        hole = _Hole(prefix, suffix, params, scope, judge(prefix, suffix, params.language), found)
        pool = _checked(found.results, scope, hole.syntax)
    by_drafter: dict[str, float] = {}
    with audit.timed("rank"):
        chosen = await _first_choice(hole, pool, drafter, by_drafter)
    if chosen is not None:
        return chosen
    with audit.timed("candidates"):
        await more(prefix, suffix, params, scope, refiner, drafter, found)
    with audit.timed("check"):
        pool = _checked(found.results, scope, hole.syntax)
        if not pool and hole.syntax.tentative:  # no candidate bore the guess out: the language is not Python
            hole.syntax = confirmed(hole.syntax, 0)
            pool = _checked(found.results, scope, hole.syntax)
    with audit.timed("rank"):
        return await _ranked(hole, pool, refiner, drafter, by_drafter)


async def _first_choice(hole: _Hole, pool: dict[str, InfillResult], drafter: DrafterSide | None,
                        by_drafter: dict[str, float]) -> InfillResult | None:
    """The first stage's best candidate if its confidence reaches ``accept_confidence`` (and the
    floor); None: the search widens. The drafter's scores land in ``by_drafter`` for reuse."""
    params = hole.params
    written = [t for t, res in pool.items() if not any(res is c for c in hole.found.copied)]
    if drafter is None or (len(pool) == 1 and written):
        # one model answer to take (diffusion: the refiner's own), with the confidence it was written with
        own = hole.found.own if drafter is None else pool[written[0]]
        text = cut(own.text, hole.scope) if own is not None else ""
        if own is None or text not in pool:
            return None
        source, conf = own, own_confidence(_source_tokens(own, text))
    else:
        if not pool:
            return None
        texts = list(pool)
        by_drafter.update(zip(texts, await drafter.middle_scores(hole.prefix, hole.suffix, params, texts)))
        text = max(texts, key=lambda t: by_drafter[t])
        source, conf = pool[text], confidence(by_drafter[text])
    conf = round(conf, 4)
    if conf < max(params.accept_confidence, params.min_confidence):
        return None
    out = _answer(hole, text, conf, len(pool))
    out.tokens = _tokens_of(source, text, conf)
    return out


async def _ranked(hole: _Hole, pool: dict[str, InfillResult], refiner: RefinerSide, drafter: DrafterSide | None,
                  by_drafter: dict[str, float]) -> InfillResult:
    """The best of every candidate by the joint score, or an empty completion below the floor."""
    out = _answer(hole, "", 0.0, len(pool))
    if not pool:
        return out
    texts = list(pool)
    drafter_part = None
    if drafter is not None:
        new = [t for t in texts if t not in by_drafter]  # the first stage scored its own candidates
        if new:
            by_drafter.update(zip(new, await drafter.middle_scores(hole.prefix, hole.suffix, hole.params, new)))
        drafter_part = [by_drafter[t] for t in texts]
    scores = joint_scores(await refiner.scores(hole.prefix, hole.suffix, texts), drafter_part)
    best = max(range(len(texts)), key=lambda i: scores[i])
    out.confidence = round(confidence(scores[best]), 4)
    if out.confidence >= hole.params.min_confidence:
        out.text = texts[best]
        out.tokens = _tokens_of(pool[out.text], out.text, out.confidence)
    return out


def own_confidence(tokens: list[InfillToken]) -> float:
    """The geometric mean of the tokens' probabilities as the models wrote them (0 for none)."""
    if not tokens:
        return 0.0
    logs = [math.log(t.confidence) if t.confidence > 0 else -math.inf for t in tokens]
    return math.exp(sum(logs) / len(logs))


def _answer(hole: _Hole, text: str, conf: float, candidates: int) -> InfillResult:
    """The completion of the hole (its tokens set by the caller)."""
    at = len(hole.prefix)
    found = hole.found
    return InfillResult(text, at, at, hole.params.mode, draft=found.draft.text if found.draft is not None else None,
                        nfe=found.nfe, confidence=conf, syntax_check="checked" if hole.syntax.checked else "skipped",
                        candidates=candidates)


def _checked(results: list[InfillResult], scope: Scope, syntax: SyntaxJudge) -> dict[str, InfillResult]:
    """Each candidate cut to the scope, once, with the first result that gave it, if it keeps the syntax."""
    pool: dict[str, InfillResult] = {}
    for res in results:
        text = cut(res.text, scope)
        if text.strip() and text not in pool and syntax.accepts(text):
            pool[text] = res
    return pool


def _source_tokens(source: InfillResult, text: str) -> list[InfillToken]:
    """The source's tokens that make up the start of ``text`` (it was cut from the source's text)."""
    tokens: list[InfillToken] = []
    built = ""
    for tok in source.tokens:
        if not text.startswith(built + tok.text):
            break
        tokens.append(tok)
        built += tok.text
    return tokens


def _tokens_of(source: InfillResult, text: str, conf: float) -> list[InfillToken]:
    """:func:`_source_tokens`, and what the cut added (a line break before the suffix) as one
    more token with the completion's confidence."""
    tokens = _source_tokens(source, text)
    built = "".join(t.text for t in tokens)
    if len(built) < len(text):
        tokens.append(InfillToken(text[len(built):], conf, False))
    return tokens
