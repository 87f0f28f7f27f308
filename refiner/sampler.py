"""The denoising loop: fill the masked (editable) positions of a batch, never touch the rest.

Each step runs the mask predictor on the whole batch, proposes a token for every masked
position, and commits some of them: how many follows an even schedule over ``steps``, a
confidence threshold or Fast-dLLM's factor rule (at least the schedule's share per row per
step), and an early exit commits the rest of a block at once when every remaining position
is confident enough; which ones follows the remasking policy. With ``block_length`` the
editable positions are denoised in semi-autoregressive blocks, left to right. Optional
self-correction re-masks committed tokens whose probability has since fallen below a second
threshold.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from refiner.predictor import MaskPredictor, logits_at
from refiner.sampling import (
    REMASKING,
    confidence_scores,
    filter_top_k,
    filter_top_p,
    sample_tokens,
    select_commits,
)


@dataclass(frozen=True)
class SamplerConfig:
    """How to denoise. Every field has a default that works; see each comment for why."""

    steps: int = 32  # forward-pass budget per block (an upper bound in threshold mode too)
    block_length: int | None = None  # semi-AR block size in editable tokens; None = one block
    remasking: str = "low_confidence"  # which masked positions commit first
    threshold: float | None = None  # commit every position above this probability; None = even
    factor: float | None = None  # Fast-dLLM's factor rule: commit the n likeliest while (n+1)(1-p_n) < factor
    early_exit: float | None = None  # commit all of a block's remaining masks once every one's p is above this
    temperature: float = 0.0  # 0 = greedy; > 0 samples with float64 Gumbel noise
    top_k: int | None = None  # sample only among the k most likely tokens
    top_p: float | None = None  # nucleus sampling mass
    seed: int | None = None  # fixes the generator: same seed, same output
    correction_threshold: float | None = None  # re-mask committed tokens whose p falls below
    correction_per_step: int = 1  # at most this many re-masks per row per step
    correction_budget: int = 8  # at most this many re-masks per row in total (termination)
    shrink_batch: bool = True  # run the model only on rows that still have masks
    cache: bool = False  # approximate context cache: later steps run only the block's positions
    cache_refresh: int | None = None  # with cache: rebuild it every this many steps (0 or None: once per block)
    suppress_ids: tuple[int, ...] = ()  # never proposed (special tokens); the mask id always is

    def __post_init__(self) -> None:
        if self.steps <= 0:
            raise ValueError(f"steps must be positive, got {self.steps}")
        if self.block_length is not None and self.block_length <= 0:
            raise ValueError(f"block_length must be positive, got {self.block_length}")
        if self.remasking not in REMASKING:
            raise ValueError(f"remasking must be one of {REMASKING}, got {self.remasking!r}")
        if self.factor is not None and not self.factor >= 0:  # 0: the rule never holds, so it is off
            raise ValueError(f"factor must be >= 0, got {self.factor}")
        if self.cache_refresh is not None and self.cache_refresh < 0:
            raise ValueError(f"cache_refresh must be >= 0, got {self.cache_refresh}")
        if self.early_exit is not None and not 0.0 <= self.early_exit <= 1.0:
            raise ValueError(f"early_exit must lie in [0, 1], got {self.early_exit}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {self.threshold}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")


SAMPLER_FILE = "sampler.json"  # a model's calibrated sampler defaults, beside its config.json


@dataclass(frozen=True)
class SamplerDefaults:
    """A model's own defaults for the settings that depend on how confident it is.

    ``remask bench sampler --calibrate --write`` measures them on held-out text and stores
    them in :data:`SAMPLER_FILE` beside the weights. A checkpoint without that file gets the
    documented fallbacks, which are LLaDA's behaviour: no factor rule, no early exit, the
    cache rebuilt once per block.
    """

    factor: float | None = None  # the largest factor keeping quality within the margin
    early_exit: float | None = None  # the lowest early-exit bar keeping it, with that factor
    cache_refresh: int | None = None  # the knee of the refresh curve

    @classmethod
    def beside(cls, model_dir: str | Path) -> SamplerDefaults:
        """The defaults stored in ``model_dir`` (the fallbacks when it has none)."""
        path = Path(model_dir) / SAMPLER_FILE
        if not path.is_file():
            return cls()
        stored = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{f.name: stored.get(f.name) for f in fields(cls)})

    def apply(self, config: SamplerConfig) -> SamplerConfig:
        """``config`` with the settings it leaves unset (None) taken from these defaults."""
        unset = {f.name: getattr(self, f.name) for f in fields(self) if getattr(config, f.name) is None}
        return replace(config, **unset)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class StepEvent:
    """What a step callback sees: the whole batch after the step's commits."""

    block: int
    step: int
    ids: torch.Tensor  # (B, L)
    masked: torch.Tensor  # (B, L) bool: still masked after this step
    committed: torch.Tensor  # (B, L) bool: committed at this step
    editable: torch.Tensor  # (B, L) bool: the positions being denoised

    def span_state(self) -> list[tuple[int, bool]]:
        """(token, still masked) for every editable position, rows in order, left to right."""
        ids, masked = self.ids[self.editable].tolist(), self.masked[self.editable].tolist()
        return list(zip(ids, masked))


