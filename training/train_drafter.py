"""Train the default drafter: a small Llama causal LM with fill-in-the-middle augmentation.

The drafter is a plain transformers ``LlamaForCausalLM`` (tied embeddings), so everything
that loads a causal LM loads it: ``AutoModelForCausalLM.from_pretrained(out_dir)``. Shapes
are named presets (:data:`DRAFTER_PRESETS`); the vocabulary and the special-token ids come
from the tokenizer. It trains on the same packed windows as the refiner, a share of whose
document pieces are rearranged for FIM (:mod:`training.fim`).

Held-out figures (fixed batches): ``loss``, the next-token cross-entropy on plain text, the
figure perplexity is computed from; ``fim_loss``, the cross-entropy of the middle tokens
(and the EOS that ends them) of FIM-rearranged held-out windows.

The saved config's ``max_position_embeddings`` is the training ``seq_len``: the context the
drafter was trained on, which inference enforces (rotary positions would run past it, on
positions the model never saw).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from backends.tokens import EOS, PAD
from training.checkpoint import check_saved_weights
from training.data import copy_tokenizer, load_training_data, step_seed
from training.fim import IGNORE, FimIds, FimSpec, fim_batch
from training.loop import Forward, LoopConfig, TrainResult, run_training, save_model
from training.model_card import write_card
from training.warm_start import init_record

EVAL_SEED = 4321


@dataclass(frozen=True)
class DrafterPreset:
    """A named drafter shape; vocabulary and token ids come from the tokenizer."""

    hidden_size: int
    intermediate_size: int  # SwiGLU: ~8/3 of hidden keeps MLP FLOPs near a 4x GELU MLP
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int  # = heads: at this size grouped-query attention saves nothing
    max_position_embeddings: int  # default only: training sets it to its seq_len


DRAFTER_PRESETS: dict[str, DrafterPreset] = {
    # tests: milliseconds per step
    "tiny": DrafterPreset(32, 64, 2, 4, 4, 512),
    # shipped default: the refiner's shape, ~7M parameters with an 8k vocabulary (~28 MB)
    "default": DrafterPreset(256, 688, 6, 4, 4, 1024),
    # the refiner's "cpu" shape: ~3.3M parameters, what an hour of 2-core CPU can train
    "cpu": DrafterPreset(192, 512, 4, 3, 3, 1024),
    # the GPU recipe: ~8.4M parameters, under 20 MB in bfloat16; the refiner's "gpu" shape,
    # so this drafter can warm-start it (training.warm_start)
    "gpu": DrafterPreset(256, 688, 8, 4, 4, 512),
}


def drafter_config(name: str, tokenizer: Any, **overrides: Any) -> LlamaConfig:
    """A ``LlamaConfig`` of preset ``name`` for ``tokenizer`` (tied embeddings)."""
    if name not in DRAFTER_PRESETS:
        raise KeyError(f"unknown drafter preset {name!r}; known: {sorted(DRAFTER_PRESETS)}")
    vocab: dict[str, int] = tokenizer.get_vocab()
    eos, pad = vocab.get(EOS), vocab.get(PAD)
    if eos is None:
        raise ValueError(f"the tokenizer has no {EOS} token; the drafter needs one")
    fields: dict[str, Any] = asdict(DRAFTER_PRESETS[name]) | {
        "vocab_size": len(tokenizer),
        "tie_word_embeddings": True,  # halves the embedding parameters: < 40 MB on disk
        "eos_token_id": eos,
        "bos_token_id": eos,  # no BOS token: documents follow an EOS, as in the packed data
        "pad_token_id": pad,
        "rms_norm_eps": 1e-5,
    }
    return LlamaConfig(**(fields | overrides))


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy. logits: (B, L, V); labels: (B, L), -100 ignored."""
    return F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]),  # (B*(L-1), V)
        labels[:, 1:].reshape(-1).to(logits.device),
        ignore_index=IGNORE,
    )


def middle_labels(ids: torch.Tensor, fim: FimIds) -> torch.Tensor:
    """Labels of only the tokens after each ``<|fim_middle|>`` up to its EOS; -100 elsewhere."""
    labels = torch.full_like(ids, IGNORE)
    for r, row in enumerate(ids.tolist()):
        inside = False
        for i, tid in enumerate(row):
            if inside:
                labels[r, i] = tid
                inside = tid != fim.eos
            elif tid == fim.middle:
                inside = True
    return labels


