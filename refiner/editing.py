"""Editing primitives on token ids: infill, variable-length infill, windowed span revision.

A document is a list of token ids; an edit replaces the token span [start, end) with
``length`` new tokens (``start == end`` inserts). Only ``window`` tokens of context on each
side of a group of nearby spans are fed to the model, so revising a few tokens of a long
document costs about as much as in a short one; all windows of all documents go through
the sampler as one padded batch.

No row is ever longer than the predictor's ``max_length`` (the context it was trained on):
a window's context shrinks to fit it, a side cut short by the document's edge giving its
room to the other side, and ``window=None`` means "as much context as fits" rather than
"the whole document" whenever the document does not fit. Only a single span longer than
the model's context is refused.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

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
    """Group nearby spans into windows, each row (context + new span lengths) <= ``max_width``.

    window: context tokens wanted on each side of a group; None: as many as fit (the whole
    document when it fits). A span joins the previous group when the gap between them is at
    most ``2 * window`` and the grown row still leaves ``min(window, max_width // 4)`` tokens
    of context on each side; otherwise it starts a window of its own. Each window then takes
    up to ``window`` tokens per side, as many as ``max_width`` leaves.
    """
    if not edits:
        return []
    reach = doc_len if window is None else window
    floor = reach if max_width is None else min(reach, max_width // 4)
    groups: list[_Window] = []
    cores: list[int] = []  # row width of each group's spans and the text between them
    for e in edits:
        if groups:
            gap = e.start - groups[-1].edits[-1].end
            grown = cores[-1] + gap + e.length
            if gap <= 2 * reach and (max_width is None or grown + 2 * floor <= max_width):
                groups[-1].edits.append(e)
                cores[-1] = grown
                continue
        groups.append(_Window(doc_index, 0, 0, [e]))
        cores.append(e.length)
    for g, core in zip(groups, cores):
        first, last = g.edits[0].start, g.edits[-1].end
        room = None if max_width is None else max_width - core
        left, right = split_room(min(reach, first), min(reach, doc_len - last), room)
        g.start, g.end = first - left, last + right
    return groups


def split_room(want_left: int, want_right: int, room: int | None) -> tuple[int, int]:
    """Context tokens for each side: both wishes when they fit ``room`` (None: unbounded),
    else half each, a side that wants less giving the rest to the other."""
    if room is None or want_left + want_right <= room:
        return want_left, want_right
    room = max(room, 0)
    left = min(want_left, room // 2)
    right = min(want_right, room - left)
    return min(want_left, room - right), right


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
    with spans spliced back; filler tokens predicted inside a span are dropped. ``window``:
    context tokens on each side of a group of spans; None: as many as the model's context
    holds (see :func:`plan_windows`). Raises ``ValueError`` for a span longer than that.
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
    return infill_variable(predictor, left, right, [length], pad_id, window, config, filler_id)[0]


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
    confident filler says the span is too long). Fillers are dropped from the text. Every
    candidate sees the same context: ``window`` tokens per side (None: all), cut to what the
    model's context leaves beside the longest candidate, so the scores compare like with like.
    """
    if not lengths:
        raise ValueError("give at least one candidate length")
    if min(lengths) <= 0:
        raise ValueError(f"length must be at least 1, got {min(lengths)}")
    room = None if predictor.max_length is None else predictor.max_length - max(lengths)
    reach = max(len(left), len(right)) if window is None else window
    n_left, n_right = split_room(min(reach, len(left)), min(reach, len(right)), room)
    doc = list(left)[len(left) - n_left :] + list(right)[:n_right]
    docs = [doc] * len(lengths)
    edits = [[SpanEdit(n_left, n_left, n)] for n in lengths]
    res = fill_spans(predictor, docs, edits, pad_id, None, config, filler_id)
    at = len(left)  # report the span where it sits between the whole left and right
    spans = [replace(r.spans[0], edit=SpanEdit(at, at, r.spans[0].edit.length)) for r in res]
    return sorted(spans, key=lambda s: s.score, reverse=True)


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token rows into (ids (N, W), attention_mask (N, W))."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        attn[i, : len(r)] = 1
    return ids, attn
