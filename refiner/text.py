"""Text in, text out: the editing primitives over a tokenizer with character offsets.

User spans are Python code-point offsets into the text. They are mapped to the tokens
they overlap (through the tokenizer's offset mapping), re-masked, denoised, and the new
tokens are decoded and spliced back over the character range those tokens covered, so
every reported edit points into the original text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch

from backends import Backend
from backends.tokens import SpecialIds, special_ids
from refiner.editing import EditResult, FilledSpan, SpanEdit, fill_spans, infill_variable
from refiner.model import RefinerModel, tokenizer_config
from refiner.onnx_backend import load_onnx_predictor
from refiner.predictor import Kind, MaskPredictor, load_predictor, native_predictor
from refiner.remasking import Span, token_spans, validate_char_spans
from refiner.sampler import SamplerConfig, SamplerDefaults, StepCallback
from refiner.scoring import ScoreRow, row_scores, top_k_between, window_scores

Window = int | None | Literal["default"]
"""Context tokens on each side of a span; None: as many as fit; "default": the refiner's own."""


@dataclass(frozen=True)
class TextEdit:
    """One replaced range of the original text (code-point offsets, half-open)."""

    start: int
    end: int
    before: str
    after: str
    confidence: float  # mean p of the new tokens when they were committed


@dataclass
class RevisedText:
    text: str
    edits: list[TextEdit]
    nfe: int


