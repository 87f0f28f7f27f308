"""A completion an editor can insert: candidates cut to the cursor's scope, checked, ranked.

The models' single raw answer runs past the end of the line or block and breaks the file.
Here every candidate (:mod:`~workflows.completion.candidates`) is cut to the scope the
cursor gives (:mod:`~workflows.completion.scope`), dropped if it adds a syntax error
(:mod:`~workflows.completion.check`), and the rest are ranked by both models' scores
(:mod:`~workflows.completion.rank`). Below the confidence floor the answer is empty: an
editor prefers no suggestion to a wrong one.
"""

from __future__ import annotations

from drafter.model import Drafter
from refiner.text import TextRefiner
from workflows.audit import AuditRecord
from workflows.completion.candidates import generate
from workflows.completion.check import SyntaxJudge, confirmed, judge
from workflows.completion.rank import DRAFTER_CONTEXT, confidence, drafter_scores, joint_scores, refiner_scores
from workflows.completion.scope import Scope, cut, scope_at
from workflows.infill import InfillResult, InfillToken, draft_prompt
from workflows.options import InfillParams


def complete(prefix: str, suffix: str, params: InfillParams, refiner: TextRefiner, drafter: Drafter | None,
             audit: AuditRecord) -> InfillResult:
    """The best candidate in the request's mode, or an empty completion (stages timed in ``audit``)."""
    at = len(prefix)
    scope = scope_at(prefix, suffix)
    with audit.timed("candidates"):
        found = generate(prefix, suffix, params, scope, refiner, drafter)
    with audit.timed("check"):
        syntax = judge(prefix, suffix, params.language)
        pool = _checked(found.results, scope, syntax)
        if not pool and syntax.tentative:  # no candidate bore the guess out: the language is not Python
            syntax = confirmed(syntax, 0)
            pool = _checked(found.results, scope, syntax)
    out = InfillResult("", at, at, params.mode, draft=found.draft, nfe=found.nfe, confidence=0.0,
                       syntax_check="checked" if syntax.checked else "skipped", candidates=len(pool))
    if not pool:
        return out
    texts = list(pool)
    with audit.timed("rank"):
        by_drafter = None
        if drafter is not None and params.mode != "diffusion":
            near = params.model_copy(update={"context_tokens": DRAFTER_CONTEXT})
            by_drafter = drafter_scores(drafter, draft_prompt(prefix, suffix, near, drafter).prompt, texts)
        scores = joint_scores(refiner_scores(refiner, prefix, suffix, texts), by_drafter)
    best = max(range(len(texts)), key=lambda i: scores[i])
    out.confidence = round(confidence(scores[best]), 4)
    if out.confidence >= params.min_confidence:
        out.text = texts[best]
        out.tokens = _tokens_of(pool[out.text], out.text, out.confidence)
    return out


def _checked(results: list[InfillResult], scope: Scope, syntax: SyntaxJudge) -> dict[str, InfillResult]:
    """Each candidate cut to the scope, once, with the first result that gave it, if it keeps the syntax."""
    pool: dict[str, InfillResult] = {}
    for res in results:
        text = cut(res.text, scope)
        if text.strip() and text not in pool and syntax.accepts(text):
            pool[text] = res
    return pool


def _tokens_of(source: InfillResult, text: str, conf: float) -> list[InfillToken]:
    """The source's tokens that make up the start of ``text`` (it was cut from the source's
    text), and what the cut added (a line break before the suffix) as one more token."""
    tokens: list[InfillToken] = []
    built = ""
    for tok in source.tokens:
        if not text.startswith(built + tok.text):
            break
        tokens.append(tok)
        built += tok.text
    if len(built) < len(text):
        tokens.append(InfillToken(text[len(built):], conf, False))
    return tokens
