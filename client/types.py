"""Typed results of the SDK: frozen dataclasses read from the server's JSON answers.

Each class keeps the answer it was read from in ``raw``, so a field the server adds later
is never out of reach. Offsets (``start``, ``end``) are Python code points into the text
that was sent, as the server reports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# the server's workflows.options.Mode, written again: the SDK imports no server code (a test holds them equal)
Mode = Literal["ar", "diffusion", "hybrid"]
FINAL_JOB_STATES = frozenset({"completed", "failed", "cancelled", "expired"})


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, d: dict[str, Any] | None) -> Usage | None:
        if not d:
            return None
        return cls(int(d.get("prompt_tokens", 0)), int(d.get("completion_tokens", 0)), int(d.get("total_tokens", 0)))


@dataclass(frozen=True)
class TokenConfidence:
    """One inserted token and the probability the model that chose it gave it."""

    text: str
    confidence: float
    changed: bool  # the refiner replaced the drafter's token here


@dataclass(frozen=True)
class Infill:
    """The text to insert between prefix and suffix, with remask's per-token figures."""

    text: str
    finish_reason: str | None  # stop: ended on its own or at a stop string; length: hit max_tokens
    mode: str | None  # the mode that ran: ar, diffusion or hybrid
    start: int | None  # replaced range in prefix + suffix (code points); start == end: an insertion
    end: int | None
    tokens: list[TokenConfidence]
    draft: str | None  # the drafter's text before refinement (ar, hybrid)
    nfe: int  # refiner forward passes
    usage: Usage | None
    id: str = ""
    model: str = ""
    audit: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def changed(self) -> list[int]:
        """Indices of the tokens the refiner changed."""
        return [i for i, t in enumerate(self.tokens) if t.changed]

    @property
    def min_confidence(self) -> float | None:
        """The weakest token's confidence (None: nothing inserted)."""
        return min((t.confidence for t in self.tokens), default=None)

    @classmethod
    def from_completion(cls, d: dict[str, Any], text: str | None = None) -> Infill:
        """From a ``text_completion`` answer, or the last chunk of a stream (``text`` given)."""
        choice = (d.get("choices") or [{}])[0]
        info = d.get("remask") or {}
        tokens = [TokenConfidence(t["text"], float(t["confidence"]), bool(t["changed"]))
                  for t in info.get("tokens") or []]
        return cls(text=choice.get("text", "") if text is None else text, finish_reason=choice.get("finish_reason"),
                   mode=info.get("mode"), start=info.get("start"), end=info.get("end"), tokens=tokens,
                   draft=info.get("draft"), nfe=int(info.get("nfe") or 0), usage=Usage.of(d.get("usage")),
                   id=d.get("id", ""), model=d.get("model", ""), audit=info.get("audit"), raw=d)


@dataclass(frozen=True)
class InfillChunk:
    """One event of a streamed infill.

    ``text`` pieces add up to the final insertion. In ar mode they are token deltas; in
    diffusion and hybrid mode the intermediate denoising states arrive as ``snapshot``
    (with empty ``text``) and the whole insertion comes in the last chunk.
    """

    text: str
    event: str  # token, snapshot or done
    snapshot: str | None = None
    confidence: float | None = None  # of a token delta
    finish_reason: str | None = None
    result: Infill | None = None  # on the last chunk (event "done")


@dataclass(frozen=True)
class Edit:
    """One change: ``text[start:end]`` (code points) was ``before`` and becomes ``after``."""

    start: int
    end: int
    before: str
    after: str
    reason: str  # user_span, low_confidence, syntax_repair, or a compliance rule id
    confidence: float

    @classmethod
    def of(cls, d: dict[str, Any]) -> Edit:
        return cls(int(d["start"]), int(d["end"]), d["before"], d["after"], d["reason"], float(d["confidence"]))


@dataclass(frozen=True)
class Issue:
    """A syntax problem the parser found (code points)."""

    start: int
    end: int
    message: str


@dataclass(frozen=True)
class Revision:
    """The answer of revise or repair: the new text and how it differs from the input."""

    text: str
    edits: list[Edit]
    diff: str  # unified diff from input to output; empty when unchanged
    kind: str  # revision, compliance or repair
    audit: dict[str, Any] | None
    nfe: int
    spans: list[tuple[int, int]] | None = None  # revise: the ranges that were re-masked
    unresolved: list[str] | None = None  # compliance: rule ids with a hit left as it was
    matches: list[dict[str, Any]] = field(default_factory=list)  # LanguageTool-style matches
    # compliance: banned phrases not rewritten (rule_id, start, end, phrase, reason, suggestion, ...)
    needs_review: list[dict[str, Any]] | None = None
    id: str = ""
    model: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @staticmethod
    def _common(d: dict[str, Any]) -> dict[str, Any]:
        info = d.get("remask") or {}
        spans = d.get("spans")
        return {"text": d["text"], "edits": [Edit.of(e) for e in d.get("edits") or []], "diff": d.get("diff", ""),
                "kind": d.get("object", ""), "audit": info.get("audit"), "nfe": int(info.get("nfe") or 0),
                "spans": [(int(s), int(e)) for s, e in spans] if spans is not None else None,
                "unresolved": d.get("unresolved"), "matches": list(d.get("matches") or []),
                "needs_review": d.get("needs_review"), "id": d.get("id", ""), "model": d.get("model", ""), "raw": d}

    @classmethod
    def of(cls, d: dict[str, Any]) -> Revision:
        if d.get("object") == "repair":
            return Repair.of(d)
        return cls(**cls._common(d))