class TextRefiner:
    """A mask predictor plus its tokenizer: the one way into the refiner.

    It owns the special ids (pad, filler, mask), the context window, the device and the
    batching; callers hand it token ids or text and get tokens, texts and scores back.
    """

    def __init__(
        self,
        predictor: MaskPredictor,
        tokenizer: Any,
        special: SpecialIds | None = None,
        window: int | None = None,
        config: SamplerConfig | None = None,
        defaults: SamplerDefaults | None = None,
    ) -> None:
        """``window``: context tokens fed on each side of a span; None (the default): as many
        as the model's context holds around it (the whole text when it fits), which is what
        the model was trained on (see :func:`refiner.editing.plan_windows`). ``defaults``: the
        model's calibrated sampler settings (``sampler.json`` beside the weights), applied to
        every config that leaves them unset."""
        self.predictor = predictor
        self.tokenizer = tokenizer
        self.special = special or getattr(predictor, "special", None) or special_ids(tokenizer)
        if self.special.pad is None:
            raise ValueError("the tokenizer has no pad token; batching needs one")
        self.pad_id: int = self.special.pad
        self.window = window
        self.defaults = defaults or SamplerDefaults()
        self.config = self.sampler(config or SamplerConfig(steps=16, threshold=0.9, cache=True))
        self.path: str | None = None  # the model directory, when loaded from one (audit records)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, kind: Kind = "auto", device: str = "cpu", backend: Backend = "torch", **kwargs: Any
    ) -> TextRefiner:
        """Load predictor and tokenizer from a directory; ``backend`` "torch" or "onnx"."""
        if backend not in ("torch", "onnx"):
            raise ValueError(f"unknown backend {backend!r}; use 'torch' or 'onnx'")
        predictor: MaskPredictor
        if backend == "torch":
            predictor, tokenizer = load_predictor(path, kind=kind, device=device)
        else:
            predictor, tokenizer = load_onnx_predictor(path, kind=kind, device=device)
        if tokenizer is None:
            raise FileNotFoundError(f"no tokenizer files in model directory {str(path)!r}")
        out = cls(predictor, tokenizer, **{"defaults": SamplerDefaults.beside(path), **kwargs})
        out.path = str(path)
        return out

    def sampler(self, config: SamplerConfig | None) -> SamplerConfig:
        """``config`` with every special token but the filler suppressed (a fill is text) and the
        model's calibrated defaults where it leaves a setting unset."""
        cfg = self.defaults.apply(config or self.config)
        vocab = getattr(self.tokenizer, "all_special_ids", []) or []
        named = [self.special.pad, self.special.eos, self.special.mask]
        ids = {int(i) for i in [*vocab, *named] if i is not None} - {self.special.filler}
        extra = self._added_special_ids()
        return replace(cfg, suppress_ids=tuple(sorted(ids | extra | set(cfg.suppress_ids))))

    def _added_special_ids(self) -> set[int]:
        decoder = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
        return {int(i) for i, t in decoder.items() if getattr(t, "special", False)} - {self.special.filler}

    def encode(self, text: str) -> tuple[list[int], list[Span]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [(int(s), int(e)) for s, e in enc["offset_mapping"]]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=False))

    @property
    def name(self) -> str:
        return str(getattr(self.predictor, "name", "refiner"))

    @property
    def max_length(self) -> int | None:
        """The longest row the model was trained on (None: unbounded)."""
        return self.predictor.max_length

    # --- filling -----------------------------------------------------------------------------

    def fill(
        self,
        docs: Sequence[Sequence[int]],
        edits: Sequence[Sequence[SpanEdit]],
        config: SamplerConfig | None = None,
        window: Window = "default",
        on_step: StepCallback | None = None,
    ) -> list[EditResult]:
        """Denoise every span of every document in one batched run (see :func:`fill_spans`);
        fillers are dropped, special tokens other than the filler never committed."""
        return fill_spans(
            self.predictor,
            docs,
            edits,
            pad_id=self.pad_id,
            window=self._window(window),
            config=self.sampler(config),
            filler_id=self.special.filler,
            on_step=on_step,
        )

    def fill_lengths(
        self,
        left: Sequence[int],
        right: Sequence[int],
        lengths: Sequence[int],
        config: SamplerConfig | None = None,
        window: Window = "default",
    ) -> list[FilledSpan]:
        """Fill between ``left`` and ``right`` with each length in one batch, best first
        (see :func:`infill_variable`)."""
        return infill_variable(
            self.predictor,
            left,
            right,
            lengths,
            pad_id=self.pad_id,
            window=self._window(window),
            config=self.sampler(config),
            filler_id=self.special.filler,
        )

    def _window(self, window: Window) -> int | None:
        return self.window if window == "default" else window

    # --- scoring -----------------------------------------------------------------------------

    def score(self, rows: Sequence[ScoreRow], batch_rows: int | None = None) -> list[float]:
        """Summed log-probability of each row's scored tokens with its masked tokens masked
        (masked pseudo-likelihood), rows batched (``batch_rows`` per pass; None: by memory)."""
        return row_scores(self.predictor, rows, self.pad_id, batch_rows)

    def token_logprobs(
        self, ids: Sequence[int], chunks: Sequence[Span], context: int, stride: int | None = None
    ) -> list[float]:
        """Log-probability of every token of a document, chunk by chunk with ``context``
        tokens across each cut; ``stride`` k: k passes, each masking every k-th token
        (see :func:`refiner.scoring.window_scores`)."""
        logp: list[float] = window_scores(self.predictor, ids, chunks, context, self.pad_id, stride).tolist()
        return logp

    def top_k_between(self, sides: Sequence[tuple[Sequence[int], Sequence[int]]], k: int) -> list[list[int]]:
        """The ``k`` likeliest text tokens for one masked position between each ``(left, right)``."""
        return top_k_between(self.predictor, sides, k, self.sampler(None).suppress_ids, self.pad_id)

    # --- text edits --------------------------------------------------------------------------

    def revise(
        self,
        text: str,
        spans: Sequence[Span],
        config: SamplerConfig | None = None,
        window: Window = "default",
        on_step: StepCallback | None = None,
    ) -> RevisedText:
        """Re-mask the tokens under each character span and denoise them in place."""
        spans = validate_char_spans(text, spans)
        ids, offsets = self.encode(text)
        return self.revise_tokens(text, ids, offsets, token_spans(offsets, spans), config, window, on_step)

    def revise_tokens(
        self,
        text: str,
        ids: list[int],
        offsets: list[Span],
        token_spans: Sequence[Span],
        config: SamplerConfig | None = None,
        window: Window = "default",
        on_step: StepCallback | None = None,
    ) -> RevisedText:
        """Denoise token spans of an encoded text; edits point into ``text``."""
        edits = [SpanEdit.remask(s, e) for s, e in token_spans]
        res = self.fill([ids], [edits], config, window, on_step)[0]
        out_edits: list[TextEdit] = []
        pieces: list[tuple[int, int, str]] = []
        for filled in res.spans:
            cs = offsets[filled.edit.start][0]
            ce = offsets[filled.edit.end - 1][1]
            after = self.decode(filled.tokens)
            conf = sum(filled.confidence) / len(filled.confidence) if filled.confidence else 1.0
            pieces.append((cs, ce, after))
            if after != text[cs:ce]:
                out_edits.append(TextEdit(cs, ce, text[cs:ce], after, conf))
        new = text
        for cs, ce, after in sorted(pieces, reverse=True):
            new = new[:cs] + after + new[ce:]
        return RevisedText(new, out_edits, res.nfe)

    def infill(
        self,
        prefix: str,
        suffix: str,
        lengths: Sequence[int] = (8, 16, 32),
        config: SamplerConfig | None = None,
    ) -> tuple[str, float]:
        """Fill between prefix and suffix trying several token lengths; best text and its score."""
        if not prefix and not suffix:
            raise ValueError("prefix and suffix are both empty: there is no context to fill")
        left, _ = self.encode(prefix)
        right, _ = self.encode(suffix)
        best = self.fill_lengths(left, right, lengths, config)[0]
        return self.decode(best.tokens), best.score


def tiny_text_refiner(tokenizer: Any, seed: int = 0) -> TextRefiner:
    """A randomly initialised tiny native refiner over a given tokenizer (tests, fallbacks)."""
    torch.manual_seed(seed)
    return TextRefiner(native_predictor(RefinerModel(tokenizer_config("tiny", tokenizer))), tokenizer)
