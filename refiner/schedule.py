"""Noise schedules and the masked-diffusion training objective.

Forward process: at time t in (0, 1] every token is independently replaced by the mask token
with probability ``1 - alpha(t)``. The model is trained to recover the masked tokens; the
continuous-time ELBO weights the cross-entropy at time t by ``-alpha'(t) / (1 - alpha(t))``,
which for the linear schedule (alpha = 1 - t, the LLaDA choice) is the familiar ``1 / t``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# (input_ids (B, L), attention_mask (B, L)) -> logits (B, L, V)
LogitsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class NoiseSchedule:
    """alpha(t): the probability that a token is still clean at time t."""

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mask_prob(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 - self.alpha(t)

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """ELBO weight of the masked-token cross-entropy at time t."""
        return -self.d_alpha(t) / (1.0 - self.alpha(t))


class LinearSchedule(NoiseSchedule):
    """alpha(t) = 1 - t: mask probability t, weight 1/t."""

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 - t

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.ones_like(t)


class CosineSchedule(NoiseSchedule):
    """alpha(t) = cos(pi t / 2): fewer masks early, more late; weight pi/2 * tan(pi t/2)-ish."""

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.cos(0.5 * math.pi * t)

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)


SCHEDULES: dict[str, type[NoiseSchedule]] = {"linear": LinearSchedule, "cosine": CosineSchedule}


def sample_times(
    batch: int,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    stratified: bool = False,
) -> torch.Tensor:
    """t ~ U(eps, 1) per row: eps > 0 keeps the 1/t weight finite.

    ``stratified``: row i draws from the i-th of ``batch`` equal slices of (0, 1) instead, so
    every batch covers the whole range of t. Each t is still uniform over the batch's rows,
    so the ELBO estimate stays unbiased, with less variance from batch to batch.
    """
    u = torch.rand(batch, generator=generator, device=device)
    if stratified:
        u = (torch.arange(batch, device=device) + u) / batch
    return eps + (1.0 - eps) * u


def apply_noise(
    input_ids: torch.Tensor,
    t: torch.Tensor,
    mask_token_id: int,
    maskable: torch.Tensor | None = None,
    schedule: NoiseSchedule | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask each maskable token of row b with probability ``mask_prob(t[b])``.

    input_ids, maskable: (B, L); t: (B,) -> (noisy ids (B, L), masked positions (B, L) bool).
    ``maskable`` excludes padding and, for prompt/response training, the prompt.
    """
    schedule = schedule or LinearSchedule()
    p = schedule.mask_prob(t)[:, None]  # (B, 1)
    u = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    masked = u < p
    if maskable is not None:
        masked &= maskable.bool()
    noisy = torch.where(masked, torch.full_like(input_ids, mask_token_id), input_ids)
    return noisy, masked


@dataclass
class DiffusionLoss:
    loss: torch.Tensor  # scalar, differentiable: the weighted ELBO estimate
    masked_ce: torch.Tensor  # scalar, unweighted mean CE over masked tokens (for logs)
    masked_tokens: int


def diffusion_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    masked: torch.Tensor,
    t: torch.Tensor,
    maskable: torch.Tensor | None = None,
    schedule: NoiseSchedule | None = None,
) -> DiffusionLoss:
    """Weighted cross-entropy on masked positions, normalised by the maskable token count.

    logits: (B, L, V); targets, masked, maskable: (B, L); t: (B,).
    Normalising by maskable tokens (not by masked ones) keeps the estimator unbiased: the
    expected number of masked tokens is already accounted for by the 1/t weight.
    """
    schedule = schedule or LinearSchedule()
    ce = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # (B, L)
    weight = schedule.loss_weight(t)[:, None]  # (B, 1)
    m = masked.float()
    denom = (maskable.float().sum() if maskable is not None else torch.tensor(float(m.numel())))
    loss = (ce * m * weight).sum() / denom.clamp(min=1.0)
    n = int(m.sum().item())
    masked_ce = (ce * m).sum() / max(n, 1)
    return DiffusionLoss(loss=loss, masked_ce=masked_ce.detach(), masked_tokens=n)


def prompt_response_maskable(
    attention_mask: torch.Tensor, prompt_lengths: torch.Tensor
) -> torch.Tensor:
    """Maskable positions for the prompt/response variant: real tokens after the prompt.

    attention_mask: (B, L); prompt_lengths: (B,) -> (B, L) bool.
    """
    pos = torch.arange(attention_mask.shape[1], device=attention_mask.device)[None, :]
    return attention_mask.bool() & (pos >= prompt_lengths[:, None])


def masked_diffusion_step(
    model_logits: LogitsFn,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    mask_token_id: int,
    prompt_lengths: torch.Tensor | None = None,
    schedule: NoiseSchedule | None = None,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
) -> DiffusionLoss:
    """One training-loss evaluation: sample t, mask, predict, weigh.

    With ``prompt_lengths`` only the response is masked (the SFT variant); otherwise every
    real (non-padding) token may be masked.
    """
    maskable = attention_mask.bool()
    if prompt_lengths is not None:
        maskable = prompt_response_maskable(attention_mask, prompt_lengths)
    t = sample_times(input_ids.shape[0], eps, generator, input_ids.device)
    noisy, masked = apply_noise(input_ids, t, mask_token_id, maskable, schedule, generator)
    logits = model_logits(noisy, attention_mask)
    return diffusion_loss(logits, input_ids, masked, t, maskable, schedule)
