"""The training loop shared by the drafter and the refiner.

A trainer hands the loop a :class:`Task` (a model, a loss on one batch, held-out metrics,
a way to save the finished model) and the data; the loop owns everything else: AdamW with
warmup and cosine decay to ``min_lr_ratio`` of the peak, gradient clipping, a step or time
budget, a tqdm bar, periodic held-out evaluation, a JSON-lines log, atomic checkpoints and
exact resumption, bfloat16 autocast on CUDA (float32 on CPU) and optional ``torch.compile``
applied here, at the edge, so models never know about it.

Files in the output directory::

    checkpoint.pt     resume state: model, optimizer, step, tokens, elapsed time, RNG, data
                      position (written to a temporary file, then renamed over the old one)
    train_log.jsonl   one line per logged step: step, tokens, loss, held_out_loss, lr, elapsed
                      (and held_out_pkg_* when the corpus has whole held-out packages)
    training.json     parameters, hardware, wall time, steps, tokens, final losses, the
                      saved weights' dtype and file sizes
    .gitignore        keeps checkpoint.pt (optimizer state: 3x the model) out of git
    + the model and tokenizer files written by ``Task.save_pretrained``: safetensors in
      ``save_dtype`` (bfloat16 by default: half the bytes of the float32 being trained),
      sharded above ``max_shard_size``
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from training import files
from training.checkpoint import (
    CHECKPOINT_FILE,
    SAVE_DTYPES,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
    weight_file_names,
)
from training.data import PackedBatches, held_out_batches
from training.hardware import describe_hardware, pick_device

LOG_FILE = "train_log.jsonl"
INFO_FILE = "training.json"

# ids (B, L) on the CPU -> logits (B, L, V) on the training device; a model that supports it
# takes ``logits_at=`` (B, L) bool and returns only those positions' logits, (N, V)
Forward = Callable[..., torch.Tensor]


class Task(Protocol):
    """What a trainer plugs into the loop."""

    name: str  # "drafter" | "refiner": recorded in checkpoints, checked on resume

    @property
    def model(self) -> nn.Module:
        """The model being trained (never compiled: the loop compiles at the edge)."""
        ...

    def train_loss(
        self, forward: Forward, batch: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Differentiable loss of one (B, L) batch at ``step``, and figures to log."""
        ...

    def eval_metrics(self, forward: Forward, batch: torch.Tensor, index: int) -> dict[str, float]:
        """Held-out figures of one fixed batch; must include ``"loss"``."""
        ...

    def save_pretrained(self, directory: Path, dtype: str, max_shard_size: str) -> None:
        """Write the model (see :func:`save_model`) and its tokenizer into ``directory``."""
        ...

    def describe(self) -> dict[str, Any]:
        """Model config, objective settings and the like, for ``training.json``."""
        ...


