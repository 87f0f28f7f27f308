"""One prepared training run for a GPU lent for a few minutes: corpus, both models, figures.

A GPU machine comes now and then, for minutes, with no network and only the Python
packages of its image (torch, transformers, tokenizers, safetensors, numpy, tqdm; not
remask's service dependencies). This module turns those minutes into a drafter and a
refiner in one command (``scripts/train_gpu.sh OUT_DIR``), step by step:

1. ``device``: CUDA, or exit 2 with :data:`NO_GPU_MESSAGE` (``--cpu`` runs on the CPU);
2. ``corpus``: build one from the machine's own Python installation (``--corpus DIR``: use
   a built one), and tokenise every split into the corpus's token cache;
3. ``plan``: the training budgets, batch and context, kept in ``plan.json``;
4. ``drafter``: train the drafter for :data:`DRAFTER_SHARE` of the training minutes;
5. ``refiner``: train the refiner warm-started from that drafter for the rest;
6. ``export``: drop the optimizer checkpoints, check every file against
   :data:`MAX_FILE_BYTES` and the weight-file count against :data:`MAX_WEIGHT_FILES`;
7. ``pack`` (with ``--pack DIR``): the results as at most :data:`MAX_PACK_PARTS` parts of
   one tar.gz (``cat DIR/*.tar.gz.* | tar xz`` unpacks), written now so the models come
   back even if what follows overruns, and again at the end (also after a failure);
8. ``eval``: both models on both held-out splits with the training figures, plus
   ``remask bench models``' figures where its imports work here (``eval.json``; the
   model cards get the bench figures).

Budgets are wall-clock budgets: the training minutes shrink when the corpus took so long
that ``--deadline-minutes`` (the whole command) would otherwise be overrun, so the run ends
on time whatever the GPU. The plan (budgets, batch, context) is written to ``plan.json``
before training, and rerunning with the same OUT_DIR resumes: finished steps are skipped,
an interrupted model continues from its checkpoint with the same plan.

On a lent machine, whose output folder hands back few, small files, OUT_DIR is a local
folder and ``--pack`` names the output folder: ``scripts/train_gpu.sh /tmp/run --pack "$OUT"``.
``--deadline-minutes`` counts from the recipe's start, after Python's imports.

Files in OUT_DIR: ``recipe.jsonl`` (one JSON object per step: status, seconds, figures),
``plan.json``, ``corpus/`` (unless ``--corpus``), ``drafter/``, ``refiner/``, ``eval.json``,
``summary.json`` (also printed to stdout at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shlex
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers import LlamaForCausalLM

from backends.tokens import SPECIAL_TOKENS
from refiner.model import RefinerModel
from training import files
from training.checkpoint import CHECKPOINT_FILE
from training.corpus import (
    DEFAULT_HELD_OUT_FRACTION,
    HELD_OUT_SPLITS,
    SPLITS,
    TRAIN,
    build_corpus,
    load_manifest,
)
from training.data import held_out_batches, token_stream, unigram_counts
from training.fim import FimSpec
from training.loop import INFO_FILE, LoopConfig, Task, evaluate, make_forward
from training.model_card import write_card
from training.refiner_noise import RefinerObjective
from training.sources import SourceRoots
from training.tokenizer import load_tokenizer
from training.train_drafter import DrafterTask, train_drafter
from training.train_refiner import RefinerTask, train_refiner

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TOKENIZER = REPO_ROOT / "models" / "tokenizer"
NO_GPU_MESSAGE = "no GPU found: this recipe trains on CUDA; pass --cpu to run it on the CPU (tests do)"
EXIT_NO_GPU = 2

LOG_FILE = "recipe.jsonl"
PLAN_FILE = "plan.json"
EVAL_FILE = "eval.json"
SUMMARY_FILE = "summary.json"
MODELS = ("drafter", "refiner")
PACK_NAME = "recipe-output.tar.gz"

DRAFTER_SHARE = 0.55  # the refiner starts from the drafter's weights: it needs less
EVAL_RESERVE_S = 60.0  # evaluation, cards and packing after training, kept out of its budget
MIN_TRAIN_S = 10.0  # less than this for both models is no training: refuse instead
BENCH_WINDOWS = 32  # bench figures on the lent machine: a quick read, not the record
BENCH_MIN_S = 30.0  # the bench figures are skipped with less time than this left
# transformers writes "15MB" shards as 15e6 bytes of tensors plus a small header; 15 MiB
# leaves room for the header and stays under the 16 MiB a lent machine hands back per file
MAX_FILE_BYTES = 15 * 2**20
MAX_WEIGHT_FILES = 8  # safetensors files of both models together
MAX_PACK_PARTS = 8  # files a lent machine hands back
GPU_BATCH_SIZE = 64  # 64 x 512 tokens: enough work per step to keep an H100 busy
CPU_BATCH_SIZE = 16


class RecipeError(RuntimeError):
    """A step that cannot go on; the message names the option or file to change."""


# ------------------------------------------------------------------------------------------
# the log


class RecipeLog:
    """Step records: JSON lines in ``recipe.jsonl`` and a human line on stderr each."""

    def __init__(self, out: Path) -> None:
        self.path = out / LOG_FILE
        self.t0 = time.monotonic()
        self.seconds: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def write(self, record: dict[str, Any], echo: bool = True) -> None:
        record = {"time": round(self.elapsed(), 2), **record}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if not echo:
            return
        extra = {k: v for k, v in record.items() if k not in ("time", "step", "status")}
        detail = " ".join(f"{k}={json.dumps(v)}" for k, v in extra.items())
        print(f"[recipe {record['time']:7.1f}s] {record.get('step')}: {record.get('status')} "
              f"{detail}".rstrip(), file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        """Time one step; the body fills the yielded dict with its figures."""
        figures: dict[str, Any] = {}
        self.write({"step": name, "status": "started"})
        t = time.monotonic()
        try:
            yield figures
        except BaseException as exc:
            self.write({"step": name, "status": "failed", "seconds": round(time.monotonic() - t, 2),
                        "error": f"{type(exc).__name__}: {exc}"})
            raise
        self.seconds[name] = round(time.monotonic() - t, 2)
        self.write({"step": name, "status": figures.pop("status", "done"),
                    "seconds": self.seconds[name], **figures})


# ------------------------------------------------------------------------------------------
# the plan: what a rerun must keep


@dataclass(frozen=True)
class Plan:
    """Settings fixed before training; a rerun of the same OUT_DIR must use the same."""

    device: str  # "cuda" | "cpu"
    preset: str
    seq_len: int
    batch_size: int
    seed: int
    lr: float
    drafter_seconds: float
    refiner_seconds: float
    compile: bool

    # the fields a resumed run cannot change without training another model
    FIXED: ClassVar[tuple[str, ...]] = ("device", "preset", "seq_len", "batch_size", "seed", "lr", "compile")


def make_plan(args: argparse.Namespace, device: str, train_seconds: float) -> Plan:
    batch = args.batch_size or (GPU_BATCH_SIZE if device == "cuda" else CPU_BATCH_SIZE)
    drafter = round(train_seconds * DRAFTER_SHARE, 1)
    return Plan(device=device, preset=args.preset, seq_len=args.seq_len, batch_size=batch,
                seed=args.seed, lr=args.lr, drafter_seconds=drafter,
                refiner_seconds=round(train_seconds - drafter, 1), compile=args.compile)


def load_or_make_plan(out: Path, fresh: Plan) -> tuple[Plan, bool]:
    """The plan stored in ``out`` (checked against this run's options), else ``fresh``."""
    path = out / PLAN_FILE
    if not path.is_file():
        files.write_json(path, asdict(fresh))
        return fresh, False
    stored = Plan(**json.loads(path.read_text(encoding="utf-8")))
    for name in Plan.FIXED:
        if getattr(stored, name) != getattr(fresh, name):
            flag = "--cpu" if name == "device" else f"--{name.replace('_', '-')}"
            raise RecipeError(
                f"{path} holds a run with {name}={getattr(stored, name)!r}, this command asks "
                f"for {getattr(fresh, name)!r}: rerun with the same {flag}, or pick another OUT_DIR"
            )
    return stored, True


def training_seconds(args: argparse.Namespace, spent: float) -> float:
    """``--minutes`` of training, cut so the whole command ends by ``--deadline-minutes``."""
    wanted = args.minutes * 60.0
    left = args.deadline_minutes * 60.0 - spent - EVAL_RESERVE_S
    seconds = min(wanted, left)
    if seconds < MIN_TRAIN_S:
        raise RecipeError(
            f"{spent:.0f} s went to the corpus, which leaves {max(left, 0):.0f} s of training "
            f"before --deadline-minutes {args.deadline_minutes:g}; raise it, or pass --corpus "
            "(a built corpus) or fewer --site-packages"
        )
    return seconds


# ------------------------------------------------------------------------------------------
# steps


def check_device(cpu: bool) -> str:
    """``"cpu"`` when asked for, ``"cuda"`` when present; ``RecipeError`` otherwise."""
    if cpu:
        return "cpu"
    if not torch.cuda.is_available():
        raise RecipeError(NO_GPU_MESSAGE)
    return "cuda"


def source_roots(args: argparse.Namespace) -> SourceRoots:
    """This machine's roots, each replaced by the one given (as ``remask corpus build``)."""
    default = SourceRoots.machine_defaults()
    for name in ("stdlib", "common_licenses", "doc"):
        given = getattr(args, name)
        if given is not None and not given.is_dir():
            raise RecipeError(f"--{name.replace('_', '-')} folder not found: {given}")
    return SourceRoots(
        stdlib=args.stdlib or default.stdlib,
        common_licenses=args.common_licenses or default.common_licenses,
        doc=args.doc or default.doc,
        site_packages=tuple(args.site_packages) if args.site_packages else default.site_packages,
    )


def prepare_corpus(args: argparse.Namespace, out: Path, figures: dict[str, Any]) -> Path:
    """The corpus to train on, built under ``out/corpus`` unless one was given."""
    if args.corpus is not None:
        load_manifest(args.corpus)  # a clear error for a folder that is no corpus
        figures["status"] = "given"
        figures["corpus"] = str(args.corpus)
        return Path(args.corpus)
    corpus = out / "corpus"
    if (corpus / "manifest.json").is_file():
        figures["status"] = "skipped (built before)"
    else:
        build_corpus(corpus, source_roots(args), args.held_out_fraction)
    totals = load_manifest(corpus)["totals"]
    figures["documents"] = {s: sum(c["documents"] for c in totals[s].values()) for s in SPLITS}
    figures["mb"] = {s: round(sum(c["bytes"] for c in totals[s].values()) / 1e6, 2)
                     for s in SPLITS}
    return corpus


def tokenize_splits(corpus: Path, tokenizer: Path) -> dict[str, int]:
    """Fill the token cache of every split; tokens per split (0 for an empty held-out one)."""
    counts: dict[str, int] = {}
    for split in SPLITS:
        try:
            counts[split] = len(token_stream(corpus, tokenizer, split))
        except ValueError:
            if split == TRAIN:
                raise
            counts[split] = 0  # a machine without the held-out packages: no such figures
    return counts


def train_model(
    name: str, out: Path, corpus: Path, args: argparse.Namespace, plan: Plan, command: str,
) -> dict[str, Any]:
    """Train (or resume, or skip when finished) one model into ``out/name``."""
    model_dir = out / name
    if (model_dir / INFO_FILE).is_file():
        info = json.loads((model_dir / INFO_FILE).read_text(encoding="utf-8"))
        return {"status": "skipped (trained before)", **training_figures(info)}
    seconds = plan.drafter_seconds if name == "drafter" else plan.refiner_seconds
    loop = LoopConfig(
        out_dir=model_dir, seed=plan.seed, time_budget=seconds, batch_size=plan.batch_size,
        seq_len=plan.seq_len, lr=plan.lr, eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every, compile=plan.compile, device=plan.device,
        threads=args.threads, resume=(model_dir / CHECKPOINT_FILE).is_file(),
        progress=args.progress,
    )
    if name == "drafter":
        result = train_drafter(corpus, args.tokenizer, plan.preset, loop, command=command)
    else:
        result = train_refiner(corpus, args.tokenizer, plan.preset, loop, command=command,
                               init_from=out / "drafter")
    return {"resumed": loop.resume, **training_figures(result.info)}


def training_figures(info: dict[str, Any]) -> dict[str, Any]:
    """The figures of ``training.json`` a summary needs."""
    return {k: info.get(k) for k in ("steps", "tokens_seen", "tokens_per_s", "wall_time_s",
                                     "final_train_loss", "final_held_out",
                                     "final_held_out_pkg")}


def held_out_figures(
    out: Path, corpus: Path, args: argparse.Namespace, plan: Plan
) -> dict[str, Any]:
    """Each model's training-time figures on fixed windows of each held-out split.

    The tasks' own ``eval_metrics`` (what ``train_log.jsonl`` tracks) at the trained context:
    the drafter's next-token and FIM losses (and perplexity), the refiner's ELBO, masked
    accuracy at 0.15 and edit-detection AUC. Needs nothing beyond the training packages.
    """
    device = torch.device(plan.device)
    tokenizer = load_tokenizer(args.tokenizer)
    drafter = LlamaForCausalLM.from_pretrained(out / "drafter", dtype=torch.float32)
    refiner = RefinerModel.from_pretrained(out / "refiner", dtype=torch.float32)
    unigram = torch.from_numpy(unigram_counts(token_stream(corpus, args.tokenizer, TRAIN),
                                              refiner.config.vocab_size))
    refiner_task = RefinerTask(refiner, RefinerObjective(), unigram, args.tokenizer, plan.seed,
                               plan.preset)
    vocab = tokenizer.get_vocab()
    refiner_task.mark_special([vocab[t] for t in SPECIAL_TOKENS if t in vocab])
    tasks: dict[str, Task] = {"drafter": DrafterTask(drafter, tokenizer, FimSpec(), args.tokenizer, plan.seed,
                                    plan.preset),
             "refiner": refiner_task}
    figures: dict[str, Any] = {"windows": {"seq_len": plan.seq_len, "batch_size": plan.batch_size,
                                           "batches": args.eval_batches}}
    for name, task in tasks.items():
        task.model.to(device).eval()
        forward = make_forward(task.model, device)
        figures[name] = {}
        for split in HELD_OUT_SPLITS:
            try:
                stream = token_stream(corpus, args.tokenizer, split)
                batches = held_out_batches(stream, plan.seq_len, plan.batch_size,
                                           args.eval_batches)
            except ValueError as exc:  # no held-out packages on this machine, or too few tokens
                figures[name][split] = {"skipped": str(exc)}
                continue
            result = {k: round(v, 4) for k, v in evaluate(task, forward, batches).items()}
            if name == "drafter":
                result["perplexity"] = round(math.exp(result["loss"]), 3)
            figures[name][split] = result
        task.model.to("cpu")
    return figures


def bench_figures(out: Path, corpus: Path, trained_context: int, windows: int) -> dict[str, Any]:
    """``remask bench models`` figures of both models, or why they could not be computed.

    Imported here and guarded: ``bench`` and the drafter's runtime may need packages the
    lent machine lacks (the error is recorded, the trained models are kept either way).
    """
    report: dict[str, Any] = {}
    try:
        from bench import models as bench_models
    except ImportError as exc:
        return {"error": f"ImportError: {exc}"}
    parser = argparse.ArgumentParser()
    bench_models.add_arguments(parser)
    seq_len = min(parser.parse_args([]).seq_len, trained_context)  # `bench models`' length
    report["windows"] = {"seq_len": seq_len, "count": windows}
    for name, fn in (("drafter", bench_models.drafter_figures),
                     ("refiner", bench_models.refiner_figures)):
        try:
            report[name] = fn(out / name, corpus, seq_len, windows)
        except ImportError as exc:
            report[name] = {"error": f"ImportError: {exc}"}
        except Exception as exc:  # noqa: BLE001 - a figure lost must not lose the models
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return report


def export(out: Path, keep_checkpoints: bool) -> dict[str, int]:
    """Drop the optimizer state, check every file against the limits; files and sizes."""
    for name in MODELS:
        checkpoint = out / name / CHECKPOINT_FILE
        if checkpoint.is_file() and not keep_checkpoints:
            checkpoint.unlink()
    sizes = {str(p.relative_to(out)): p.stat().st_size
             for name in MODELS for p in sorted((out / name).rglob("*")) if p.is_file()}
    check_sizes(sizes)
    return sizes


def check_sizes(sizes: dict[str, int]) -> None:
    """``RecipeError`` for a file over :data:`MAX_FILE_BYTES` or too many weight files."""
    too_big = [f"{path} ({size / 2**20:.1f} MiB)" for path, size in sizes.items()
               if size > MAX_FILE_BYTES and not path.endswith(CHECKPOINT_FILE)]
    if too_big:
        raise RecipeError(f"files over {MAX_FILE_BYTES / 2**20:g} MiB: {', '.join(too_big)}; "
                          "save the weights as smaller shards")
    weights = [path for path in sizes if path.endswith(".safetensors")]
    if len(weights) > MAX_WEIGHT_FILES:
        raise RecipeError(f"{len(weights)} weight files ({', '.join(weights)}), more than "
                          f"{MAX_WEIGHT_FILES}; save the weights as larger shards")
    if not weights:
        raise RecipeError("no .safetensors weights were written")


def pack(out: Path, dest: Path) -> list[str]:
    """Write OUT_DIR's results (no corpus, no checkpoints) as parts of one tar.gz in ``dest``.

    A lent machine hands back few files of bounded size; the parts are at most
    :data:`MAX_FILE_BYTES` each and at most :data:`MAX_PACK_PARTS`. Unpack with
    ``cat DEST/recipe-output.tar.gz.* | tar xz``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob(f"{PACK_NAME}.*"):
        old.unlink()
    whole = dest / f".{PACK_NAME}.tmp"
    with tarfile.open(whole, "w:gz") as tar:
        for path in sorted(out.rglob("*")):
            rel = path.relative_to(out)
            if (path.is_file() and rel.parts[0] != "corpus" and path.name != CHECKPOINT_FILE
                    and not path.name.startswith(".")):
                tar.add(path, arcname=str(rel))
    size = whole.stat().st_size
    parts = max(1, math.ceil(size / MAX_FILE_BYTES))
    if parts > MAX_PACK_PARTS:
        whole.unlink()
        raise RecipeError(f"the results take {size / 2**20:.1f} MiB packed, more than "
                          f"{MAX_PACK_PARTS} parts of {MAX_FILE_BYTES / 2**20:g} MiB")
    names = []
    with open(whole, "rb") as src:
        for i in range(parts):
            name = f"{PACK_NAME}.{i:03d}"
            (dest / name).write_bytes(src.read(MAX_FILE_BYTES))
            names.append(name)
    whole.unlink()
    return names


# ------------------------------------------------------------------------------------------
# the command


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/train_gpu.sh OUT_DIR",
        description="Build a corpus, train drafter and refiner on a GPU, evaluate, export.",
    )
    p.add_argument("--out", type=Path, required=True,
                   help="run folder (rerunning with the same one resumes)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU (tests); default: CUDA")
    p.add_argument("--preset", default="gpu", help="model shape of both models (%(default)s)")
    p.add_argument("--minutes", type=float, default=9.0,
                   help="training minutes for both models together (%(default)s)")
    p.add_argument("--deadline-minutes", type=float, default=9.5,
                   help="the whole command's wall time: training shrinks to fit (%(default)s)")
    p.add_argument("--seq-len", type=int, default=512, help="tokens per window (%(default)s)")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"windows per step (default {GPU_BATCH_SIZE} on CUDA, "
                   f"{CPU_BATCH_SIZE} on the CPU)")
    p.add_argument("--lr", type=float, default=LoopConfig.lr, help="peak learning rate (%(default)s)")
    p.add_argument("--seed", type=int, default=0, help="weights, data order, noise (%(default)s)")
    p.add_argument("--compile", action="store_true", help="torch.compile both models")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice, one per core)")
    p.add_argument("--eval-every", type=int, default=250, help="steps between held-out checks")
    p.add_argument("--checkpoint-every", type=int, default=1000,
                   help="steps between checkpoints (%(default)s)")
    p.add_argument("--eval-batches", type=int, default=16,
                   help="held-out batches per split for the final figures (%(default)s)")
    p.add_argument("--bench-windows", type=int, default=BENCH_WINDOWS,
                   help="windows per kind of text for the bench figures (%(default)s; "
                   "`remask bench models` on the returned models gives the full figures)")
    p.add_argument("--no-bench", dest="bench", action="store_false",
                   help="skip `remask bench models` figures (eval.json keeps the training ones)")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep checkpoint.pt (optimizer state, about 3x the model) in OUT_DIR")
    p.add_argument("--pack", type=Path, default=None, metavar="DIR",
                   help=f"also write the results to DIR as at most {MAX_PACK_PARTS} parts "
                   "of one tar.gz (for a machine that hands back few, small files)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm bars")
    data = p.add_argument_group("data")
    data.add_argument("--tokenizer", type=Path, default=DEFAULT_TOKENIZER,
                      help="tokenizer folder (default: the committed models/tokenizer)")
    data.add_argument("--corpus", type=Path, default=None,
                      help="a corpus built before (default: build one in OUT_DIR/corpus)")
    data.add_argument("--held-out-fraction", type=float, default=DEFAULT_HELD_OUT_FRACTION,
                      help="share of files held out when building (%(default)s)")
    data.add_argument("--stdlib", type=Path, help="Python standard library folder")
    data.add_argument("--common-licenses", type=Path, help="folder of full license texts")
    data.add_argument("--doc", type=Path, help="folder of <package>/copyright files")
    data.add_argument("--site-packages", type=Path, action="append",
                      help="a site-packages folder to read (repeatable; default: this "
                      "interpreter's, then Debian's dist-packages)")
    args = p.parse_args(argv)
    for name in ("minutes", "deadline_minutes"):
        if not getattr(args, name) > 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the recipe; 0 when done, :data:`EXIT_NO_GPU` without CUDA (and no ``--cpu``)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.argv = argv
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = RecipeLog(out)
    try:
        device = check_device(args.cpu)
    except RecipeError as exc:
        log.write({"step": "device", "status": "failed", "error": str(exc)}, echo=False)
        print(exc, file=sys.stderr)  # the one line a user sees
        return EXIT_NO_GPU
    log.write({"step": "device", "status": "done",
               "device": torch.cuda.get_device_name() if device == "cuda" else "cpu"})
    if args.threads:
        torch.set_num_threads(args.threads)  # evaluation too, not only the training loops
    if device == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for what autocast leaves in float32
    try:
        return run_steps(args, out, log, device)
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def recipe_command(argv: list[str], out: Path) -> str:
    """The wrapper's command line of this run, for ``training.json`` and the model cards."""
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--out":
            next(args, None)  # and its value
        elif not arg.startswith("--out="):
            rest.append(arg)
    return shlex.join(["scripts/train_gpu.sh", str(out), *rest])


def run_steps(args: argparse.Namespace, out: Path, log: RecipeLog, device: str) -> int:
    """Every step after the device check; see the module docstring.

    With ``--pack``, the results are packed as soon as both models are exported (so they
    come back even if the evaluation overruns the machine's time) and again at the end,
    also after a failure: whatever was finished by then.
    """
    try:
        return _steps(args, out, log, device)
    finally:
        if args.pack is not None:
            with contextlib.suppress(Exception), log.step("pack") as fig:  # logged if it fails
                fig["parts"] = pack(out, args.pack.resolve())


def _steps(args: argparse.Namespace, out: Path, log: RecipeLog, device: str) -> int:
    command = recipe_command(args.argv, args.out)
    with log.step("corpus") as fig:
        corpus = prepare_corpus(args, out, fig)
        fig["tokens"] = tokenize_splits(corpus, args.tokenizer)
    fresh = make_plan(args, device, training_seconds(args, log.elapsed()))
    with log.step("plan") as fig:
        plan, kept = load_or_make_plan(out, fresh)
        fig.update(asdict(plan), status="kept from the earlier run" if kept else "done")

    trained: dict[str, Any] = {}
    for name in MODELS:
        with log.step(name) as fig:
            fig.update(train_model(name, out, corpus, args, plan, command))
            trained[name] = dict(fig)

    with log.step("export") as fig:
        sizes = export(out, args.keep_checkpoints)
        fig["files"] = len(sizes)
        fig["mb"] = round(sum(sizes.values()) / 1e6, 2)
    if args.pack is not None:
        with log.step("pack") as fig:
            fig["parts"] = pack(out, args.pack.resolve())

    with log.step("eval") as fig:
        if (out / EVAL_FILE).is_file():  # both models were final before it was written
            figures = json.loads((out / EVAL_FILE).read_text(encoding="utf-8"))
            fig["status"] = "skipped (evaluated before)"
        else:
            figures = held_out_figures(out, corpus, args, plan)
            left = args.deadline_minutes * 60.0 - log.elapsed()
            if not args.bench:
                figures["bench"] = {"skipped": "--no-bench"}
            elif left < BENCH_MIN_S:
                figures["bench"] = {"skipped": f"{left:.0f} s left before --deadline-minutes"}
            else:
                figures["bench"] = bench_figures(out, corpus, plan.seq_len, args.bench_windows)
            files.write_json(out / EVAL_FILE, figures)
            for name in MODELS:  # the cards get the bench figures of their model
                bench = figures["bench"].get(name)
                if isinstance(bench, dict) and "error" not in bench:
                    write_card(out / name, {name: bench})
        fig["figures"] = {m: figures[m] for m in MODELS}

    summary = {
        "out_dir": str(out), "device": plan.device, "preset": plan.preset,
        "seconds": log.seconds, "elapsed_s": round(log.elapsed(), 1),
        "models": {name: {k: v for k, v in trained[name].items() if k != "status"}
                   for name in MODELS},
        "held_out": {m: figures[m] for m in MODELS},
        "files": sizes,
    }
    files.write_json(out / SUMMARY_FILE, summary)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
