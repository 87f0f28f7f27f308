"""The options of each pipeline, each declared once: name, type, bounds, default, description.

A request reaches a pipeline four ways: an HTTP request, a line of a batch job, the SDK (which
sends an HTTP request) and the ``remask`` CLI. The HTTP request models
(:mod:`workflows.requests`, which batch lines are validated with too) take every option they
expose from these models with :func:`option`, and the CLI generates its flags from these
models' fields, so an option means the same thing whichever way it arrives, and an option a
request leaves out takes the default written here.

The options every denoising pipeline takes (step budget, commit threshold, factor rule, seed) are the fields
of :class:`Denoising`, which each pipeline's model extends; they and the options several
pipelines share (temperature, context window, cache) are declared once, as annotated types
below. Defaults differ by kind of endpoint only where there is a reason, and then they sit in
:data:`DEFAULTS`, one row per kind, with the reason.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from workflows.limits import CEILING_STEPS, CEILING_TOKENS, limited
from workflows.syntax import TREE_SITTER_GRAMMARS

Mode = Literal["ar", "diffusion", "hybrid"]
Detect = Literal["refiner", "drafter", "both"]
Kind = Literal["infill", "revise", "compliance", "repair"]

# the largest integer every JSON client holds exactly (JavaScript's MAX_SAFE_INTEGER; the OpenAPI
# document writes bounds as doubles too); far inside a 64-bit generator seed, with room for the
# small offsets the pipelines add to it
SEED_MAX = 2**53 - 1
MAX_REWRITES = 64  # default budget of spans the refiner rewrites in one request
MAX_FACTOR = 16.0  # past it the factor rule commits a whole span of likely-wrong tokens in one step
# compliance: how much worse (mean log-probability per token) a rewrite's sentence may read than the
# original's; at 0 no applied rewrite reads worse (`remask bench quality --only compliance` sweeps it)
COMPLIANCE_MARGIN = 0.0
# a refiner rewrite may change what a sentence says: like a free revision, it must read clearly better
REWRITE_GAIN = 0.5


@dataclass(frozen=True)
class KindDefaults:
    """The defaults that differ by kind of endpoint; every path into a kind uses its row."""

    steps: int  # the refiner's denoising step budget
    seed: int | None  # None: a fresh draw per request (only matters above temperature 0)


DEFAULTS: dict[Kind, KindDefaults] = {
    # the editor's latency budget: in `remask bench sampler --sweep` 16-token spans lose about
    # half a point of exact match against 16 steps, at a quarter of the forward passes; the seed
    # follows OpenAI's completions (none unless asked for; greedy by default anyway)
    "infill": KindDefaults(steps=4, seed=None),
    # documents and rule sets: quality before latency, and a seed by default so that the audit
    # record of a result is enough to reproduce it
    "revise": KindDefaults(steps=16, seed=0),
    "compliance": KindDefaults(steps=16, seed=0),
    # every round denoises many short candidate spans (several per edit site), each on a smaller budget
    "repair": KindDefaults(steps=8, seed=0),
}
COMMIT_THRESHOLD = 0.9  # the same for every kind: a lower bar commits worse tokens, a higher one costs steps
INFILL_MAX_TOKENS = 16  # OpenAI completions' default; a Mistral FIM request's null gets it too
# the completion's confidence floor, measured with `remask bench quality` on held-out packages' code
# (bench/results/quality_infill.json, "floors"): with today's models every floor above 0 empties more answers
# than wrong ones (diffusion single-line: 0.02 takes exact match from 5.5% to 3.5% and empties 60.5% instead
# of 39.5%; ar: exact 2.0% either way, empties 41% instead of 9.5%), so the default answers always
INFILL_MIN_CONFIDENCE = 0.0
# the candidate search's first stage answers when its best candidate passes the check at this confidence or
# more; 0: whenever one passes. Measured on held-out holes (issue 14): a higher bar widens the search more often
# (the latency of the full search) and bought no exact match or parse in any mode
INFILL_ACCEPT_CONFIDENCE = 0.0

ModeOption = Annotated[Mode, Field(description="ar: the drafter alone; diffusion: the refiner alone (span length "
                                               "searched); hybrid: the drafter drafts, its weak tokens are re-masked "
                                               "and the refiner denoises them")]
Steps = Annotated[int, Field(ge=1, le=CEILING_STEPS, json_schema_extra=limited("max_steps"),
                             description="denoising step budget of the refiner")]
Threshold = Annotated[float | None, Field(ge=0.0, le=1.0, description=(
    "each denoising step commits every position above this confidence (at least one); "
    "null: an even schedule over steps"))]
Factor = Annotated[float | None, Field(ge=0.0, le=MAX_FACTOR, description=(
    "Fast-dLLM's factor rule: each denoising step also commits the n likeliest positions while "
    "(n + 1) * (1 - p_n) < factor (more tokens per step when the model is sure); 0: off; null: the "
    "model's calibrated value (sampler.json beside its weights), off without one"))]
Temperature = Annotated[float, Field(ge=0.0, le=2.0, description="0 = greedy (the same output every time); "
                                                                "above 0 samples")]
Seed = Annotated[int | None, Field(ge=0, le=SEED_MAX, description=f"makes sampling reproducible; 0 to {SEED_MAX}")]
Window = Annotated[int, Field(ge=1, le=4096, description="context tokens fed on each side of a span")]
Cache = Annotated[bool, Field(description="approximate context cache: later denoising steps run only the spans "
                                          "(3.4x faster in `remask bench sampler`)")]


def option(model: type[BaseModel], name: str, **changes: Any) -> Any:
    """The field ``name`` of ``model`` (type, bounds, default, description) for a model that exposes it.

    A request model writes ``steps: int = option(InfillParams, "steps")``: the request then
    validates, documents and defaults the option exactly as the pipeline's model does.
    ``changes`` replace what a wire format does its own way (a null default, and its description).
    """
    return FieldInfo.merge_field_infos(copy.deepcopy(model.model_fields[name]), **changes)


class Denoising(BaseModel):
    """The refiner's options every pipeline takes; each pipeline's model sets its kind's defaults.

    A subclass gives ``steps`` and ``seed`` the defaults of its row of :data:`DEFAULTS`.
    """

    model_config = ConfigDict(extra="forbid")
    steps: Steps
    threshold: Threshold = COMMIT_THRESHOLD
    factor: Factor = None
    seed: Seed


class InfillParams(Denoising):
    """Per-request infill options, documented field by field."""

    mode: ModeOption = "hybrid"
    max_tokens: int = Field(INFILL_MAX_TOKENS, ge=1, le=CEILING_TOKENS, json_schema_extra=limited("max_tokens"),
                            description="most tokens to insert")
    steps: Steps = DEFAULTS["infill"].steps
    remask_below: float = Field(0.5, gt=0.0, le=1.0,
                                description="hybrid: re-mask draft tokens whose probability is below this")
    remask_cap: float = Field(0.5, gt=0.0, le=1.0, description="hybrid: most share of the draft that may be re-masked")
    temperature: Temperature = 0.0
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass; 1 turns it off")
    stop: list[str] = Field(default_factory=list, description="strings that end the draft")
    seed: Seed = DEFAULTS["infill"].seed
    window: int | None = Field(None, ge=1, le=4096, description="refiner context tokens on each side of a span; "
                               "null: as many as the refiner's trained context holds beside the span")
    cache: Cache = True
    context_tokens: int | None = Field(None, ge=16, le=1 << 20, description="most drafter tokens of prefix + suffix "
                                       "(the text nearest the cursor is kept): the draft's cost grows with it; null: "
                                       "the drafter's trained context less the prompt's control tokens and "
                                       "max_tokens (at most half the context) for the middle")
    candidates: bool = Field(True, description="search several candidates, cut each to the cursor's scope (rest of "
                             "the line mid-line; a statement or block at a line's start), drop those that add a "
                             "syntax error and return the one both models score best; false: the models' single "
                             "raw answer")
    samples: int = Field(2, ge=0, le=8, description="candidates: sampled drafts besides the greedy one when the "
                         "search widens (ar, hybrid)")
    min_confidence: float = Field(INFILL_MIN_CONFIDENCE, ge=0.0, le=1.0, description=(
        "candidates: the confidence floor; below it the completion is empty (an editor prefers no suggestion to a "
        "wrong one); 0 always answers"))
    accept_confidence: float = Field(INFILL_ACCEPT_CONFIDENCE, ge=0.0, le=1.0, description=(
        "candidates: the search first tries the mode's own answer and the document's continuations, ranked by the "
        "drafter alone, and answers with the best when it passes the syntax check with at least this confidence; "
        "otherwise it widens to sampled drafts and the refiner's alternatives, ranked by both models (slower). 0: "
        "widen only when none passes; 1: nearly always widen"))
    language: str | None = Field(None, max_length=32, description=(
        "candidates: the file's language for the syntax check (python or a tree-sitter language: "
        + ", ".join(TREE_SITTER_GRAMMARS) + "; another name skips the check); null: guessed from the file"))


class ReviseParams(Denoising):
    """Per-request revision options, documented field by field."""

    spans: list[tuple[int, int]] | None = Field(None, json_schema_extra=limited("max_spans"), description=(
        "character spans [start, end) to redo, in Python code points; null: the models find doubtful spans"))
    detect: Detect = Field("refiner", description="which model's confidence finds doubtful tokens when no spans "
                                                  "are given")
    remask_below: float = Field(0.2, gt=0.0, le=1.0, description="a token whose probability is below this is doubtful")
    max_fraction: float = Field(0.15, gt=0.0, le=1.0,
                                description="most share of the document's tokens re-masked at once")
    dilation: int = Field(1, ge=0, le=16, description="tokens added on each side of a doubtful token")
    merge_gap: int = Field(2, ge=0, le=64, description="doubtful spans this close are merged")
    steps: Steps = DEFAULTS["revise"].steps
    temperature: Temperature = 0.0
    seed: Seed = DEFAULTS["revise"].seed
    window: Window = 64
    chunk_tokens: int = Field(384, ge=32, le=8192, description="scoring chunk size for long documents")
    max_chars: int = Field(1_000_000, ge=1, description="documents longer than this are refused")
    cache: Cache = True
    only_improvements: bool = Field(True, description="found spans: keep a rewrite only if the refiner scores the "
                                                      "new text higher than the old")
    margin: float = Field(0.5, ge=0.0, description="how much higher (mean log-probability per token) a kept "
                                                   "rewrite must score")
    verify_stride: int = Field(4, ge=1, le=16, description="the check scores each token with every 4th token masked "
                                                           "(pseudo-likelihood), in this many passes")
    language: str | None = Field(None, description="the text's language: 'prose', or a code language (python, ...) "
                                                   "which is never proofread; null: guessed")
    spelling: bool = Field(True, description="no spans, prose: correct a word the English dictionary does not know "
                                             "to a nearby dictionary word, when both models score the sentence "
                                             "clearly higher with it")
    word_order: bool = Field(True, description="no spans, prose: swap two adjacent words when both models score the "
                                               "sentence clearly higher swapped")
    missing_words: bool = Field(True, description="no spans, prose: insert the word the refiner expects between two "
                                                  "words when both models score the sentence clearly higher with it")
    rewrite_prose: bool = Field(False, description="no spans, prose: also re-mask and denoise low-confidence spans "
                                                   "(code always is); off because a small refiner's prose rewrites "
                                                   "do more harm than good")


class ComplianceParams(Denoising):
    """Per-request options of rule application, documented field by field."""

    attempts: int = Field(2, ge=1, le=10, description="the refiner's rewrites of each span length: the first "
                                                      "greedy, the others sampled")
    fluency_margin: float = Field(COMPLIANCE_MARGIN, ge=0.0, le=10.0, description=(
        "a rewrite is applied only when its sentence reads no worse than the original by more than this (mean "
        "log-probability per token under the drafter); otherwise the finding is returned as needs review"))
    rewrite_gain: float = Field(REWRITE_GAIN, ge=0.0, le=10.0, description=(
        "a refiner rewrite (tried when no deletion or preferred term reads well enough) is applied only when its "
        "sentence reads better than the original by at least this"))
    steps: Steps = DEFAULTS["compliance"].steps
    window: Window = 64
    seed: Seed = DEFAULTS["compliance"].seed
    max_chars: int = Field(1_000_000, ge=1, description="longer documents are refused")
    max_rewrites: int = Field(MAX_REWRITES, ge=0, le=1024, description=(
        "most banned-phrase findings (in text order) that get candidate rewrites; one beyond it is returned as "
        "needs review, unchanged"))


class RepairParams(Denoising):
    """Per-request repair options, documented field by field."""

    language: str = Field("python", description="python (checked with ast) or a tree-sitter language: "
                                                + ", ".join(TREE_SITTER_GRAMMARS))
    rounds: int = Field(3, ge=1, le=10, description="most repair rounds; each fixes the first remaining error")
    beam: int = Field(3, ge=1, le=8, description="partly repaired texts kept from one round to the next")
    max_checks: int = Field(600, ge=1, le=10_000, description="most parser checks of minimal-edit candidates per round")
    context_lines: int = Field(2, ge=0, le=20,
                               description="minimal edits are tried this many lines either side of the error")
    samples: int = Field(1, ge=0, le=8, description="sampled candidates per edit site, besides the greedy one")
    top_k: int = Field(8, ge=0, le=64, description="single-token sites also try the refiner's k most likely tokens")
    temperature: float = Field(0.8, gt=0.0, le=2.0, description="temperature of the sampled candidates")
    steps: Steps = DEFAULTS["repair"].steps
    window: Window = 64
    seed: Seed = DEFAULTS["repair"].seed
    max_chars: int = Field(200_000, ge=1, description="longer code is refused")
