"""The refiner's fallback: where no minimal edit helps, it rewrites spans around the error.

Token-level edit sites around the first error (an insertion at the error, at the ends of
its line and the previous one; the token at the error, with its neighbours; the line's
code; its indentation) each get a few lengths, and every site is denoised in one batch,
greedy and sampled; one-token sites also try the refiner's k likeliest tokens. The
candidate that parses with the fewest character edits wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

from refiner.editing import SpanEdit
from refiner.remasking import Span
from refiner.sampler import SamplerConfig
from refiner.text import TextRefiner
from workflows.options import RepairParams
from workflows.syntax import SyntaxIssue, check


@dataclass
class Candidate:
    text: str
    issues: list[SyntaxIssue]
    distance: int  # character edits from the round's input
    score: float  # the refiner's mean log-probability of the filled tokens

    @property
    def parses(self) -> bool:
        return not self.issues


def best_rewrite(code: str, issue: SyntaxIssue, lang: str, params: RepairParams,
                 refiner: TextRefiner) -> tuple[Candidate | None, int, int]:
    """The best rewrite around ``issue`` (None: none parses or gets past it), the forward
    passes, and the candidates checked."""
    cands, nfe = rewrites(code, issue, lang, params, refiner)
    return _pick(cands, issue), nfe, len(cands)


def _pick(cands: list[Candidate], issue: SyntaxIssue) -> Candidate | None:
    ok = [c for c in cands if c.parses]
    if ok:
        return min(ok, key=lambda c: (c.distance, -c.score))
    # no candidate parses: accept one whose first error moved past this one (progress)
    progress = [c for c in cands if c.issues and c.issues[0].start > issue.end]
    return min(progress, key=lambda c: (c.distance, -c.issues[0].start, -c.score)) if progress else None


def edit_sites(code: str, issue: SyntaxIssue, offsets: list[Span]) -> list[tuple[int, int, list[int]]]:
    """Token-level (start, end, lengths) edit sites around an issue.

    Insertions (start == end) get lengths 1-2; replacements the old length -1..+1 (at least 1).
    """
    def tok_at(char: int) -> int:
        for i, (_, e) in enumerate(offsets):
            if e > char:
                return i
        return len(offsets)

    line_start = code.rfind("\n", 0, issue.start) + 1
    line_end = code.find("\n", issue.start)
    line_end = len(code) if line_end < 0 else line_end
    prev_end = max(0, line_start - 1)
    content_start = line_start + (len(code[line_start:line_end]) - len(code[line_start:line_end].lstrip()))
    t_err = tok_at(issue.start)
    sites: set[tuple[int, int]] = {
        (t_err, t_err),  # insert at the error
        (tok_at(line_end), tok_at(line_end)),  # insert at the end of the line
        (tok_at(prev_end), tok_at(prev_end)),  # insert at the end of the previous line
        (tok_at(content_start), tok_at(content_start)),  # insert at the start of the line's code
    }
    if t_err < len(offsets):
        sites.add((t_err, t_err + 1))  # the token at the error
        sites.add((max(0, t_err - 1), min(len(offsets), t_err + 2)))  # with its neighbours
    a, b = tok_at(content_start), tok_at(line_end)
    if b > a:
        sites.add((a, b))  # the whole line's code
    if content_start > line_start:
        sites.add((tok_at(line_start), tok_at(content_start)))  # the indentation
    out = []
    for s, e in sorted(sites):
        n = e - s
        lengths = [1, 2] if n == 0 else sorted({max(1, n - 1), n, n + 1})
        out.append((s, e, lengths))
    return out


def rewrites(code: str, issue: SyntaxIssue, lang: str, params: RepairParams,
             refiner: TextRefiner) -> tuple[list[Candidate], int]:
    """Every distinct rewrite of the edit sites around ``issue``, and the forward passes."""
    # tokenise the two sides of the error separately, so the error offset is a token boundary
    # (")\n" is often one token: an insertion could not land between the two characters)
    left_ids, left_off = refiner.encode(code[: issue.start])
    right_ids, right_off = refiner.encode(code[issue.start :])
    ids = left_ids + right_ids
    offsets = left_off + [(s + issue.start, e + issue.start) for s, e in right_off]
    edits = [SpanEdit(s, e, n) for s, e, lengths in edit_sites(code, issue, offsets) for n in lengths]
    found: dict[str, float] = {}  # each new text once, with the refiner's score of its fill

    def add(text: str, score: float) -> None:
        if text != code and text not in found:
            found[text] = score

    nfe = 0
    if params.top_k:
        for e, token in _top_k_fills(ids, [e for e in edits if e.length == 1], refiner, params):
            add(_splice(code, offsets, e, refiner.decode([token])), 0.0)
        nfe += 1
    for cfg in _sampler_configs(params):
        results = refiner.fill([ids] * len(edits), [[e] for e in edits], cfg, params.window)
        nfe += results[0].nfe if results else 0
        for e, r in zip(edits, results):
            add(_splice(code, offsets, e, refiner.decode(r.spans[0].tokens)), r.spans[0].score)
    return [Candidate(t, check(t, lang), Levenshtein.distance(code, t), s) for t, s in found.items()], nfe


def _sampler_configs(params: RepairParams) -> list[SamplerConfig]:
    """The greedy fill, then ``params.samples`` sampled ones, each with its own seed."""
    greedy = SamplerConfig(steps=params.steps, threshold=params.threshold, seed=params.seed, factor=params.factor)
    return [greedy] + [SamplerConfig(steps=params.steps, threshold=params.threshold, temperature=params.temperature,
                                     seed=None if params.seed is None else params.seed + k + 1, factor=params.factor)
                       for k in range(params.samples)]


def _top_k_fills(ids: list[int], edits: list[SpanEdit], refiner: TextRefiner,
                 params: RepairParams) -> list[tuple[SpanEdit, int]]:
    """The k likeliest tokens at every one-token site, from one batched forward pass.

    A missing ':' or ')' is one token; the greedy fill may miss it where the second or
    third guess has it, so the search looks a little wider than the argmax.
    """
    w = params.window
    sides = [(ids[max(0, e.start - w) : e.start], ids[e.end : e.end + w]) for e in edits]
    return [(e, t) for e, top in zip(edits, refiner.top_k_between(sides, params.top_k)) for t in top]


def _splice(code: str, offsets: list[Span], e: SpanEdit, new: str) -> str:
    """Replace the characters of tokens [e.start, e.end) (or insert at e.start) with ``new``."""
    if e.start < len(offsets):
        cs = offsets[e.start][0]
    else:
        cs = len(code)
    ce = offsets[e.end - 1][1] if e.end > e.start else cs
    return code[:cs] + new + code[ce:]