@dataclass
class LoopConfig:
    """Settings of one training run; all of them land in ``training.json``."""

    out_dir: Path
    seed: int = 0
    max_steps: int | None = None  # a step budget ...
    time_budget: float | None = None  # ... or seconds of wall time (both: whichever ends first)
    batch_size: int = 16
    seq_len: int = 512  # also the saved max_position_embeddings: the context inference allows
    lr: float = 2e-3  # small models tolerate (and need, on a short budget) a high peak
    min_lr_ratio: float = 0.1  # cosine decays to this share of the peak, not to zero
    warmup_steps: int = 50
    weight_decay: float = 0.1  # on matrices and embeddings only, never on norms
    betas: tuple[float, float] = (0.9, 0.95)  # beta2 < 0.999: steadier with few, large steps
    grad_clip: float = 1.0
    eval_every: int = 100  # steps between held-out evaluations (and a final one)
    eval_batches: int = 4
    checkpoint_every: int = 100  # steps between checkpoints (and a final one)
    log_every: int = 10
    compile: bool = False
    device: str = "auto"  # "auto": cuda when available, else cpu
    threads: int | None = None  # torch intra-op threads on CPU; None: torch's default
    resume: bool = False
    progress: bool = True  # the tqdm bar (stderr)
    save_dtype: str = "bfloat16"  # of the saved weights only; training runs in float32
    max_shard_size: str = "15MB"  # larger weights are split into shards (forges' file limits)

    def validate(self) -> None:
        """Raise ``ValueError`` for a budget or setting that cannot train."""
        if self.max_steps is None and self.time_budget is None:
            raise ValueError("give a budget: --time-budget SECONDS or --max-steps N")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ValueError(f"--max-steps must be positive, got {self.max_steps}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ValueError(f"--time-budget must be positive seconds, got {self.time_budget}")
        for name in ("batch_size", "seq_len", "eval_every", "eval_batches",
                     "checkpoint_every", "log_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.save_dtype not in SAVE_DTYPES:
            raise ValueError(
                f"--save-dtype must be one of {sorted(SAVE_DTYPES)}, got {self.save_dtype!r}"
            )

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d


@dataclass
class TrainResult:
    """What a run did; the same figures as ``training.json``."""

    info: dict[str, Any]
    out_dir: Path


def learning_rate(cfg: LoopConfig, step: int, progress: float) -> float:
    """Linear warmup over ``warmup_steps``, then cosine from the peak to ``min_lr_ratio``.

    ``progress`` in [0, 1] is the share of the budget spent (steps or seconds), so a time
    budget gets a full cosine even though its step count is unknown in advance.
    """
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    p = min(max(progress, 0.0), 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * p))
    return cfg.lr * warm * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine)


def budget_progress(cfg: LoopConfig, step: int, elapsed: float) -> float:
    """Share of the budget spent: the larger of the step share and the time share."""
    shares = [0.0]
    if cfg.max_steps:
        shares.append(step / cfg.max_steps)
    if cfg.time_budget:
        shares.append(elapsed / cfg.time_budget)
    return max(shares)


def make_optimizer(model: nn.Module, cfg: LoopConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on tensors of rank >= 2 (matrices, embeddings) only."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # the fused kernel: one launch for all parameters on CUDA; the CPU keeps the default
    fused = bool(params) and params[0].device.type == "cuda"
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=fused or None)