@dataclass
class DenoiseResult:
    ids: torch.Tensor  # (B, L) the input with every editable position filled
    confidence: torch.Tensor  # (B, L) p(token) when committed; 1.0 at fixed positions
    nfe: int  # forward passes of the predictor (one per batched call)
    row_steps: torch.Tensor  # (B,) forward passes each row took part in
    corrections: torch.Tensor = field(default_factory=lambda: torch.zeros(0))  # (B,) re-masks


StepCallback = Callable[[StepEvent], None]


def denoise(
    predictor: MaskPredictor,
    input_ids: torch.Tensor,
    editable: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    config: SamplerConfig | None = None,
    on_step: StepCallback | None = None,
) -> DenoiseResult:
    """Fill ``editable`` positions of ``input_ids`` (B, L); others are returned unchanged.

    The editable positions are cut into blocks (one block without ``block_length``); each
    block runs :meth:`_Run.step` until none of its positions is masked.
    """
    cfg = config or SamplerConfig()
    if input_ids.shape != editable.shape:
        raise ValueError(f"editable {tuple(editable.shape)} must match input_ids {tuple(input_ids.shape)}")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    max_len = predictor.max_length
    if max_len is not None and input_ids.shape[1] > max_len:
        raise ValueError(f"sequence of {input_ids.shape[1]} tokens exceeds the model's maximum length ({max_len})")
    gen = None if cfg.seed is None else torch.Generator(device=input_ids.device).manual_seed(cfg.seed)
    run = _Run(predictor, cfg, gen, _Batch.start(input_ids, editable.bool() & attention_mask.bool(),
                                                 attention_mask, predictor.mask_token_id))
    blocks = _blocks(run.batch.editable, cfg.block_length)
    steps_per_block = max(1, math.ceil(cfg.steps / max(len(blocks), 1)))
    for block, in_block in enumerate(blocks):
        positions, real = _block_positions(in_block)  # (B, P) positions of this block, (B, P) real
        cache: _BlockCache | None = None
        for step in itertools.count():
            still_masked = run.batch.masked.gather(1, positions) & real  # (B, P)
            active = still_masked.any(dim=1)
            if not bool(active.any()):
                break
            rows = active.nonzero().squeeze(1) if cfg.shrink_batch else torch.arange(len(active), device=active.device)
            if cfg.cache_refresh and step % cfg.cache_refresh == 0:
                cache = None  # rebuilt from the whole window
            commit, cache = run.step(rows, positions[rows], real[rows], still_masked[rows],
                                     max(1, steps_per_block - step), cache)
            if on_step is not None:
                on_step(run.batch.event(block, step + 1, rows, positions[rows], commit))
    b = run.batch
    return DenoiseResult(ids=b.ids, confidence=b.confidence, nfe=run.nfe, row_steps=b.row_steps,
                         corrections=b.corrections)