@dataclass(frozen=True)
class Repair(Revision):
    """A repair's answer: a :class:`Revision` plus whether the output parses."""

    parses: bool = False
    rounds: int = 0
    issues_before: list[Issue] = field(default_factory=list)
    issues_after: list[Issue] = field(default_factory=list)

    @classmethod
    def of(cls, d: dict[str, Any]) -> Repair:
        def issues(key: str) -> list[Issue]:
            return [Issue(int(i["start"]), int(i["end"]), i["message"]) for i in d.get(key) or []]

        return cls(**cls._common(d), parses=bool(d.get("parses")), rounds=int(d.get("rounds") or 0),
                   issues_before=issues("issues_before"), issues_after=issues("issues_after"))


@dataclass(frozen=True)
class ReviseEvent:
    """One event of a streamed revision: a denoising ``snapshot`` of the whole text, or the ``result``."""

    snapshot: str | None = None
    result: Revision | None = None


@dataclass(frozen=True)
class JobCounts:
    total: int
    completed: int
    failed: int

    @property
    def done(self) -> int:
        return self.completed + self.failed


@dataclass(frozen=True)
class ReviewCounts:
    """Findings a job's results leave for a person (compliance rewrites not applied)."""

    items: int = 0  # items whose result lists some under needs_review
    findings: int = 0  # those findings, in all


@dataclass(frozen=True)
class Job:
    """A batch job in OpenAI Batch shape (``status``, ``request_counts``) plus ``progress``."""

    id: str
    status: str  # queued, in_progress, finalizing, completed, failed, cancelling, cancelled, expired
    request_counts: JobCounts
    progress: float  # share of items done, 0..1
    created_at: int
    completed_at: int | None = None
    failed_at: int | None = None
    cancelled_at: int | None = None
    expires_at: int | None = None
    current_item: str | None = None  # custom_id of the item running now
    error: str | None = None  # why it failed, when it did
    metadata: dict[str, str] = field(default_factory=dict)
    review_counts: ReviewCounts = ReviewCounts()
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def final(self) -> bool:
        """No worker will touch the job again: completed, failed, cancelled or expired."""
        return self.status in FINAL_JOB_STATES

    @classmethod
    def of(cls, d: dict[str, Any]) -> Job:
        c, r = d.get("request_counts") or {}, d.get("review_counts") or {}
        return cls(id=d["id"], status=d["status"],
                   request_counts=JobCounts(*(int(c.get(k, 0)) for k in ("total", "completed", "failed"))),
                   progress=float(d.get("progress", 0.0)), created_at=int(d.get("created_at") or 0),
                   completed_at=d.get("completed_at"), failed_at=d.get("failed_at"), cancelled_at=d.get("cancelled_at"),
                   expires_at=d.get("expires_at"), current_item=d.get("current_item"), error=d.get("error"),
                   metadata=dict(d.get("metadata") or {}),
                   review_counts=ReviewCounts(*(int(r.get(k, 0)) for k in ("items", "findings"))), raw=d)


@dataclass(frozen=True)
class JobPage:
    """One page of :meth:`list_jobs`, newest first; pass ``last_id`` as ``after`` for the next."""

    data: list[Job]
    first_id: str | None
    last_id: str | None
    has_more: bool

    @classmethod
    def of(cls, d: dict[str, Any]) -> JobPage:
        return cls([Job.of(j) for j in d.get("data") or []], d.get("first_id"), d.get("last_id"),
                   bool(d.get("has_more")))


@dataclass(frozen=True)
class JobOutput:
    """One line of a job's results or errors (OpenAI Batch output format)."""

    id: str
    custom_id: str
    status_code: int | None  # of the item's answer; None when it failed
    body: dict[str, Any] | None  # the item's answer, as the synchronous endpoint would give it
    error: dict[str, Any] | None  # {code, message} of a failed item
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, d: dict[str, Any]) -> JobOutput:
        resp = d.get("response") or {}
        return cls(d.get("id", ""), d.get("custom_id", ""), resp.get("status_code"), resp.get("body"),
                   d.get("error"), raw=d)