def make_forward(module: nn.Module, device: torch.device) -> Forward:
    """Wrap a (possibly compiled) model as ids -> logits on ``device``.

    bfloat16 autocast on CUDA: tensor cores, no loss scaling needed. On CPU float32: these
    CPUs lack bfloat16 arithmetic and emulating it is slower than float32.
    """
    amp = device.type == "cuda"

    def forward(ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        ids = ids.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = module(input_ids=ids, **kwargs)
        return out.logits  # type: ignore[no-any-return]

    return forward


def save_model(model: nn.Module, directory: Path, dtype: str, max_shard_size: str) -> None:
    """``model.save_pretrained`` as safetensors in ``dtype``, sharded above ``max_shard_size``.

    A cast copy is saved, so the model being trained keeps its float32 weights (and a run
    that goes on after a save loses nothing to rounding). Loaders cast back to their compute
    dtype: ``from_pretrained(directory, dtype=torch.float32)``.
    """
    stored = copy.deepcopy(model).to(device="cpu", dtype=SAVE_DTYPES[dtype])
    stored.save_pretrained(directory, max_shard_size=max_shard_size)  # type: ignore[operator]


@torch.no_grad()
def evaluate(task: Task, forward: Forward, batches: list[torch.Tensor]) -> dict[str, float]:
    """Mean of the task's held-out figures over the fixed batches."""
    task.model.eval()
    sums: dict[str, float] = {}
    for i, batch in enumerate(batches):
        for key, value in task.eval_metrics(forward, batch, i).items():
            sums[key] = sums.get(key, 0.0) + float(value)
    task.model.train()
    return {key: value / len(batches) for key, value in sums.items()}


class JsonlLog:
    """The training log: one JSON object per line, appended as it goes."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        kept: list[str] = []
        if resume_step is not None and path.is_file():
            # lines written after the checkpoint belong to steps that will be run again
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line).get("step", 0) <= resume_step:
                        kept.append(line + "\n")
                except json.JSONDecodeError:
                    break  # a line cut short by a crash ends the usable log
        files.write_text(path, "".join(kept))

    def write(self, record: dict[str, Any]) -> None:
        # opened per line (every log_every steps): a crash loses at most the line being written
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def write_final(self, record: dict[str, Any]) -> None:
        """Append ``record``, or merge it into the last line when that is the same step."""
        lines = self.path.read_text(encoding="utf-8").splitlines()
        if lines and json.loads(lines[-1]).get("step") == record["step"]:
            last = json.loads(lines[-1])
            merged = last | {k: v for k, v in record.items() if v is not None}
            lines[-1] = json.dumps(merged)
            files.write_text(self.path, "".join(line + "\n" for line in lines))
        else:
            self.write(record)


def run_training(
    task: Task,
    train: PackedBatches,
    held_out: list[torch.Tensor],
    cfg: LoopConfig,
    extra_info: dict[str, Any] | None = None,
    more_held_out: dict[str, list[torch.Tensor]] | None = None,
) -> TrainResult:
    """Train ``task.model`` on ``train`` within the budget; save checkpoints and the model.

    ``more_held_out`` names further fixed evaluation sets (``{"pkg": batches}``: whole
    packages never trained on); each is evaluated with ``held_out`` and logged with the same
    metrics under ``held_out_<name>_``, in the log and in ``training.json``
    (``final_held_out_<name>_loss``, ``final_held_out_<name>``). Empty sets are skipped.

    Raises ``FileNotFoundError`` on ``--resume`` with no checkpoint, ``ValueError`` for a
    checkpoint that cannot be read or belongs to another run, and ``ValueError`` when a
    fresh run would overwrite an existing checkpoint.
    """
    cfg.validate()
    out = Path(cfg.out_dir)
    ckpt_path = _prepare_run_dir(out, cfg.resume)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    model = task.model.to(device)
    optimizer = make_optimizer(model, cfg)

    step, tokens, elapsed_before = 0, 0, 0.0
    recent: list[float] = []  # train losses since the last log line
    if cfg.resume:
        step, tokens, elapsed_before, recent = _restore(ckpt_path, task, model, optimizer, train, device)
    module: nn.Module = torch.compile(model) if cfg.compile else model  # type: ignore[assignment]
    forward = make_forward(module, device)
    log = JsonlLog(out / LOG_FILE, step if cfg.resume else None)

    def checkpoint(elapsed: float) -> None:
        rng = {"torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
        save_checkpoint(ckpt_path, {
            "task": task.name, "describe": task.describe(), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "data": train.state_dict(), "rng": rng,
            "step": step, "tokens": tokens, "elapsed": elapsed, "loop": cfg.as_json(),
            "recent_losses": list(recent),  # the next log line averages over these too
        })

    bar = _progress_bar(cfg, step, elapsed_before)
    t0 = time.perf_counter()
    elapsed = elapsed_before
    last_eval: dict[str, float] = {}
    extra_sets = {name: batches for name, batches in (more_held_out or {}).items() if batches}

    def evaluate_all() -> dict[str, float]:
        """Held-out figures, the further sets' under ``<name>_`` (``pkg_loss``, ...)."""
        figures = evaluate(task, forward, held_out)
        for name, batches in extra_sets.items():
            figures |= {f"{name}_{k}": v for k, v in evaluate(task, forward, batches).items()}
        return figures
    step_time = eval_time = 0.0
    model.train()
    try:
        while True:
            elapsed = elapsed_before + time.perf_counter() - t0
            if cfg.max_steps is not None and step >= cfg.max_steps:
                break
            if _would_overrun(cfg, elapsed, step_time, eval_time):
                break
            t_step = time.perf_counter()
            lr = learning_rate(cfg, step, budget_progress(cfg, step, elapsed))
            batch = next(train)
            recent.append(_optimizer_step(task, forward, model, optimizer, batch, step, lr, cfg, ckpt_path))
            step += 1
            tokens += batch.numel()
            step_time = time.perf_counter() - t_step
            elapsed = elapsed_before + time.perf_counter() - t0

            evaluated = step % cfg.eval_every == 0
            if evaluated:
                t_eval = time.perf_counter()
                last_eval = evaluate_all()
                eval_time = time.perf_counter() - t_eval
            if step % cfg.log_every == 0 or evaluated:
                log.write(_record(step, tokens, recent, last_eval if evaluated else None,
                                  lr, elapsed))
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.3f}",
                                held_out=f"{last_eval.get('loss', float('nan')):.3f}",
                                lr=f"{lr:.2e}", refresh=False)
                recent = []
            if step % cfg.checkpoint_every == 0:
                checkpoint(elapsed_before + time.perf_counter() - t0)
            _advance(bar, cfg, step, elapsed)
        final_eval = evaluate_all()
        final_train = evaluate(task, forward, train_probe(train, cfg.eval_batches))
        elapsed = elapsed_before + time.perf_counter() - t0
        log.write_final(_record(step, tokens, recent, final_eval, lr_now(cfg, step, elapsed),
                                elapsed))
        checkpoint(elapsed)
    finally:
        bar.close()

    saved = save_final_model(task, out, cfg.save_dtype, cfg.max_shard_size)
    info = _run_info(task, model, cfg, device, step=step, tokens=tokens, elapsed=elapsed,
                     final_train=final_train, final_eval=final_eval, extra_sets=list(extra_sets),
                     saved=saved, extra_info=extra_info)
    files.write_json(out / INFO_FILE, info)
    return TrainResult(info=info, out_dir=out)


