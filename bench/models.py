"""Default-model quality on held-out text: drafter loss/perplexity; refiner ELBO, masked-token
accuracy at three mask ratios, and how well its confidence finds corrupted tokens (AUC).

Accuracy is reported on held-out code (the target's subject) and on held-out prose; the
noise is seeded, so the figures are the same on every run.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

DEFAULT_CORPUS = Path("data/corpus")
RATIOS = (0.15, 0.5, 0.9)
SEED = 1234


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--refiner", type=Path, default=Path("models/refiner"))
    p.add_argument("--drafter", type=Path, default=Path("models/drafter"))
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--seq-len", type=int, default=128, help="tokens per evaluation window")
    p.add_argument("--windows", type=int, default=128, help="evaluation windows per kind of text")


def _windows(corpus: Path, tokenizer: Any, kind: str, seq_len: int, n: int) -> torch.Tensor:
    """``n`` windows of ``seq_len`` tokens spread evenly over the held-out documents of a kind."""
    from training.corpus import build_corpus, iter_documents

    if not (corpus / "manifest.json").exists():
        build_corpus(corpus)
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for doc in iter_documents(corpus, "held_out", kind=kind):
        stream += tokenizer(doc.text, add_special_tokens=False)["input_ids"] + [eos]
    arr = np.asarray(stream, dtype=np.int64)
    starts = np.linspace(0, len(arr) - seq_len, num=n).astype(np.int64)
    return torch.from_numpy(np.stack([arr[s : s + seq_len] for s in starts]))


@torch.inference_mode()
def refiner_figures(path: Path, corpus: Path, seq_len: int, n: int) -> dict[str, Any]:
    from refiner.predictor import load_predictor
    from refiner.schedule import apply_noise, diffusion_loss, sample_times
    from training.refiner_noise import RefinerObjective, corrupt
    from training.train_refiner import auc

    pred, tok = load_predictor(path)
    out: dict[str, Any] = {"model": str(path)}
    vocab = int(getattr(pred.model, "config").vocab_size)
    special = torch.zeros(vocab, dtype=torch.bool)
    special[[i for i in tok.all_special_ids if i < vocab]] = True
    for kind in ("code", "prose"):
        batch = _windows(corpus, tok, kind, seq_len, n)
        gen = torch.Generator().manual_seed(SEED)
        ones = torch.ones_like(batch)
        logits_fn = lambda x: pred(x, ones[: x.shape[0]])  # noqa: E731
        # the ELBO estimate, averaged over a few draws of t
        losses = []
        for _ in range(4):
            t = sample_times(batch.shape[0], 1e-3, gen)
            noisy, masked = apply_noise(batch, t, pred.mask_token_id, generator=gen)
            losses.append(float(diffusion_loss(logits_fn(noisy), batch, masked, t).loss))
        acc = {}
        for r in RATIOS:
            noisy, masked = apply_noise(batch, torch.full((batch.shape[0],), r), pred.mask_token_id, generator=gen)
            guess = logits_fn(noisy).argmax(-1)
            acc[str(r)] = round(float((guess[masked] == batch[masked]).float().mean()), 4)
        corruptible = ~special[batch]
        obj = RefinerObjective(edit_rate_max=0.2)
        weights = (~special).float()
        observed, corrupted = corrupt(batch, corruptible, obj, weights, weights, gen)
        logp = torch.log_softmax(logits_fn(observed), -1)
        surprise = -logp.gather(-1, observed[..., None])[..., 0]
        out[kind] = {"held_out_loss": round(sum(losses) / len(losses), 4), "masked_token_accuracy": acc,
                     "edit_noise_detection_auc": round(auc(surprise[corruptible], corrupted[corruptible]), 4)}
    # the top-level figures: held-out code
    out["held_out_loss"] = out["code"]["held_out_loss"]
    out["masked_token_accuracy"] = out["code"]["masked_token_accuracy"]
    out["edit_noise_detection_auc"] = out["code"]["edit_noise_detection_auc"]
    return out


@torch.inference_mode()
def drafter_figures(path: Path, corpus: Path, seq_len: int, n: int) -> dict[str, Any]:
    from drafter import Drafter

    d = Drafter.from_pretrained(path)
    out: dict[str, Any] = {"model": str(path)}
    total = 0.0
    for kind in ("code", "prose"):
        batch = _windows(corpus, d.tokenizer, kind, seq_len, n)
        logits = d.model(input_ids=batch).logits.float()
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), batch[:, 1:])
        out[kind] = {"held_out_loss": round(float(loss), 4), "perplexity": round(math.exp(float(loss)), 2)}
        total += float(loss)
    out["held_out_loss"] = round(total / 2, 4)
    out["perplexity"] = round(math.exp(total / 2), 2)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(SEED)
    out: dict[str, Any] = {}
    for name, fn, path in (("drafter", drafter_figures, args.drafter), ("refiner", refiner_figures, args.refiner)):
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no {name} model at {str(path)!r}; train it with `remask train {name}`")
        out[name] = fn(path, args.corpus, args.seq_len, args.windows)
    return out
