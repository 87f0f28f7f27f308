"""The refiner's training noise: diffusion masks, span masks with filler, edit noise.

All functions are pure: tensors and a ``torch.Generator`` in, tensors out. One batch of clean
ids (B, L) becomes a :class:`NoisedBatch`:

1. **Spans and filler.** A share of the rows get one contiguous masked span, the editing
   regime (a doubtful span masked inside clean text). Half of these spans are *too long*:
   ``k`` filler tokens are inserted right after the span's ``m`` content tokens, inside the
   span, and the row is cut back to L. The target of those ``k`` positions is
   ``<|filler|>``, so the model learns to say "nothing here" for surplus positions and a
   span can shorten. The other half keep their exact length, so the model does not learn
   that every span ends in filler.
2. **Diffusion masks.** t ~ U(eps, 1) per row and every other token is masked with
   probability t (``refiner.schedule.apply_noise``), the LLaDA forward process.
3. **Edit noise.** Of the tokens still visible, a share r ~ U(0, ``edit_rate_max``) per row
   is corrupted: a uniformly random token, a token drawn from the corpus's unigram
   distribution (a plausible wrong word), or a swap with the right-hand neighbour. The
   targets stay the clean tokens, so the model learns to restore them and, at visible
   positions, to give a low probability to a token that does not fit: its per-token
   confidence then points at the wrong tokens of a draft.

Loss weights (see :func:`refiner_loss`): a diffusion-masked token weighs 1/t (the ELBO); a
forced span token weighs 1, which is what a masked token weighs on average under
t ~ U(0, 1); a corrupted token weighs ``edit_weight`` (1); a clean visible token weighs
``clean_weight`` (0.1): copying is easy, but without some weight the model's output at a
visible position would be untrained and its confidence meaningless. Everything is divided
by the number of tokens in the batch, as ``refiner.schedule.diffusion_loss`` does.

Loss positions (see :func:`loss_positions`): the vocabulary projection and its softmax cost
as much as the rest of a small model, so training computes logits only where a loss is
taken, and samples those positions without bias. A clean visible token carries a loss with
probability ``clean_keep`` and a masked token of a row at time t with probability
``min(1, mask_keep / t)``; a kept token's weight is divided by its probability, so the
expected loss is the one above. Measured on the 2-core development machine (``cpu`` preset,
16 x 128 tokens): 1,690 tokens/s with every position, 3,030 with ``clean_keep`` 0.1 and
``mask_keep`` 0.25 (31% of the positions kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from refiner.schedule import LinearSchedule, apply_noise, sample_times


@dataclass(frozen=True)
class RefinerObjective:
    """Settings of the refiner's training noise and loss weights."""

    eps: float = 1e-3  # t ~ U(eps, 1): keeps the 1/t weight finite
    span_prob: float = 0.5  # share of rows with one contiguous masked span
    filler_share: float = 0.5  # share of those spans that are too long (hold fillers)
    span_max: int = 16  # content tokens of a span: 1..span_max
    filler_max: int = 8  # fillers inserted into a too-long span: 1..filler_max
    edit_rate_max: float = 0.10  # per row, share of visible tokens corrupted ~ U(0, max)
    edit_mix: tuple[float, float, float] = (1.0, 1.0, 1.0)  # random : unigram : swap
    edit_weight: float = 1.0  # loss weight of a corrupted visible token
    clean_weight: float = 0.1  # loss weight of a clean visible token (copy it)
    clean_keep: float = 0.1  # share of clean visible tokens that carry a loss (1: all)
    mask_keep: float = 0.25  # a masked token of a row at time t is kept w.p. min(1, this / t)
    stratified_t: bool = True  # one t per slice of (0, 1) across the batch (less variance)

    def __post_init__(self) -> None:
        for name in ("clean_keep", "mask_keep"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")


@dataclass
class NoisedBatch:
    """One noised batch; every tensor is (B, L) except ``t`` (B,)."""

    input_ids: torch.Tensor  # what the model sees
    targets: torch.Tensor  # what it should predict (clean ids, fillers in too-long spans)
    t: torch.Tensor  # diffusion time per row
    masked: torch.Tensor  # bool: masked by the diffusion process (weight 1/t)
    span: torch.Tensor  # bool: inside a forced span, content or filler (weight 1)
    corrupted: torch.Tensor  # bool: visible and replaced by a wrong token (weight edit_weight)

    @property
    def visible(self) -> torch.Tensor:
        return ~(self.masked | self.span)


def insert_spans(
    ids: torch.Tensor, objective: RefinerObjective, filler_id: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one span in a share of the rows; pad half of them with fillers.

    ids: (B, L) -> (targets (B, L), span (B, L) bool). A too-long span of ``m`` content
    tokens and ``k`` fillers turns ``x`` into ``x[:s+m] + [filler] * k + x[s+m : L-k]``.
    """
    b, length = ids.shape
    targets, span = ids.clone(), torch.zeros_like(ids, dtype=torch.bool)
    draws = torch.rand(b, 2, generator=generator)  # (B, 2): has a span, holds fillers
    for row in range(b):
        if draws[row, 0] >= objective.span_prob:
            continue
        k = 0
        if draws[row, 1] < objective.filler_share:
            k = int(torch.randint(1, objective.filler_max + 1, (1,), generator=generator))
        m_max = max(1, min(objective.span_max, length - k - 1))
        m = int(torch.randint(1, m_max + 1, (1,), generator=generator))
        k = min(k, length - m - 1)
        s = int(torch.randint(0, length - m - k + 1, (1,), generator=generator))
        if k > 0:
            fill = torch.full((k,), filler_id, dtype=ids.dtype)
            targets[row] = torch.cat([ids[row, : s + m], fill, ids[row, s + m : length - k]])
        span[row, s : s + m + k] = True
    return targets, span


def corrupt(
    ids: torch.Tensor,
    corruptible: torch.Tensor,
    objective: RefinerObjective,
    replacement: torch.Tensor,
    unigram: torch.Tensor,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Edit noise on the ``corruptible`` positions of ``ids``.

    ids, corruptible: (B, L); replacement, unigram: (V,) sampling weights (zero on special
    tokens). Returns (noisy ids, corrupted): ``corrupted`` marks positions whose token
    changed, so a swap of two equal tokens or a draw of the same token counts as clean.
    """
    b, length = ids.shape
    rate = torch.rand(b, 1, generator=generator) * objective.edit_rate_max  # (B, 1)
    chosen = (torch.rand(b, length, generator=generator) < rate) & corruptible
    mix = torch.tensor(objective.edit_mix, dtype=torch.float)
    kind = torch.multinomial(mix / mix.sum(), b * length, replacement=True,
                             generator=generator).view(b, length)  # 0 random, 1 unigram, 2 swap

    # swaps: position i trades with i + 1; no chains (i + 1 may not start a swap itself)
    nxt_ok = torch.zeros_like(corruptible)
    nxt_ok[:, :-1] = corruptible[:, 1:]
    start = chosen & (kind == 2) & nxt_ok
    prev_start = torch.zeros_like(start)
    prev_start[:, 1:] = start[:, :-1]
    start &= ~prev_start
    partner = torch.zeros_like(start)  # the i + 1 of each swap
    partner[:, 1:] = start[:, :-1]
    out = ids.clone()
    out[:, :-1] = torch.where(start[:, :-1], ids[:, 1:], out[:, :-1])
    out[:, 1:] = torch.where(partner[:, 1:], ids[:, :-1], out[:, 1:])

    swapped = start | partner
    for k, weights in ((0, replacement), (1, unigram)):
        where = chosen & (kind == k) & ~swapped
        n = int(where.sum())
        if n:
            out[where] = torch.multinomial(weights.float(), n, replacement=True,
                                           generator=generator).to(ids.dtype)
    return out, (out != ids) & corruptible


def noise_batch(
    ids: torch.Tensor,
    objective: RefinerObjective,
    mask_id: int,
    filler_id: int,
    special: torch.Tensor,
    unigram: torch.Tensor,
    generator: torch.Generator,
) -> NoisedBatch:
    """Spans and filler, diffusion masks, then edit noise (see the module docstring).

    ids: (B, L) clean; special: (V,) bool, the special-token ids (never corrupted and never
    drawn as a replacement); unigram: (V,) corpus counts or probabilities.
    """
    targets, span = insert_spans(ids, objective, filler_id, generator)
    t = sample_times(ids.shape[0], objective.eps, generator, stratified=objective.stratified_t)
    noisy, masked = apply_noise(targets, t, mask_id, maskable=~span, generator=generator)
    noisy = noisy.masked_fill(span, mask_id)
    visible = ~(masked | span)
    corruptible = visible & ~special[targets]
    replacement = (~special).float()
    weights = unigram.float().masked_fill(special, 0.0)
    if float(weights.sum()) == 0.0:
        weights = replacement
    noisy, corrupted = corrupt(noisy, corruptible, objective, replacement, weights, generator)
    return NoisedBatch(noisy, targets, t, masked, span, corrupted)


@dataclass
class RefinerLoss:
    loss: torch.Tensor  # scalar, differentiable
    figures: dict[str, float]  # unweighted mean CE per kind of position, for the log


def position_weights(batch: NoisedBatch, objective: RefinerObjective) -> torch.Tensor:
    """Loss weight of every position (B, L): 1/t masked, 1 span, edit/clean when visible.

    The 1/t comes from the noise schedule (``LinearSchedule.loss_weight``), exactly the
    weight ``refiner.schedule.diffusion_loss`` gives a masked token.
    """
    elbo = LinearSchedule().loss_weight(batch.t)[:, None].expand_as(batch.masked)  # (B, L)
    visible = torch.where(batch.corrupted, objective.edit_weight, objective.clean_weight)
    return torch.where(batch.masked, elbo, torch.where(batch.span, 1.0, visible))


@dataclass
class LossPositions:
    """Where the loss is taken; both (B, L)."""

    keep: torch.Tensor  # bool: positions whose logits are computed
    weight: torch.Tensor  # loss weight, already divided by the position's keep probability


def loss_positions(
    batch: NoisedBatch, objective: RefinerObjective, generator: torch.Generator | None = None
) -> LossPositions:
    """Sample the loss positions of ``batch`` (see the module docstring).

    Without a generator every position is kept with its plain weight: the exact loss.
    """
    weight = position_weights(batch, objective)
    if generator is None:
        return LossPositions(torch.ones_like(batch.masked), weight)
    clean = batch.visible & ~batch.corrupted
    mask_p = (objective.mask_keep / batch.t).clamp(max=1.0)[:, None].expand_as(weight)
    prob = torch.where(clean, objective.clean_keep, torch.where(batch.masked, mask_p, 1.0))
    keep = torch.rand(weight.shape, generator=generator) < prob
    return LossPositions(keep, torch.where(keep, weight / prob, 0.0))


def refiner_loss(
    logits: torch.Tensor,
    batch: NoisedBatch,
    objective: RefinerObjective,
    positions: LossPositions | None = None,
) -> RefinerLoss:
    """The diffusion ELBO plus the span, edit and copy terms.

    logits: (B, L, V) at every position, or (N, V) at the N ``positions.keep`` positions in
    row-major order (``RefinerModel(..., logits_at=positions.keep)``). One cross-entropy,
    weighted per position and divided by B * L: with every position kept, the masked term is
    ``diffusion_loss(logits, targets, masked, t).loss`` (a test checks it), without a second
    pass over the logits for the other terms.
    """
    positions = positions or loss_positions(batch, objective)
    keep = positions.keep
    if logits.dim() == 3:
        logits = logits[keep.to(logits.device)]
    device = logits.device
    targets = batch.targets[keep].to(device)  # (N,)
    ce = F.cross_entropy(logits.float(), targets, reduction="none")  # (N,)
    loss = (ce * positions.weight[keep].to(device)).sum() / batch.targets.numel()

    kinds = {
        "masked_ce": batch.masked,
        "span_ce": batch.span,
        "edit_ce": batch.corrupted,
        "copy_ce": batch.visible & ~batch.corrupted,
    }
    flat = ce.detach().cpu()
    figures = {
        name: float(flat[sel[keep]].mean()) if bool(sel[keep].any()) else float("nan")
        for name, sel in kinds.items()
    }
    return RefinerLoss(loss=loss, figures=figures)