def _prepare_run_dir(out: Path, resume: bool) -> Path:
    """Create ``out``, clear a crashed save's leftovers; returns the checkpoint's path.

    A fresh run never overwrites the checkpoint of another run.
    """
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    files.write_text(out / ".gitignore", f"{CHECKPOINT_FILE}\n.*.tmp\n")
    ckpt_path = out / CHECKPOINT_FILE
    if ckpt_path.exists() and not resume:
        raise ValueError(
            f"{ckpt_path} exists: pass --resume to continue that run, or remove it "
            "(or pick another --out) to start over"
        )
    return ckpt_path


def _restore(
    ckpt_path: Path, task: Task, model: nn.Module, optimizer: torch.optim.Optimizer,
    train: PackedBatches, device: torch.device,
) -> tuple[int, int, float, list[float]]:
    """Load a checkpoint into the model, optimizer, data order and RNGs.

    Returns the step, tokens seen, elapsed seconds and the train losses not yet logged.
    """
    state = load_checkpoint(ckpt_path, task.name, task.describe())
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    train.load_state_dict(state["data"])
    torch.set_rng_state(state["rng"]["torch"])
    if device.type == "cuda" and state["rng"].get("cuda") is not None:
        torch.cuda.set_rng_state(state["rng"]["cuda"], device)
    return state["step"], state["tokens"], state["elapsed"], list(state.get("recent_losses", []))


def _would_overrun(cfg: LoopConfig, elapsed: float, step_time: float, eval_time: float) -> bool:
    """Whether the next step would overrun the time budget, final evaluations included.

    The finish is held-out + train probe, about two evaluations; before the first one, an
    evaluation batch is guessed to cost what a training step does.
    """
    if cfg.time_budget is None:
        return False
    finish = 2 * (eval_time if eval_time else cfg.eval_batches * step_time)
    return elapsed + step_time + finish > cfg.time_budget


