"""Editing primitives on token ids: infill, variable-length infill, windowed span revision.

A document is a list of token ids; an edit replaces the token span [start, end) with
``length`` new tokens (``start == end`` inserts). Only ``window`` tokens of context on each
side of a group of nearby spans are fed to the model, so revising a few tokens of a long
document costs about as much as in a short one; all windows of all documents go through
the sampler as one padded batch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from refiner.predictor import MaskPredictor
from refiner.sampler import DenoiseResult, SamplerConfig, StepCallback, denoise


@dataclass(frozen=True)
class SpanEdit:
    """Replace tokens [start, end) of a document with ``length`` tokens to be denoised."""

    start: int
    end: int
    length: int

    @classmethod
    def remask(cls, start: int, end: int) -> SpanEdit:
        """Re-mask a span in place, keeping its token count."""
        return cls(start, end, end - start)


@dataclass
class FilledSpan:
    edit: SpanEdit
    tokens: list[int]  # the new tokens, filler tokens dropped
    confidence: list[float]  # p at commit time, aligned with ``tokens``
    raw_tokens: list[int]  # before dropping fillers (length == edit.length)
    raw_confidence: list[float]
    nfe: int = 0  # forward passes of the batch that filled this span

    @property
    def score(self) -> float:
        """Mean log-probability of the committed tokens: the model's own ranking score."""
        if not self.raw_confidence:
            return 0.0
        return sum(math.log(max(c, 1e-12)) for c in self.raw_confidence) / len(self.raw_confidence)


@dataclass
class EditResult:
    ids: list[int]  # the edited document
    spans: list[FilledSpan]  # in document order
    nfe: int
    rows: int  # windows fed to the model
    row_tokens: int  # tokens per row (padded), the cost driver


@dataclass
class _Window:
    doc: int
    start: int  # first context token in the document
    end: int
    edits: list[SpanEdit] = field(default_factory=list)


def _validate(doc: Sequence[int], edits: Sequence[SpanEdit]) -> list[SpanEdit]:
    out = sorted(edits, key=lambda e: (e.start, e.end))
    for e in out:
        if e.start < 0 or e.end > len(doc) or e.end < e.start:
            raise ValueError(f"span [{e.start}, {e.end}) lies outside the document of {len(doc)} tokens")
        if e.length <= 0:
            raise ValueError(f"span [{e.start}, {e.end}) asks for a length of {e.length}: it must be at least 1")
    for a, b in itertools.pairwise(out):
        if b.start < a.end or (b.start == a.end == b.end == a.start):
            raise ValueError(f"spans [{a.start}, {a.end}) and [{b.start}, {b.end}) overlap")
    return out


def plan_windows(
    doc_index: int, doc_len: int, edits: Sequence[SpanEdit], window: int | None, max_width: int | None = None
) -> list[_Window]:
    """Group spans whose contexts would overlap into one window; None = the whole document.

    A group stops growing before its row (context + new span lengths) would pass
    ``max_width``; the next span then starts a window of its own.
    """
    if window is None:
        return [_Window(doc_index, 0, doc_len, list(edits))] if edits else []
    groups: list[_Window] = []
    width = 0
    for e in edits:
        added = e.length + (e.start - groups[-1].edits[-1].end if groups else 0)
        fits = max_width is None or width + added + 2 * window <= max_width
        if groups and e.start - groups[-1].edits[-1].end <= 2 * window and fits:
            groups[-1].edits.append(e)
            width += added
        else:
            groups.append(_Window(doc_index, 0, 0, [e]))
            width = e.length
    for g in groups:
        g.start = max(0, g.edits[0].start - window)
        g.end = min(doc_len, g.edits[-1].end + window)
    return groups


def fill_spans(
    predictor: MaskPredictor,
    docs: Sequence[Sequence[int]],
    edits: Sequence[Sequence[SpanEdit]],
    pad_id: int,
    window: int | None = None,
    config: SamplerConfig | None = None,
    filler_id: int | None = None,
    on_step: StepCallback | None = None,
) -> list[EditResult]:
    """Denoise every span of every document in one batched sampler run.

    ``edits[i]`` are the spans of ``docs[i]``. Returns one :class:`EditResult` per document
    with spans spliced back; filler tokens predicted inside a span are dropped.
    """
    if len(docs) != len(edits):
        raise ValueError(f"{len(docs)} documents but {len(edits)} edit lists")
    checked = [_validate(d, e) for d, e in zip(docs, edits)]
    max_w = predictor.max_length
    windows = [w for i, (d, e) in enumerate(zip(docs, checked)) for w in plan_windows(i, len(d), e, window, max_w)]
    results = [EditResult(ids=list(d), spans=[], nfe=0, rows=0, row_tokens=0) for d in docs]
    if not windows:
        return results

    rows: list[list[int]] = []
    editable_rows: list[list[bool]] = []
    for w in windows:
        doc = docs[w.doc]
        ids: list[int] = []
        ed: list[bool] = []
        cursor = w.start
        for e in w.edits:
            ids += doc[cursor : e.start]
            ed += [False] * (e.start - cursor)
            ids += [predictor.mask_token_id] * e.length
            ed += [True] * e.length
            cursor = e.end
        ids += doc[cursor : w.end]
        ed += [False] * (w.end - cursor)
        rows.append(list(ids))
        editable_rows.append(ed)

    width = max(len(r) for r in rows)
    if predictor.max_length is not None and width > predictor.max_length:
        raise ValueError(
            f"a window of {width} tokens (spans plus context) exceeds the model's maximum "
            f"length ({predictor.max_length}); use a smaller window or shorter spans"
        )
    input_ids, attn = pad_batch(rows, pad_id)
    editable, _ = pad_batch([[int(e) for e in ed] for ed in editable_rows], 0)
    editable = editable.bool()
    device = getattr(predictor, "device", torch.device("cpu"))
    out: DenoiseResult = denoise(
        predictor, input_ids.to(device), editable.to(device), attn.to(device), config, on_step
    )
    new_ids, conf = out.ids.cpu(), out.confidence.cpu()

    filled: dict[int, list[FilledSpan]] = {}
    for i, w in enumerate(windows):
        pos = 0  # position in the row
        cursor = w.start
        for e in w.edits:
            pos += e.start - cursor
            raw = new_ids[i, pos : pos + e.length].tolist()
            rc = conf[i, pos : pos + e.length].tolist()
            keep = [j for j, t in enumerate(raw) if t != filler_id]
            filled.setdefault(w.doc, []).append(
                FilledSpan(e, [raw[j] for j in keep], [rc[j] for j in keep], raw, rc, out.nfe)
            )
            pos += e.length
            cursor = e.end
    for d, spans in filled.items():
        doc = list(docs[d])
        for s in sorted(spans, key=lambda s: s.edit.start, reverse=True):  # splice right to left
            doc[s.edit.start : s.edit.end] = s.tokens
        results[d] = EditResult(
            ids=doc,
            spans=sorted(spans, key=lambda s: s.edit.start),
            nfe=out.nfe,
            rows=sum(1 for w in windows if w.doc == d),
            row_tokens=width,
        )
    return results