class DrafterTask:
    """The drafter's side of the training loop."""

    name = "drafter"

    def __init__(
        self, model: LlamaForCausalLM, tokenizer: Any, fim: FimSpec,
        tokenizer_dir: str | Path, seed: int, preset: str,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.fim = fim
        self.ids = FimIds.from_tokenizer(tokenizer)
        self.tokenizer_dir = tokenizer_dir
        self.seed = seed
        self.preset = preset

    def _rng(self, seed: int, index: int) -> np.random.Generator:
        return np.random.default_rng(step_seed(seed, index, salt=1))

    def train_loss(
        self, forward: Forward, batch: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        ids, labels = fim_batch(batch, self.tokenizer, self.ids, self.fim, self._rng(self.seed, step))
        loss = causal_lm_loss(forward(ids), labels)
        return loss, {"padding": float((labels == IGNORE).float().mean())}

    def eval_metrics(self, forward: Forward, batch: torch.Tensor, index: int) -> dict[str, float]:
        plain = causal_lm_loss(forward(batch), batch)
        every_piece = FimSpec(rate=1.0, spm_share=self.fim.spm_share, min_chars=self.fim.min_chars,
                              margin=self.fim.margin)
        ids, _ = fim_batch(batch, self.tokenizer, self.ids, every_piece,
                           self._rng(EVAL_SEED, index))
        mid = middle_labels(ids, self.ids)
        fim = causal_lm_loss(forward(ids), mid) if bool((mid != IGNORE).any()) else plain
        return {"loss": float(plain), "fim_loss": float(fim)}

    def save_pretrained(self, directory: Path, dtype: str, max_shard_size: str) -> None:
        save_model(self.model, directory, dtype, max_shard_size)
        copy_tokenizer(self.tokenizer_dir, directory)

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        keys = ("vocab_size", *DrafterPreset.__dataclass_fields__, "tie_word_embeddings",
                "eos_token_id", "bos_token_id", "pad_token_id")
        return {
            "preset": self.preset,
            "model_config": {k: getattr(cfg, k) for k in keys},
            "fim": {**asdict(self.fim), "orders": {
                "psm": "<|fim_prefix|> prefix <|fim_suffix|> suffix <|fim_middle|> middle "
                       "<|endoftext|>",
                "spm": "<|fim_prefix|> <|fim_suffix|> suffix <|fim_middle|> prefix middle "
                       "<|endoftext|>",
                "level": "characters of a document piece, each part tokenised on its own",
            }},
        }


def continued_drafter(
    init_from: str | Path, config: LlamaConfig, tokenizer_dir: str | Path
) -> LlamaForCausalLM:
    """The drafter saved in ``init_from``, to train further as a drafter of ``config``'s shape.

    Continued pre-training: an earlier run's weights (say, trained on shorter windows or
    another corpus) start the new run instead of random ones. The shape and the tokenizer
    must be the same; the context (``max_position_embeddings``) becomes the new one, which
    rotary positions allow. Raises ``ValueError`` naming what differs.
    """
    from training.data import tokenizer_hash

    root = Path(init_from)
    if not (root / "config.json").is_file():
        raise FileNotFoundError(f"--init-from: no drafter (config.json) in {root}")
    if tokenizer_hash(root) != tokenizer_hash(tokenizer_dir):
        raise ValueError(
            f"--init-from: the drafter in {root} was trained with another tokenizer than "
            f"{tokenizer_dir}; its token ids would mean other strings"
        )
    check_saved_weights(root)  # names a missing, cut-short or unreadable weight file
    try:
        model = LlamaForCausalLM.from_pretrained(root, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ValueError(f"--init-from: cannot load the drafter in {root}: {exc}") from exc
    shape = (*DrafterPreset.__dataclass_fields__, "vocab_size")
    differs = sorted(k for k in shape if k != "max_position_embeddings"
                     and getattr(model.config, k) != getattr(config, k))
    if differs:
        raise ValueError(
            f"--init-from: the drafter in {root} has another shape than the preset "
            f"(differs in {differs}); pick the preset it was trained with"
        )
    model.config.max_position_embeddings = config.max_position_embeddings
    return model


def train_drafter(
    corpus_dir: str | Path,
    tokenizer_dir: str | Path,
    preset: str,
    loop: LoopConfig,
    fim: FimSpec | None = None,
    command: str | None = None,
    init_from: str | Path | None = None,
    **model_overrides: Any,
) -> TrainResult:
    """Train a drafter of ``preset`` shape on the corpus; save it to ``loop.out_dir``.

    ``init_from``: start from the weights of a drafter saved there (same shape and
    tokenizer) instead of random ones; see :func:`continued_drafter`.
    """
    loop.validate()
    data = load_training_data(corpus_dir, tokenizer_dir, loop.seq_len, loop.batch_size,
                              loop.seed, loop.eval_batches)
    if "max_position_embeddings" in model_overrides:
        raise ValueError("max_position_embeddings is the training --seq-len; set that instead")
    # the context the model is trained on is the context it claims: inference enforces it
    config = drafter_config(preset, data.tokenizer, max_position_embeddings=loop.seq_len,
                            **model_overrides)
    torch.manual_seed(loop.seed)
    if init_from is not None:
        model = continued_drafter(init_from, config, tokenizer_dir)
    else:
        model = LlamaForCausalLM(config)
    task = DrafterTask(model, data.tokenizer, fim or FimSpec(), tokenizer_dir, loop.seed, preset)
    extra = {"data": data.info, "command": command,
             "init_from": init_record(init_from) if init_from is not None else None}
    result = run_training(task, data.train, data.held_out, loop, extra_info=extra,
                          more_held_out={"pkg": data.held_out_packages})
    write_card(result.out_dir)  # README.md + loss_curve.svg, unless a hand-written card exists
    return result
