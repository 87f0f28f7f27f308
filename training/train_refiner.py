"""Train the native refiner: masked diffusion with span/filler and edit noise.

The objective and its weights are described in :mod:`training.refiner_noise`; the loop
(optimizer, budget, checkpoints, logging) in :mod:`training.loop`. This module joins them:
a :class:`RefinerTask` and :func:`train_refiner`, which ``remask train refiner`` calls.

Held-out figures, on fixed batches with fixed noise so they compare across steps:

- ``loss``: the diffusion ELBO alone (t ~ U(eps, 1), no span, filler or edit noise);
- ``masked_acc_0.15``: share of tokens masked at ratio 0.15 predicted exactly;
- ``edit_auc``: how well -log p(observed token) separates corrupted visible tokens from
  clean ones (0.5 is chance), with about 10% of the tokens corrupted and none masked.

The saved config's ``max_position_embeddings`` is the training ``seq_len``, the context the
model was trained on and the longest input it accepts. ``init_from`` starts the refiner
from a trained drafter's weights (:mod:`training.warm_start`).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from backends.tokens import SPECIAL_TOKENS, special_ids
from refiner.model import PRESETS, Preset, RefinerModel, refiner_config
from refiner.schedule import apply_noise, diffusion_loss, sample_times
from training.data import copy_tokenizer, load_training_data, step_generator, unigram_counts
from training.loop import Forward, LoopConfig, TrainResult, run_training, save_model
from training.model_card import write_card
from training.refiner_noise import (
    RefinerObjective,
    corrupt,
    loss_positions,
    noise_batch,
    refiner_loss,
)
from training.warm_start import init_record, refiner_from_drafter

EVAL_SEED = 1234  # held-out noise is the same at every evaluation and in every run
EVAL_MASK_RATIO = 0.15
EVAL_EDIT_RATE_MAX = 0.2  # rate ~ U(0, 0.2): about 10% of the tokens corrupted
# what a preset fixes of a warm-started refiner (its vocabulary comes from the tokenizer)
PRESET_SHAPE: tuple[str, ...] = (
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
)


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

    def save_pretrained(self, directory: Path, dtype: str, max_shard_size: str) -> None:
        save_model(self.model, directory, dtype, max_shard_size)
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
    """A freshly initialised refiner of ``preset`` shape for ``tokenizer``'s vocabulary.

    Its ``max_position_embeddings`` is ``seq_len``: the context it is trained on.
    """
    if preset not in PRESETS:
        raise KeyError(f"unknown refiner preset {preset!r}; known: {sorted(PRESETS)}")
    if "max_position_embeddings" in overrides:
        raise ValueError("max_position_embeddings is the training --seq-len; set that instead")
    ids = special_ids(tokenizer)
    if ids.filler is None:
        raise ValueError("the tokenizer has no filler token; the refiner needs one")
    fields: dict[str, Any] = {
        "vocab_size": len(tokenizer), "mask_token_id": ids.mask, "filler_token_id": ids.filler,
        "pad_token_id": ids.pad, "eos_token_id": ids.eos, "max_position_embeddings": seq_len,
    }
    return RefinerModel(refiner_config(preset, **(fields | overrides)))


def warm_started_refiner(
    init_from: str | Path, tokenizer_dir: str | Path, preset: str | None, seq_len: int,
    **overrides: Any,
) -> tuple[RefinerModel, str]:
    """The refiner converted from the drafter in ``init_from``, and its preset's name.

    The shape is the drafter's: ``preset`` may name it (an error if it names another shape)
    or be ``None``, and the name is then that of the preset with this shape ("custom" if
    none has it).
    """
    if preset is not None and preset not in PRESETS:
        raise KeyError(f"unknown refiner preset {preset!r}; known: {sorted(PRESETS)}")
    if "max_position_embeddings" in overrides:
        raise ValueError("max_position_embeddings is the training --seq-len; set that instead")
    model = refiner_from_drafter(init_from, tokenizer_dir, max_position_embeddings=seq_len,
                                 **overrides)
    shape = {k: getattr(model.config, k) for k in PRESET_SHAPE}

    def same(p: Preset) -> bool:
        return all(getattr(p, k) == v for k, v in shape.items())

    if preset is not None:
        if not same(PRESETS[preset]):
            differs = sorted(k for k, v in shape.items() if getattr(PRESETS[preset], k) != v)
            raise ValueError(
                f"--preset {preset} disagrees with the drafter in {init_from} (differs in "
                f"{differs}); a warm-started refiner takes the drafter's shape: leave "
                "--preset out"
            )
        return model, preset
    return model, next((name for name, p in PRESETS.items() if same(p)), "custom")


def train_refiner(
    corpus_dir: str | Path,
    tokenizer_dir: str | Path,
    preset: str | None,
    loop: LoopConfig,
    objective: RefinerObjective | None = None,
    command: str | None = None,
    init_from: str | Path | None = None,
    **model_overrides: Any,
) -> TrainResult:
    """Train a refiner of ``preset`` shape on the corpus; save it to ``loop.out_dir``.

    ``preset`` ``None`` means "default", or with ``init_from`` the shape of the drafter
    saved there, whose weights then start the run (:func:`warm_started_refiner`).
    ``AutoModelForMaskedLM.from_pretrained(loop.out_dir, dtype=torch.float32)`` loads the
    result (with ``refiner.model`` imported, which registers the model type).
    """
    loop.validate()
    objective = objective or RefinerObjective()
    data = load_training_data(corpus_dir, tokenizer_dir, loop.seq_len, loop.batch_size,
                              loop.seed, loop.eval_batches)
    torch.manual_seed(loop.seed)  # the initial weights are a function of the seed
    if init_from is not None:
        model, preset = warm_started_refiner(init_from, tokenizer_dir, preset, loop.seq_len,
                                             **model_overrides)
    else:
        preset = preset or "default"
        model = build_refiner(preset, data.tokenizer, loop.seq_len, **model_overrides)
    vocab = data.tokenizer.get_vocab()
    unigram = torch.from_numpy(unigram_counts(data.train.stream, model.config.vocab_size))
    task = RefinerTask(model, objective, unigram, tokenizer_dir, loop.seed, preset)
    task.mark_special([vocab[t] for t in SPECIAL_TOKENS if t in vocab])
    extra = {"data": data.info, "command": command,
             "init_from": init_record(init_from) if init_from is not None else None}
    result = run_training(task, data.train, data.held_out, loop, extra_info=extra,
                          more_held_out={"pkg": data.held_out_packages})
    write_card(result.out_dir)  # README.md + loss_curve.svg, unless a hand-written card exists
    return result