@dataclass
class _Batch:
    """The batch as denoised so far: what every step reads and writes back."""

    ids: torch.Tensor  # (B, L) masks at the editable positions not yet committed
    masked: torch.Tensor  # (B, L) bool: still masked
    confidence: torch.Tensor  # (B, L) p of each token when committed; 1.0 at fixed positions
    editable: torch.Tensor  # (B, L) bool: the positions being denoised
    attention_mask: torch.Tensor  # (B, L)
    row_steps: torch.Tensor  # (B,) forward passes each row took part in
    corrections: torch.Tensor  # (B,) re-masks of self-correction

    @classmethod
    def start(cls, input_ids: torch.Tensor, editable: torch.Tensor, attention_mask: torch.Tensor,
              mask_id: int) -> _Batch:
        ids = input_ids.clone()
        ids[editable] = mask_id
        n_rows = ids.shape[0]
        return cls(ids, editable.clone(), torch.ones(ids.shape, dtype=torch.float32, device=ids.device), editable,
                   attention_mask, torch.zeros(n_rows, dtype=torch.long, device=ids.device),
                   torch.zeros(n_rows, dtype=torch.long, device=ids.device))

    def write(self, rows: torch.Tensor, positions: torch.Tensor, real: torch.Tensor, tokens: torch.Tensor,
              masked: torch.Tensor, commit: torch.Tensor, p_chosen: torch.Tensor) -> None:
        """Write a step's block back: tokens and mask state at the real positions (pads alias
        them), the confidence of the commits. All but ``rows`` are (b, P)."""
        r, c = real.nonzero(as_tuple=True)
        self.ids[rows[r], positions[r, c]] = tokens[r, c]
        self.masked[rows[r], positions[r, c]] = masked[r, c]
        r, c = commit.nonzero(as_tuple=True)
        self.confidence[rows[r], positions[r, c]] = p_chosen[r, c]

    def event(self, block: int, step: int, rows: torch.Tensor, positions: torch.Tensor,
              commit: torch.Tensor) -> StepEvent:
        committed = torch.zeros_like(self.masked)
        r, c = commit.nonzero(as_tuple=True)
        committed[rows[r], positions[r, c]] = True
        return StepEvent(block=block, step=step, ids=self.ids.clone(), masked=self.masked.clone(),
                         committed=committed, editable=self.editable)


class _Run:
    """One :func:`denoise` call: the model, the settings and the batch that steps advance."""

    def __init__(self, predictor: MaskPredictor, cfg: SamplerConfig, gen: torch.Generator | None,
                 batch: _Batch) -> None:
        self.predictor, self.cfg, self.gen, self.batch = predictor, cfg, gen, batch
        self.nfe = 0  # forward passes (one per step: the active rows go through together)
        # a committed mask or special token is nonsense
        banned = sorted({predictor.mask_token_id, *cfg.suppress_ids})
        self.banned = torch.tensor(banned, dtype=torch.long, device=batch.ids.device)
        self.use_cache = cfg.cache and bool(getattr(predictor, "supports_cache", False))

    def step(self, rows: torch.Tensor, positions: torch.Tensor, real: torch.Tensor, still_masked: torch.Tensor,
             steps_left: int, cache: _BlockCache | None) -> tuple[torch.Tensor, _BlockCache | None]:
        """One denoising step of ``rows`` over their block ``positions`` (b, P): predict, pick
        a token per masked position, commit the step's share, self-correct, write back.
        ``cache`` None: build the context cache. -> (commit (b, P) bool, the cache)."""
        cfg, batch = self.cfg, self.batch
        row_ids = batch.ids[rows]  # (b, L)
        logits, cache = _predict(self.predictor, row_ids, batch.attention_mask[rows], positions, self.use_cache,
                                 cache, rows)
        logits = logits.index_fill(-1, self.banned, float("-inf"))
        self.nfe += 1
        batch.row_steps[rows] += 1
        probs = torch.softmax(logits.float(), dim=-1)  # (b, P, V)
        proposal = sample_tokens(filter_top_p(filter_top_k(logits, cfg.top_k), cfg.top_p), cfg.temperature, self.gen)
        p_chosen = probs.gather(-1, proposal.unsqueeze(-1)).squeeze(-1)  # (b, P)
        scores = confidence_scores(probs, proposal, cfg.remasking, self.gen)
        quota = torch.ceil(still_masked.sum(1).float() / steps_left).long()
        # threshold mode still honours the step budget: at least the even-schedule quota
        commit = select_commits(scores, still_masked, k=quota, threshold=cfg.threshold, probs_of_chosen=p_chosen,
                                factor=cfg.factor, early_exit=cfg.early_exit)
        tokens = torch.where(commit, proposal, row_ids.gather(1, positions))
        masked = still_masked & ~commit
        if cfg.correction_threshold is not None:
            committed_before = real & ~still_masked  # committed at an earlier step of this block
            tokens, masked, n_fixed = _self_correct(probs, tokens, masked, committed_before, cfg,
                                                    batch.corrections[rows], self.predictor.mask_token_id)
            batch.corrections[rows] += n_fixed
        batch.write(rows, positions, real, tokens, masked, commit, p_chosen)
        return commit, cache


