"""Loading the models a pipeline needs, from the shipped defaults or from local paths.

Pipelines take a refiner (:class:`refiner.text.TextRefiner`) and optionally a drafter
(:class:`drafter.Drafter`); this module builds them from directories, so the CLI, the
service and the queue worker load models the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends import Backend
from refiner.text import TextRefiner

# where the shipped defaults live, relative to the project root; overridable by environment
DEFAULT_REFINER = Path(os.environ.get("REMASK_REFINER", "models/refiner"))
DEFAULT_DRAFTER = Path(os.environ.get("REMASK_DRAFTER", "models/drafter"))


@dataclass
class Engines:
    refiner: TextRefiner
    drafter: Any | None  # drafter.Drafter; None when only the refiner is needed


def _check_dir(path: Path, what: str, train_cmd: str) -> None:
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"no {what} model at {str(path)!r}: pass a model directory, or train the default "
            f"with `{train_cmd}`"
        )


def load_refiner(path: str | Path | None = None, device: str = "cpu", window: int | None = None,
                 backend: Backend = "torch") -> TextRefiner:
    """The refiner in ``path``. ``window``: context tokens per side of a span when a caller
    gives none; None: as many as the model's trained context holds."""
    p = Path(path) if path is not None else DEFAULT_REFINER
    _check_dir(p, "refiner", "remask train refiner")
    return TextRefiner.from_pretrained(p, device=device, backend=backend, window=window)


def load_drafter(path: str | Path | None = None, device: str = "cpu", backend: Backend = "torch",
                 threads: int | None = None) -> Any:
    """The drafter in ``path``; ``backend="onnx"`` runs it in ONNX Runtime (exported on first use)."""
    from drafter.onnx_backend import load_drafter as load

    p = Path(path) if path is not None else DEFAULT_DRAFTER
    _check_dir(p, "drafter", "remask train drafter")
    d = load(p, backend, device, threads=threads)
    setattr(d, "path", str(p))  # noqa: B010 - audit records name the directory
    return d


def load_engines(refiner: str | Path | None = None, drafter: str | Path | None = None,
                 need_drafter: bool = True, device: str = "cpu") -> Engines:
    return Engines(load_refiner(refiner, device), load_drafter(drafter, device) if need_drafter else None)
