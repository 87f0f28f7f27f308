"""Default-model quality on held-out text: drafter loss/perplexity; refiner ELBO, masked-token
accuracy at three mask ratios, and how well its confidence finds corrupted tokens (AUC).

Two held-out sets, each on code and on prose:

- ``held_out`` (the top-level figures, comparable with earlier runs): files of the standard
  library and documents held out file by file, siblings of the training files (the files
  of trained-on packages this split also holds are left out: they were not in it before);
- ``held_out_packages`` (the ``"packages"`` block): every file of a few whole installed
  packages no model was trained on, code written by other projects. Issue 12's targets
  are read from this block.

Each model is evaluated on windows of ``min(--seq-len, its trained context)`` tokens (the
context is the config's ``max_position_embeddings``: a model is never fed positions it
was not trained on); the output records the length used. The noise is seeded, so the
figures are the same on every run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

DEFAULT_CORPUS = Path("data/corpus")
RATIOS = (0.15, 0.5, 0.9)
SEED = 1234
KINDS = ("code", "prose")
DEFAULT_SEQ_LEN = 512  # issue 12's training window; capped at each model's trained context
CHUNK_TOKENS = 4096  # tokens per forward pass: (B, L, V) float32 logits stay near 130 MB at V=8k
HELD_OUT = "held_out"
HELD_OUT_PACKAGES = "held_out_packages"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--refiner", type=Path, default=Path("models/refiner"))
    p.add_argument("--drafter", type=Path, default=Path("models/drafter"))
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--seq-len", type=int, default=DEFAULT_SEQ_LEN,
                   help="tokens per evaluation window, capped at each model's trained context "
                   "(config max_position_embeddings); figures before issue 12 used 128")
    p.add_argument("--windows", type=int, default=128, help="evaluation windows per kind of text")


def trained_context(config: Any) -> int | None:
    """The longest input the model was trained on (``max_position_embeddings``), if stated."""
    for name in ("max_position_embeddings", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _training_info(path: Path) -> dict[str, Any]:
    """The model's ``training.json`` ({} when it has none: a model trained elsewhere)."""
    try:
        info = json.loads((path / "training.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def trained_on(path: Path) -> str | None:
    """The device type that trained the model ("cpu", "cuda", ...), from ``training.json``."""
    device = _training_info(path).get("hardware", {}).get("device")
    return str(device).split(":")[0] if device else None


def _trained_seq_len(path: Path) -> int | None:
    """The window length of the training run, from ``training.json`` when it records one.

    Models trained before issue 12 state a context of 1024 in their config but saw 128-token
    windows; this figure lets a reader see that.
    """
    value = _training_info(path).get("loop", {}).get("seq_len")
    return value if isinstance(value, int) else None


def _model_header(path: Path, config: Any, seq_len: int, n: int) -> tuple[dict[str, Any], int]:
    """The figures every model reports first, and the window length it is evaluated at."""
    context = trained_context(config)
    used = min(seq_len, context) if context else seq_len
    out: dict[str, Any] = {"model": str(path), "trained_on": trained_on(path), "context": context}
    trained = _trained_seq_len(path)
    if trained is not None:
        out["trained_seq_len"] = trained
    out |= {"seq_len": used, "windows": n}
    return out, used


def has_split(corpus: Path, split: str, kind: str | None = None) -> bool:
    """Whether the corpus has ``split`` with at least one document (of ``kind``)."""
    from training.corpus import iter_documents

    if not (corpus / f"{split}.jsonl").is_file():
        return False
    return next(iter_documents(corpus, split, kind), None) is not None


def _ensure_corpus(corpus: Path) -> None:
    from training.corpus import build_corpus

    if not (corpus / "manifest.json").exists():
        print(f"bench: building the corpus in {corpus} (first run)", file=sys.stderr)
        build_corpus(corpus)


def _stream(corpus: Path, tokenizer_dir: Path, split: str, kind: str,
            outside_packages: bool) -> np.ndarray | None:
    """The (N,) token stream of a split and kind: documents joined by EOS, as in training.

    A whole split comes from the corpus's token cache (a second run reads it instead of
    tokenising again); ``outside_packages`` keeps the documents of no package, tokenised here
    (a few hundred KB). None when no document matches.
    """
    from training.corpus import iter_documents
    from training.data import token_stream, tokenize_documents
    from training.tokenizer import load_tokenizer

    if not has_split(corpus, split, kind):
        return None
    if not outside_packages:
        return token_stream(corpus, tokenizer_dir, split, kind)
    texts = [d.text for d in iter_documents(corpus, split, kind) if not d.package]
    return tokenize_documents(texts, load_tokenizer(tokenizer_dir)) if texts else None


def windows(corpus: Path, tokenizer_dir: Path, split: str, kind: str, seq_len: int, n: int,
            outside_packages: bool = False) -> torch.Tensor | None:
    """``n`` windows (n, seq_len) spread evenly over the token stream of one split and kind;
    None when it has no documents of the kind or fewer tokens than one window."""
    stream = _stream(corpus, tokenizer_dir, split, kind, outside_packages)
    if stream is None or len(stream) < seq_len:
        return None
    starts = np.linspace(0, len(stream) - seq_len, num=n).astype(np.int64)
    rows = np.stack([np.asarray(stream[s : s + seq_len]) for s in starts.tolist()])
    return torch.from_numpy(rows.astype(np.int64))


def _chunks(n: int, seq_len: int) -> list[slice]:
    size = max(1, CHUNK_TOKENS // seq_len)
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _refiner_split(pred: Any, batch: torch.Tensor, special: torch.Tensor) -> dict[str, Any]:
    """ELBO, masked-token accuracy and detection AUC of one (n, L) batch of windows.

    The noise is drawn for the whole batch first and the logits computed a chunk at a time,
    so the figures do not depend on the chunk size.
    """
    from refiner.schedule import apply_noise, diffusion_loss, sample_times
    from training.refiner_noise import RefinerObjective, corrupt
    from training.train_refiner import auc

    gen = torch.Generator().manual_seed(SEED)
    parts = _chunks(batch.shape[0], batch.shape[1])

    def logits(x: torch.Tensor, part: slice) -> torch.Tensor:
        return pred(x[part], torch.ones_like(x[part])).float()  # (b, L, V)

    losses = []
    for _ in range(4):  # the ELBO estimate, averaged over a few draws of t
        t = sample_times(batch.shape[0], 1e-3, gen)
        noisy, masked = apply_noise(batch, t, pred.mask_token_id, generator=gen)
        # diffusion_loss divides by the chunk's token count: weight each chunk by it
        total = sum(float(diffusion_loss(logits(noisy, s), batch[s], masked[s], t[s]).loss)
                    * batch[s].numel() for s in parts)
        losses.append(total / batch.numel())
    acc = {}
    for r in RATIOS:
        t = torch.full((batch.shape[0],), r)
        noisy, masked = apply_noise(batch, t, pred.mask_token_id, generator=gen)
        guess = torch.cat([logits(noisy, s).argmax(-1) for s in parts])
        acc[str(r)] = round(float((guess[masked] == batch[masked]).float().mean()), 4)
    corruptible = ~special[batch]
    weights = (~special).float()
    observed, corrupted = corrupt(batch, corruptible, RefinerObjective(edit_rate_max=0.2),
                                  weights, weights, gen)
    surprise = torch.cat([
        -torch.log_softmax(logits(observed, s), -1).gather(-1, observed[s][..., None])[..., 0]
        for s in parts
    ])  # (n, L): how unlikely the refiner finds each observed token
    return {"held_out_loss": round(sum(losses) / len(losses), 4), "masked_token_accuracy": acc,
            "edit_noise_detection_auc": round(auc(surprise[corruptible], corrupted[corruptible]), 4)}


def _drafter_loss(model: Any, batch: torch.Tensor) -> float:
    """Mean next-token loss over one (n, L) batch of windows (unrounded)."""
    total = 0.0
    for s in _chunks(batch.shape[0], batch.shape[1]):
        x = batch[s]
        logits = model(input_ids=x).logits.float()  # (b, L, V)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), x[:, 1:],
                                                 reduction="sum")
        total += float(loss)
    return total / (batch.shape[0] * (batch.shape[1] - 1))


def _loss_figures(loss: float) -> dict[str, float]:
    return {"held_out_loss": round(loss, 4), "perplexity": round(math.exp(loss), 2)}


def _by_split(path: Path, corpus: Path, seq_len: int, n: int,
              figures: Callable[[torch.Tensor], Any]) -> dict[str, dict[str, Any]]:
    """``{split: {kind: figures}}`` for both held-out splits; kinds without text are absent.

    ``held_out`` is read without its files of packages that were trained on (the corpus holds
    out a share of their files too): what remains is the set held out before packages joined
    the corpus, so its figures compare with earlier runs.
    """
    _ensure_corpus(corpus)
    out: dict[str, dict[str, Any]] = {}
    for split in (HELD_OUT, HELD_OUT_PACKAGES):
        out[split] = {}
        for kind in KINDS:
            batch = windows(corpus, path, split, kind, seq_len, n, outside_packages=split == HELD_OUT)
            if batch is not None:
                out[split][kind] = figures(batch)
    if not out[HELD_OUT_PACKAGES]:
        print(f"bench models: {corpus} has no {HELD_OUT_PACKAGES} split (a corpus built before "
              "issue 12?); no 'packages' figures", file=sys.stderr)
    return out


@torch.inference_mode()
def refiner_figures(path: Path, corpus: Path, seq_len: int, n: int) -> dict[str, Any]:
    """The refiner's figures; ``seq_len`` is capped at its trained context."""
    from refiner.predictor import load_predictor

    pred, tok = load_predictor(path, dtype=torch.float32)  # bf16 weights are cast on load
    config: Any = pred.model.config
    out, used = _model_header(path, config, seq_len, n)
    special = torch.zeros(int(config.vocab_size), dtype=torch.bool)
    special[[i for i in tok.all_special_ids if i < special.numel()]] = True
    splits = _by_split(path, corpus, used, n, lambda batch: _refiner_split(pred, batch, special))

    def block(kinds: dict[str, Any]) -> dict[str, Any]:
        # the headline figures: code
        top = {key: kinds["code"][key] for key in
               ("held_out_loss", "masked_token_accuracy", "edit_noise_detection_auc")}
        return kinds | top

    if "code" not in splits[HELD_OUT]:
        raise ValueError(f"the {HELD_OUT} split of {corpus} has no code to evaluate the refiner on")
    out |= block(splits[HELD_OUT])
    if "code" in splits[HELD_OUT_PACKAGES]:
        out["packages"] = block(splits[HELD_OUT_PACKAGES])
    return out


@torch.inference_mode()
def drafter_figures(path: Path, corpus: Path, seq_len: int, n: int) -> dict[str, Any]:
    """The drafter's figures; ``seq_len`` is capped at its trained context."""
    from drafter import Drafter

    d = Drafter.from_pretrained(path, dtype=torch.float32)  # bf16 weights are cast on load
    out, used = _model_header(path, d.model.config, seq_len, n)
    splits = _by_split(path, corpus, used, n, lambda batch: _drafter_loss(d.model, batch))

    def block(losses: dict[str, float]) -> dict[str, Any]:
        # the mean loss over the kinds of text present, as the figures before issue 12
        mean = sum(losses.values()) / len(losses)
        return {kind: _loss_figures(loss) for kind, loss in losses.items()} | _loss_figures(mean)

    if not splits[HELD_OUT]:
        raise ValueError(f"the {HELD_OUT} split of {corpus} has no text to evaluate the drafter on")
    out |= block(splits[HELD_OUT])
    if splits[HELD_OUT_PACKAGES]:
        out["packages"] = block(splits[HELD_OUT_PACKAGES])
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.seq_len < 2:
        raise ValueError(f"--seq-len must be at least 2 tokens, got {args.seq_len}")
    if args.windows < 1:
        raise ValueError(f"--windows must be at least 1, got {args.windows}")
    torch.manual_seed(SEED)
    out: dict[str, Any] = {}
    for name, fn, path in (("drafter", drafter_figures, args.drafter),
                           ("refiner", refiner_figures, args.refiner)):
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no {name} model at {str(path)!r}; train it with `remask train {name}`")
        out[name] = fn(path, args.corpus, args.seq_len, args.windows)
    return out