def _blocks(editable: torch.Tensor, block_length: int | None) -> list[torch.Tensor]:
    """The semi-autoregressive blocks, left to right: (B, L) bool each, ``block_length``
    editable positions of every row (None: all of them, one block)."""
    longest = int(editable.sum(1).max().item()) if editable.any() else 0
    size = block_length or max(longest, 1)
    n_blocks = math.ceil(longest / size)
    rank = editable.long().cumsum(dim=1) - 1  # (B, L) index of each editable position in its row
    return [editable & (rank >= b * size) & (rank < (b + 1) * size) for b in range(n_blocks)]


def _block_positions(in_block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of each row's block, padded to a common width P by repeating the first.

    in_block: (B, L) bool -> positions (B, P) long, valid (B, P) bool.
    """
    counts = in_block.sum(1)
    width = max(int(counts.max().item()), 1)
    order = torch.argsort((~in_block).to(torch.int8), dim=1, stable=True)[:, :width]  # block first
    valid = torch.arange(width, device=in_block.device)[None, :] < counts[:, None]
    first = order[:, :1].expand_as(order)
    return torch.where(valid, order, first), valid


@dataclass
class _BlockCache:
    """A context cache built for the rows active when the block (or a refresh) began."""

    cache: Any  # refiner.model.ContextCache
    rows: torch.Tensor  # (R,) global row ids, sorted

    def select(self, idx: torch.Tensor) -> tuple[Any, torch.Tensor]:
        sel = torch.searchsorted(self.rows, idx)  # rows only leave a block, never join
        return self.cache.select(sel), sel


def _predict(
    predictor: MaskPredictor,
    x: torch.Tensor,
    attn: torch.Tensor,
    pos: torch.Tensor,
    use_cache: bool,
    cache: _BlockCache | None,
    rows: torch.Tensor,
) -> tuple[torch.Tensor, _BlockCache | None]:
    """Logits at ``pos`` (b, P, V) of the batch's ``rows``. With the cache, the first step of
    a block (or of a refresh: ``cache`` None) runs the whole window and keeps its
    keys/values; later steps run only the block."""
    if not use_cache:
        if hasattr(predictor, "predict_at"):
            return predictor.predict_at(x, attn, pos)[0], None
        return logits_at(predictor, x, attn, pos), None
    if cache is None:
        logits, built = predictor.predict_at(x, attn, pos, build_cache=True)  # type: ignore[attr-defined]
        return logits, _BlockCache(built, rows.clone())
    part, sel = cache.select(rows)
    logits, part = predictor.predict_at(x, attn, pos, cache=part)  # type: ignore[attr-defined]
    cache.cache.update(sel, part)
    return logits, cache


def _self_correct(
    probs: torch.Tensor,
    x: torch.Tensor,
    masked: torch.Tensor,
    committed_before: torch.Tensor,
    cfg: SamplerConfig,
    used: torch.Tensor,
    mask_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Re-mask earlier commits whose probability under the current step fell below the bar.

    Only positions committed at an earlier step of the current block qualify (never fixed
    context), at most ``correction_per_step`` per row and ``correction_budget`` in total,
    so the loop still ends. -> (ids, masked, re-masks per row).
    """
    assert cfg.correction_threshold is not None
    eligible = committed_before & ~masked
    p_now = probs.gather(-1, x.unsqueeze(-1)).squeeze(-1)  # (b, L) p of the current token
    weak = eligible & (p_now < cfg.correction_threshold)
    allowance = (cfg.correction_budget - used).clamp_min(0).clamp_max(cfg.correction_per_step)
    score = p_now.masked_fill(~weak, float("inf"))
    order = score.argsort(dim=1)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1], device=x.device).expand_as(order))
    remask = weak & (rank < allowance[:, None])
    x = torch.where(remask, torch.full_like(x, mask_id), x)
    return x, masked | remask, remask.sum(1)