def _optimizer_step(
    task: Task, forward: Forward, model: nn.Module, optimizer: torch.optim.Optimizer,
    batch: torch.Tensor, step: int, lr: float, cfg: LoopConfig, ckpt_path: Path,
) -> float:
    """One update on ``batch`` at learning rate ``lr``; returns its training loss.

    A non-finite loss stops the run, naming the checkpoint to resume from.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss, _ = task.train_loss(forward, batch, step)
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"loss is {loss.item()} at step {step}; lower --lr or resume from {ckpt_path}"
        )
    loss.backward()  # type: ignore[no-untyped-call]
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def _run_info(
    task: Task, model: nn.Module, cfg: LoopConfig, device: torch.device, *, step: int, tokens: int,
    elapsed: float, final_train: dict[str, float], final_eval: dict[str, float], extra_sets: list[str],
    saved: dict[str, Any], extra_info: dict[str, Any] | None,
) -> dict[str, Any]:
    """``training.json``: the run's settings, hardware, budget spent and final figures."""
    main_eval = {k: v for k, v in final_eval.items()
                 if not any(k.startswith(f"{name}_") for name in extra_sets)}
    info = {
        "task": task.name,
        **task.describe(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "loop": cfg.as_json(),
        "hardware": describe_hardware(device, cfg.threads),
        "steps": step,
        "tokens_seen": tokens,
        "wall_time_s": round(elapsed, 1),
        "tokens_per_s": round(tokens / elapsed, 1) if elapsed > 0 else None,
        "final_train_loss": round(final_train["loss"], 4),
        "final_held_out_loss": round(final_eval["loss"], 4),
        "final_train": {k: round(v, 4) for k, v in final_train.items()},
        "final_held_out": {k: round(v, 4) for k, v in main_eval.items()},
        **{key: value for name in extra_sets for key, value in {
            f"final_held_out_{name}_loss": round(final_eval[f"{name}_loss"], 4),
            f"final_held_out_{name}": {k[len(name) + 1:]: round(v, 4)
                                       for k, v in final_eval.items()
                                       if k.startswith(f"{name}_")},
        }.items()},
        "saved": saved,
        **(extra_info or {}),
    }
    return json.loads(json.dumps(info))  # type: ignore[no-any-return]  # tuples become lists, as in the file


def lr_now(cfg: LoopConfig, step: int, elapsed: float) -> float:
    return learning_rate(cfg, step, budget_progress(cfg, step, elapsed))


def save_final_model(task: Task, out: Path, dtype: str, max_shard_size: str) -> dict[str, Any]:
    """``save_pretrained`` into a temporary folder beside ``out``, then rename file by file.

    Weight files of an earlier save that this one did not write (a single
    ``model.safetensors`` where shards now are, or more shards than now) are removed, so
    a loader never mixes two saves. Returns the dtype and the weight files' sizes in bytes.
    """
    tmp = files.temporary_dir_beside(out / "model")
    try:
        task.save_pretrained(tmp, dtype, max_shard_size)
        written = weight_file_names(tmp)
        for stale in weight_file_names(out):
            if stale not in written:
                (out / stale).unlink()
        sizes = {name: (tmp / name).stat().st_size for name in written}
        files.replace_files_from(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {"dtype": dtype, "max_shard_size": max_shard_size, "files": sizes,
            "bytes": sum(sizes.values())}


def train_probe(train: PackedBatches, n_batches: int) -> list[torch.Tensor]:
    """Fixed training windows measured exactly like the held-out ones.

    The final train loss is this held-out-style figure on training text (not the noisy,
    augmented last-step loss), so the two final losses compare like with like.
    """
    return held_out_batches(train.stream, train.seq_len, train.batch_size, n_batches)


def _record(
    step: int, tokens: int, losses: list[float] | None, held: dict[str, float] | None,
    lr: float, elapsed: float,
) -> dict[str, Any]:
    """One log line; ``loss`` is the mean training loss since the previous line."""
    record: dict[str, Any] = {
        "step": step, "tokens": tokens,
        "loss": round(sum(losses) / len(losses), 5) if losses else None,
        "held_out_loss": round(held["loss"], 5) if held else None,
        "lr": lr, "elapsed": round(elapsed, 2),
    }
    if held:
        record.update({f"held_out_{k}": round(v, 5) for k, v in held.items() if k != "loss"})
    return record


def _progress_bar(cfg: LoopConfig, step: int, elapsed: float) -> tqdm:
    if cfg.max_steps is not None:
        return tqdm(total=cfg.max_steps, initial=step, unit="step", disable=not cfg.progress,
                    dynamic_ncols=True)
    budget = float(cfg.time_budget or 0)
    return tqdm(total=round(budget), initial=round(elapsed), unit="s", disable=not cfg.progress,
                dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s {postfix}")


def _advance(bar: tqdm, cfg: LoopConfig, step: int, elapsed: float) -> None:
    target = step if cfg.max_steps is not None else min(round(elapsed), bar.total)
    if target > bar.n:
        bar.update(target - bar.n)