def infill(
    predictor: MaskPredictor,
    left: Sequence[int],
    right: Sequence[int],
    length: int,
    pad_id: int,
    window: int | None = None,
    config: SamplerConfig | None = None,
    filler_id: int | None = None,
) -> FilledSpan:
    """Fill ``length`` tokens between ``left`` and ``right`` context."""
    if length <= 0:
        raise ValueError(f"length must be at least 1, got {length}")
    doc = list(left) + list(right)
    res = fill_spans(predictor, [doc], [[SpanEdit(len(left), len(left), length)]], pad_id, window, config, filler_id)
    return res[0].spans[0]


def infill_variable(
    predictor: MaskPredictor,
    left: Sequence[int],
    right: Sequence[int],
    lengths: Sequence[int],
    pad_id: int,
    window: int | None = None,
    config: SamplerConfig | None = None,
    filler_id: int | None = None,
) -> list[FilledSpan]:
    """Try several span lengths in one batch; return the candidates best-scored first.

    The score is the mean log-probability of the committed tokens (fillers included, since a
    confident filler says the span is too long). Fillers are dropped from the text.
    """
    if not lengths:
        raise ValueError("give at least one candidate length")
    doc = list(left) + list(right)
    docs = [doc] * len(lengths)
    edits = [[SpanEdit(len(left), len(left), n)] for n in lengths]
    res = fill_spans(predictor, docs, edits, pad_id, window, config, filler_id)
    return sorted((r.spans[0] for r in res), key=lambda s: s.score, reverse=True)


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token rows into (ids (N, W), attention_mask (N, W))."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        attn[i, : len(r)] = 1
    return ids, attn


@torch.inference_mode()
def window_scores(
    predictor: MaskPredictor,
    ids: Sequence[int],
    chunks: Sequence[tuple[int, int]],
    context: int,
    pad_id: int,
    stride: int | None = None,
) -> torch.Tensor:
    """Log-probability of every token of a long document, chunk by chunk, in one batch: (L,).

    Each chunk [lo, hi) is fed with ``context`` tokens of its neighbours so a token at a cut
    still sees both sides. stride None: the text as it stands (cheap; meaningful for a
    refiner trained with edit noise). stride k: k rows per chunk, row j masking the tokens
    i with i % k == j, a pseudo-likelihood in which no token vouches for itself.
    """
    phases = list(range(stride)) if stride else [None]
    rows, spans = [], []
    for lo, hi in chunks:
        a, b = max(0, lo - context), min(len(ids), hi + context)
        for j in phases:
            row = [predictor.mask_token_id if j is not None and i % stride == j else ids[i]  # type: ignore[operator]
                   for i in range(a, b)]
            rows.append(row)
            spans.append((a, lo, hi, j))
    x, attn = pad_batch(rows, pad_id)
    truth, _ = pad_batch([ids[a : a + len(r)] for r, (a, _, _, _) in zip(rows, spans)], pad_id)
    device = getattr(predictor, "device", torch.device("cpu"))
    logits = predictor(x.to(device), attn.to(device)).float().cpu()
    logp = torch.log_softmax(logits, -1).gather(-1, truth[..., None]).squeeze(-1)  # (N, W)
    out = torch.zeros(len(ids))
    pos = torch.arange(len(ids))
    for r, (a, lo, hi, j) in enumerate(spans):
        keep = torch.ones(hi - lo, dtype=torch.bool) if j is None else (pos[lo:hi] % stride == j)  # type: ignore[operator]
        out[lo:hi] += logp[r, lo - a : hi - a] * keep
    return out


def token_scores(
    predictor: MaskPredictor,
    ids: Sequence[int],
    stride: int | None = None,
) -> torch.Tensor:
    """Log-probability the refiner gives each existing token of a short document: (L,).

    The whole document is one chunk; see :func:`window_scores` for ``stride``.
    """
    return window_scores(predictor, ids, [(0, len(ids))], 0, pad_id=0, stride=stride)
