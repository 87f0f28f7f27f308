"""Resume checkpoints: written atomically, read with clear errors.

A checkpoint is one file, ``checkpoint.pt``: :func:`save_checkpoint` writes it under a
temporary name in the same folder, flushes it to disk and renames it over the previous one
(``os.replace`` is atomic on one file system). A crash mid-write therefore leaves the
previous checkpoint whole, plus a temporary file that the next run removes. One file (not
a folder) because a folder cannot be renamed over a non-empty one in a single step.

It is loaded with ``weights_only=True``: plain containers and tensors, no pickled code.

A finished model is saved apart from the checkpoint, as safetensors (one
``model.safetensors``, or shards ``model-0000i-of-0000n.safetensors`` listed in
``model.safetensors.index.json``); :func:`check_saved_weights` reads such a folder's
weight files before another run starts from them, naming the file that is missing, cut
short or unreadable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from training import files

CHECKPOINT_FILE = "checkpoint.pt"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
_SHARD = re.compile(r"model-\d+-of-\d+\.safetensors")
# dtypes a finished model may be saved in; training itself always runs in float32
SAVE_DTYPES: dict[str, torch.dtype] = {
    "bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32,
}
REQUIRED_KEYS: tuple[str, ...] = (
    "task", "describe", "model", "optimizer", "data", "rng", "step", "tokens", "elapsed",
)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not belong to this run."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    with files.atomic_open(path, "wb") as handle:
        torch.save(state, handle)


def remove_stale_temporaries(directory: Path) -> list[str]:
    """Delete temporary checkpoint files a killed run left behind; return their names."""
    stale = sorted(directory.glob(f".{CHECKPOINT_FILE}.*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return [p.name for p in stale]


def load_checkpoint(
    path: Path, task: str, describe: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Read the checkpoint at ``path`` for a run of ``task`` with model ``describe``.

    Raises ``FileNotFoundError`` when there is none, :class:`CheckpointError` (a
    ``ValueError``) naming the file when it cannot be read, lacks a field, or was written by
    another task or for another model shape.
    """
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint to resume from at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip, pickle and storage errors all mean the same thing here
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); it is corrupt "
            "or was cut short: delete it to start over"
        ) from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} cannot be read: not a remask checkpoint")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} cannot be read: it lacks {missing}; not a remask checkpoint"
        )
    if state["task"] != task:
        raise CheckpointError(
            f"checkpoint {path} is a {state['task']} checkpoint, not a {task} one"
        )
    if describe is not None:
        mine, theirs = describe.get("model_config"), state["describe"].get("model_config")
        if mine is not None and theirs is not None and mine != theirs:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise CheckpointError(
                f"checkpoint {path} was written for another model shape (differs in {diff}); "
                "resume with the same --preset and tokenizer"
            )
    return state


def weight_file_names(directory: Path) -> list[str]:
    """Names of the safetensors weight files (single, shards, index) in ``directory``."""
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_file() and (
        p.name in (WEIGHTS_FILE, WEIGHTS_INDEX_FILE) or _SHARD.fullmatch(p.name)))


def check_saved_weights(directory: Path) -> list[Path]:
    """The weight files of the model saved in ``directory``, each opened and checked.

    The same check the loaders run (:func:`backends.weights.check_weights`), its error
    turned into a :class:`CheckpointError`: ``FileNotFoundError`` when there are no weights
    or the index names a missing shard, :class:`CheckpointError` naming the file when the
    index or a safetensors file cannot be read or the shards lack a tensor the index lists.
    """
    from backends.weights import WeightsError, check_weights

    try:
        return check_weights(directory)
    except WeightsError as exc:
        raise CheckpointError(str(exc)) from exc
