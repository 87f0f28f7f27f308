"""Train the native refiner: masked diffusion with span/filler and edit noise.

The objective and its weights are described in :mod:`training.refiner_noise`; the loop
(optimizer, budget, checkpoints, logging) in :mod:`training.loop`. This module joins them:
a :class:`RefinerTask` and :func:`train_refiner`, which ``remask train refiner`` calls.

Held-out figures, on fixed batches with fixed noise so they compare across steps:

- ``loss``: the diffusion ELBO alone (t ~ U(eps, 1), no span, filler or edit noise);
- ``masked_acc_0.15``: share of tokens masked at ratio 0.15 predicted exactly;
- ``edit_auc``: how well -log p(observed token) separates corrupted visible tokens from
  clean ones (0.5 is chance), with about 10% of the tokens corrupted and none masked.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from refiner.model import PRESETS, RefinerModel, refiner_config
from refiner.schedule import apply_noise, diffusion_loss, sample_times
from refiner.tokens import SPECIAL_TOKENS, special_ids
from training.data import copy_tokenizer, load_training_data, step_generator, unigram_counts
from training.loop import Forward, LoopConfig, TrainResult, run_training
from training.model_card import write_card
from training.refiner_noise import (
    RefinerObjective,
    corrupt,
    loss_positions,
    noise_batch,
    refiner_loss,
)

EVAL_SEED = 1234  # held-out noise is the same at every evaluation and in every run
EVAL_MASK_RATIO = 0.15
EVAL_EDIT_RATE_MAX = 0.2  # rate ~ U(0, 0.2): about 10% of the tokens corrupted
def auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``labels`` (Mann-Whitney U)."""
    n_pos = int(labels.sum())
    n_neg = labels.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = torch.empty_like(scores, dtype=torch.float64)
    ranks[scores.argsort()] = torch.arange(1, scores.numel() + 1, dtype=torch.float64)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class RefinerTask:
    """The refiner's side of the training loop."""

    name = "refiner"

    def __init__(
        self,
        model: RefinerModel,
        objective: RefinerObjective,
        unigram: torch.Tensor,
        tokenizer_dir: str | Path,
        seed: int,
        preset: str,
    ) -> None:
        cfg = model.config
        if cfg.mask_token_id is None or cfg.filler_token_id is None:
            raise ValueError("the refiner config needs mask_token_id and filler_token_id")
        self.model = model
        self.objective = objective
        self.mask_id: int = cfg.mask_token_id
        self.filler_id: int = cfg.filler_token_id
        self.special = torch.zeros(cfg.vocab_size, dtype=torch.bool)  # (V,)
        for tid in (cfg.mask_token_id, cfg.filler_token_id, cfg.pad_token_id, cfg.eos_token_id):
            if tid is not None:
                self.special[tid] = True
        self.unigram = unigram
        self.tokenizer_dir = tokenizer_dir
        self.seed = seed
        self.preset = preset

    def mark_special(self, ids: list[int]) -> None:
        """Never corrupt these ids and never draw them as replacements (FIM sentinels)."""
        for tid in ids:
            self.special[tid] = True

    def train_loss(
        self, forward: Forward, batch: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        gen = step_generator(self.seed, step)
        noised = noise_batch(batch, self.objective, self.mask_id, self.filler_id,
                             self.special, self.unigram, gen)
        positions = loss_positions(noised, self.objective, gen)
        logits = forward(noised.input_ids, logits_at=positions.keep)  # (N, V)
        result = refiner_loss(logits, noised, self.objective, positions)
        return result.loss, result.figures

    def eval_metrics(self, forward: Forward, batch: torch.Tensor, index: int) -> dict[str, float]:
        gen = step_generator(EVAL_SEED, index)
        b = batch.shape[0]
        # the ELBO alone: comparable with any masked-diffusion model on the same tokens
        t = sample_times(b, self.objective.eps, gen)
        noisy, masked = apply_noise(batch, t, self.mask_id, generator=gen)
        logits = forward(noisy)
        elbo = diffusion_loss(logits, batch.to(logits.device), masked.to(logits.device),
                              t.to(logits.device))
        # exact-match accuracy at a fixed, light mask ratio
        noisy, masked = apply_noise(batch, torch.full((b,), EVAL_MASK_RATIO), self.mask_id,
                                    generator=gen)
        pred = forward(noisy).argmax(-1).cpu()
        acc = float((pred[masked] == batch[masked]).float().mean()) if masked.any() else 0.0
        # edit detection: corrupt visible tokens, score each by -log p(observed)
        corruptible = ~self.special[batch]
        rate = replace(self.objective, edit_rate_max=EVAL_EDIT_RATE_MAX)
        observed, corrupted = corrupt(batch, corruptible, rate, (~self.special).float(),
                                      self.unigram.float().masked_fill(self.special, 0.0), gen)
        logits = forward(observed)
        logp = torch.log_softmax(logits.float(), -1)  # (B, L, V)
        seen = observed.to(logits.device)[..., None]  # (B, L, 1)
        surprise = -logp.gather(-1, seen)[..., 0].cpu()  # (B, L)
        return {"loss": float(elbo.loss), f"masked_acc_{EVAL_MASK_RATIO}": acc,
                "edit_auc": auc(surprise[corruptible], corrupted[corruptible])}

    def save_pretrained(self, directory: Path) -> None:
        self.model.save_pretrained(directory, safe_serialization=True)
        copy_tokenizer(self.tokenizer_dir, directory)

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "max_position_embeddings", "rope_theta",
                "tie_word_embeddings", "mask_token_id", "filler_token_id", "pad_token_id",
                "eos_token_id")
        return {
            "preset": self.preset,
            "model_config": {k: getattr(cfg, k) for k in keys},
            "objective": asdict(self.objective),
        }


