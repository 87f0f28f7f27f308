"""Resume checkpoints: written atomically, read with clear errors.

A checkpoint is one file, ``checkpoint.pt``: :func:`save_checkpoint` writes it under a
temporary name in the same folder, flushes it to disk and renames it over the previous one
(``os.replace`` is atomic on one file system). A crash mid-write therefore leaves the
previous checkpoint whole, plus a temporary file that the next run removes. One file (not
a folder) because a folder cannot be renamed over a non-empty one in a single step.

It is loaded with ``weights_only=True``: plain containers and tensors, no pickled code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from training import files

CHECKPOINT_FILE = "checkpoint.pt"
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
