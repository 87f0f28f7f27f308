"""Code repair: code that does not parse comes back parsing, with the smallest edits found.

Each round: locate the first syntax issue; propose edit sites around it (an insertion at
the error, at the end of its line or of the line before, at the start of its line; a
replacement of the token at the error, of its neighbours, of the whole line); give each
site several lengths; denoise every candidate in one batch (greedy and sampled); keep the
candidates that parse, or failing that the one whose first error moved furthest; pick the
fewest character edits, then the best model score. Rounds are bounded. The code is only
ever parsed, never run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rapidfuzz.distance import Levenshtein

from refiner.editing import SpanEdit, fill_spans, pad_batch
from refiner.remasking import Span
from refiner.sampler import SamplerConfig
from refiner.text import TextRefiner
from workflows.audit import AuditRecord, ModelInfo
from workflows.edits import Edit, compute_edits, languagetool_matches, unified_diff
from workflows.syntax import SyntaxIssue, check, normalize_language


class RepairParams(BaseModel):
    """Per-request repair options, documented field by field."""

    model_config = ConfigDict(extra="forbid")
    language: str = Field("python", description="python (checked with ast) or a tree-sitter language: javascript, typescript, go, rust, java, c, json")
    rounds: int = Field(3, ge=1, le=10, description="most repair rounds; each fixes the first remaining error")
    samples: int = Field(1, ge=0, le=8, description="sampled candidates per edit site, besides the greedy one")
    top_k: int = Field(8, ge=0, le=64, description="single-token sites also try the refiner's k most likely tokens")
    temperature: float = Field(0.8, gt=0.0, description="temperature of the sampled candidates")
    steps: int = Field(8, ge=1, le=256, description="denoising step budget per candidate")
    threshold: float | None = Field(0.9, ge=0.0, le=1.0, description="commit threshold; null = even schedule")
    window: int = Field(64, ge=1, le=4096, description="context tokens on each side of an edit site")
    seed: int | None = Field(0, description="makes sampled candidates reproducible")
    max_chars: int = Field(200_000, ge=1, description="longer code is refused")


@dataclass
class Candidate:
    text: str
    issues: list[SyntaxIssue]
    distance: int  # character edits from the round's input
    score: float  # the refiner's mean log-probability of the filled tokens

    @property
    def parses(self) -> bool:
        return not self.issues


@dataclass
class RepairResult:
    text: str
    parses: bool
    edits: list[Edit]
    diff: str
    matches: list[dict[str, Any]]
    rounds: int
    candidates: int  # candidates denoised in all
    issues_before: list[SyntaxIssue] = field(default_factory=list)
    issues_after: list[SyntaxIssue] = field(default_factory=list)
    nfe: int = 0
    audit: AuditRecord | None = None


def repair(code: str, params: RepairParams, refiner: TextRefiner, name: str = "code") -> RepairResult:
    """Repair ``code`` so that it parses; code that already parses comes back unchanged."""
    if not code.strip():
        raise ValueError("code is empty: there is nothing to repair")
    if len(code) > params.max_chars:
        raise ValueError(f"code has {len(code)} characters, over the limit of {params.max_chars}")
    lang = normalize_language(params.language)
    audit = AuditRecord("repair", [ModelInfo.of(refiner.name, getattr(refiner, "path", None))],
                        params.model_dump(), params.seed)
    before = check(code, lang)
    current, issues = code, before
    rounds = tried = nfe = 0
    while issues and rounds < params.rounds:
        rounds += 1
        with audit.timed("round"):
            cands, n = _round(current, issues[0], lang, params, refiner)
        tried += len(cands)
        nfe += n
        best = _pick(cands, issues[0])
        if best is None:
            break
        current, issues = best.text, best.issues
    if issues:  # not repaired: hand the code back as it came rather than half-edited
        current, issues = code, before
    edits = compute_edits(code, current, reason="syntax_repair") if current != code else []
    return RepairResult(current, not issues, edits, unified_diff(code, current, name=name),
                        languagetool_matches(code, edits), rounds, tried, before, issues, nfe, audit)


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
        for i, (s, e) in enumerate(offsets):
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


def _round(code: str, issue: SyntaxIssue, lang: str, params: RepairParams,
           refiner: TextRefiner) -> tuple[list[Candidate], int]:
    # tokenise the two sides of the error separately, so the error offset is a token boundary
    # (")\n" is often one token: an insertion could not land between the two characters)
    left_ids, left_off = refiner.encode(code[: issue.start])
    right_ids, right_off = refiner.encode(code[issue.start :])
    ids = left_ids + right_ids
    offsets = left_off + [(s + issue.start, e + issue.start) for s, e in right_off]
    sites = edit_sites(code, issue, offsets)
    edits = [SpanEdit(s, e, n) for s, e, lengths in sites for n in lengths]
    sp = refiner.special
    configs = [SamplerConfig(steps=params.steps, threshold=params.threshold, seed=params.seed)]
    configs += [SamplerConfig(steps=params.steps, threshold=params.threshold, temperature=params.temperature,
                              seed=None if params.seed is None else params.seed + k + 1)
                for k in range(params.samples)]
    cands: list[Candidate] = []
    seen: set[str] = set()
    nfe = 0
    if params.top_k:
        for e, token in _top_k_single(ids, [e for e in edits if e.length == 1], refiner, params):
            text = _splice(code, offsets, e, refiner.decode([token]))
            if text not in seen and text != code:
                seen.add(text)
                cands.append(Candidate(text, check(text, lang), Levenshtein.distance(code, text), 0.0))
        nfe += 1
    for cfg in configs:
        results = fill_spans(refiner.predictor, [ids] * len(edits), [[e] for e in edits], pad_id=int(sp.pad or 0),
                             window=params.window, config=refiner.sampler(cfg), filler_id=sp.filler)
        nfe += results[0].nfe if results else 0
        for e, r in zip(edits, results):
            text = _splice(code, offsets, e, refiner.decode(r.spans[0].tokens))
            if text in seen or text == code:
                continue
            seen.add(text)
            cands.append(Candidate(text, check(text, lang), Levenshtein.distance(code, text), r.spans[0].score))
    return cands, nfe


def _top_k_single(ids: list[int], edits: list[SpanEdit], refiner: TextRefiner,
                  params: RepairParams) -> list[tuple[SpanEdit, int]]:
    """The k most likely tokens at every one-token site, from one batched forward pass.

    A missing ':' or ')' is one token; the greedy fill may miss it where the second or
    third guess has it, so the search looks a little wider than the argmax.
    """
    import torch

    if not edits:
        return []
    w = params.window
    mask = refiner.predictor.mask_token_id
    rows, where = [], []
    for e in edits:
        left = ids[max(0, e.start - w) : e.start]
        rows.append(left + [mask] + ids[e.end : e.end + w])
        where.append(len(left))
    x, attn = pad_batch(rows, int(refiner.special.pad or 0))
    with torch.inference_mode():
        logits = refiner.predictor(x, attn)[torch.arange(len(rows)), torch.tensor(where)].float()  # (N, V)
    banned = torch.tensor(sorted(refiner.sampler(None).suppress_ids), dtype=torch.long)
    logits = logits.index_fill(-1, banned, float("-inf"))
    top = logits.topk(params.top_k, dim=-1).indices.tolist()
    return [(e, t) for e, toks in zip(edits, top) for t in toks]


def _splice(code: str, offsets: list[Span], e: SpanEdit, new: str) -> str:
    """Replace the characters of tokens [e.start, e.end) (or insert at e.start) with ``new``."""
    if e.start < len(offsets):
        cs = offsets[e.start][0]
    else:
        cs = len(code)
    ce = offsets[e.end - 1][1] if e.end > e.start else cs
    return code[:cs] + new + code[ce:]