def build_refiner(preset: str, tokenizer: Any, seq_len: int, **overrides: Any) -> RefinerModel:
    """A freshly initialised refiner of ``preset`` shape for ``tokenizer``'s vocabulary."""
    if preset not in PRESETS:
        raise KeyError(f"unknown refiner preset {preset!r}; known: {sorted(PRESETS)}")
    ids = special_ids(tokenizer)
    if ids.filler is None:
        raise ValueError("the tokenizer has no filler token; the refiner needs one")
    fields: dict[str, Any] = {
        "vocab_size": len(tokenizer), "mask_token_id": ids.mask, "filler_token_id": ids.filler,
        "pad_token_id": ids.pad, "eos_token_id": ids.eos,
    }
    config = refiner_config(preset, **(fields | overrides))
    if seq_len > config.max_position_embeddings:
        raise ValueError(
            f"--seq-len {seq_len} exceeds the {preset!r} preset's max_position_embeddings "
            f"({config.max_position_embeddings})"
        )
    return RefinerModel(config)


def train_refiner(
    corpus_dir: str | Path,
    tokenizer_dir: str | Path,
    preset: str,
    loop: LoopConfig,
    objective: RefinerObjective | None = None,
    command: str | None = None,
    **model_overrides: Any,
) -> TrainResult:
    """Train a refiner of ``preset`` shape on the corpus; save it to ``loop.out_dir``.

    ``AutoModelForMaskedLM.from_pretrained(loop.out_dir)`` loads the result (with
    ``refiner.model`` imported, which registers the model type).
    """
    loop.validate()
    objective = objective or RefinerObjective()
    data = load_training_data(corpus_dir, tokenizer_dir, loop.seq_len, loop.batch_size,
                              loop.seed, loop.eval_batches)
    torch.manual_seed(loop.seed)  # the initial weights are a function of the seed
    model = build_refiner(preset, data.tokenizer, loop.seq_len, **model_overrides)
    vocab = data.tokenizer.get_vocab()
    unigram = torch.from_numpy(unigram_counts(data.train.stream, model.config.vocab_size))
    task = RefinerTask(model, objective, unigram, tokenizer_dir, loop.seed, preset)
    task.mark_special([vocab[t] for t in SPECIAL_TOKENS if t in vocab])
    extra = {"data": data.info, "command": command}
    result = run_training(task, data.train, data.held_out, loop, extra_info=extra)
    write_card(result.out_dir)  # README.md + loss_curve.svg, unless a hand-written card exists
    return result
