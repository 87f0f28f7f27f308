"""The options of each workflow, documented field by field, in one module.

The HTTP request models, the batch request bodies and the CLI flags are derived from these
models, so an option has one name, one default and one set of bounds whichever way a
request arrives.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["ar", "diffusion", "hybrid"]
MAX_REWRITES = 64  # default budget of spans the refiner rewrites in one request


class InfillParams(BaseModel):
    """Per-request infill options, documented field by field."""

    model_config = ConfigDict(extra="forbid")
    mode: Mode = Field("hybrid", description="ar: drafter only; diffusion: refiner only; hybrid: draft then refine")
    max_tokens: int = Field(32, ge=1, le=1024, description="most tokens to insert")
    steps: int = Field(16, ge=1, le=1024, description="denoising step budget of the refiner")
    threshold: float | None = Field(0.9, ge=0.0, le=1.0, description="refiner commit threshold; null = even schedule over steps")
    remask_below: float = Field(0.5, gt=0.0, le=1.0, description="hybrid: re-mask draft tokens whose probability is below this")
    remask_cap: float = Field(0.5, gt=0.0, le=1.0, description="hybrid: most share of the draft that may be re-masked")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy for both models")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass")
    stop: list[str] = Field(default_factory=list, description="strings that end the draft")
    seed: int | None = Field(None, description="makes sampling reproducible")
    window: int | None = Field(None, ge=1, le=4096, description="refiner context tokens on each side of a span; "
                               "null: as many as the refiner's trained context holds beside the span")
    cache: bool = Field(True, description="approximate context cache: later denoising steps run only the span (3.4x faster in `remask bench sampler`)")
    context_tokens: int | None = Field(None, ge=16, le=1 << 20, description="most drafter tokens of prefix + suffix "
                                       "(the text nearest the cursor is kept): the draft's cost grows with it; null: "
                                       "the drafter's trained context less the prompt's control tokens and "
                                       "max_tokens (at most half the context) for the middle")


class ReviseParams(BaseModel):
    """Per-request revision options, documented field by field."""

    model_config = ConfigDict(extra="forbid")
    spans: list[tuple[int, int]] | None = Field(None, description="character spans [start, end) to redo (code points); none: find doubtful spans")
    detect: Literal["refiner", "drafter", "both"] = Field("refiner", description="which model's confidence finds doubtful tokens")
    remask_below: float = Field(0.2, gt=0.0, le=1.0, description="a token whose probability is below this is doubtful")
    max_fraction: float = Field(0.15, gt=0.0, le=1.0, description="most share of the document's tokens re-masked at once")
    dilation: int = Field(1, ge=0, le=16, description="tokens added on each side of a doubtful token")
    merge_gap: int = Field(2, ge=0, le=64, description="doubtful spans this close are merged")
    steps: int = Field(16, ge=1, le=1024, description="denoising step budget")
    threshold: float | None = Field(0.9, ge=0.0, le=1.0, description="commit threshold; null = even schedule over steps")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy")
    seed: int | None = Field(None, description="makes sampling reproducible")
    window: int = Field(64, ge=1, le=4096, description="context tokens fed on each side of a span")
    chunk_tokens: int = Field(384, ge=32, le=8192, description="scoring chunk size for long documents")
    max_chars: int = Field(1_000_000, ge=1, description="documents longer than this are refused")
    cache: bool = Field(True, description="approximate context cache: later denoising steps run only the spans")
    only_improvements: bool = Field(True, description="found spans: keep a rewrite only if the refiner scores the new text higher than the old")
    margin: float = Field(0.5, ge=0.0, description="how much higher (mean log-probability per token) a kept rewrite must score")
    verify_stride: int = Field(4, ge=1, le=16, description="the check scores each token with every 4th token masked (pseudo-likelihood), in this many passes")
    language: str | None = Field(None, description="the text's language: 'prose', or a code language (python, ...) which is never proofread; none: guessed")
    spelling: bool = Field(True, description="found spans, prose: correct words the refiner's lexicon does not know to a lexicon word one edit away, when context and frequency clearly favour it")
    word_order: bool = Field(True, description="found spans, prose: swap adjacent words when the lexicon's word pairs clearly favour the swap")
    rewrite_prose: bool = Field(False, description="found spans, prose: also re-mask and denoise low-confidence spans (code always is); off because a small refiner's prose rewrites do more harm than good")


class ComplianceParams(BaseModel):
    """Per-request options of rule application, documented field by field."""

    model_config = ConfigDict(extra="forbid")
    neighbours: int = Field(1, ge=0, le=4, description="tokens re-masked on each side of a pinned preferred term")
    attempts: int = Field(3, ge=1, le=10, description="rewrites tried per banned phrase before it is deleted")
    steps: int = Field(16, ge=1, le=256, description="denoising step budget")
    threshold: float | None = Field(0.9, ge=0.0, le=1.0, description="commit threshold; null = even schedule")
    window: int = Field(64, ge=1, le=4096, description="context tokens on each side of a span")
    seed: int | None = Field(0, description="makes the rewrites reproducible")
    max_chars: int = Field(1_000_000, ge=1, description="longer documents are refused")
    max_rewrites: int = Field(MAX_REWRITES, ge=0, le=1024, description=(
        "most spans the refiner rewrites (banned phrases first, in text order, then the neighbours of preferred "
        "terms); a banned phrase beyond it is deleted and its rule reported in `unresolved`"))


class RepairParams(BaseModel):
    """Per-request repair options, documented field by field."""

    model_config = ConfigDict(extra="forbid")
    language: str = Field("python", description="python (checked with ast) or a tree-sitter language: javascript, typescript, go, rust, java, c, json")
    rounds: int = Field(3, ge=1, le=10, description="most repair rounds; each fixes the first remaining error")
    beam: int = Field(3, ge=1, le=8, description="partly repaired texts kept from one round to the next")
    max_checks: int = Field(600, ge=1, le=10_000, description="most parser checks of minimal-edit candidates per round")
    context_lines: int = Field(2, ge=0, le=20, description="minimal edits are tried this many lines either side of the error")
    samples: int = Field(1, ge=0, le=8, description="sampled candidates per edit site, besides the greedy one")
    top_k: int = Field(8, ge=0, le=64, description="single-token sites also try the refiner's k most likely tokens")
    temperature: float = Field(0.8, gt=0.0, description="temperature of the sampled candidates")
    steps: int = Field(8, ge=1, le=256, description="denoising step budget per candidate")
    threshold: float | None = Field(0.9, ge=0.0, le=1.0, description="commit threshold; null = even schedule")
    window: int = Field(64, ge=1, le=4096, description="context tokens on each side of an edit site")
    seed: int | None = Field(0, description="makes sampled candidates reproducible")
    max_chars: int = Field(200_000, ge=1, description="longer code is refused")

