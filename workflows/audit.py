"""Audit records: what produced a result (models and their hashes, parameters, seed, timings)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol


@cache
def weights_hash(path: str) -> str:
    """sha256 of a model directory's weight files (first 16 hex digits); 'unknown' if none."""
    root = Path(path)
    files = sorted(root.glob("*.safetensors")) + sorted(root.glob("*.bin")) if root.is_dir() else []
    if not files:
        return "unknown"
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


@dataclass
class ModelInfo:
    name: str
    path: str | None
    sha256: str

    @classmethod
    def of(cls, name: str, path: str | None) -> ModelInfo:
        return cls(name=name, path=path, sha256=weights_hash(path) if path else "in-memory")


class Options(Protocol):
    """A pipeline's per-request options (the pydantic models of :mod:`workflows.options`)."""

    seed: int | None

    def model_dump(self) -> dict[str, Any]: ...


class Named(Protocol):
    """A model object: the refiner or the drafter (``path`` too when loaded from a directory)."""

    @property
    def name(self) -> str: ...


@dataclass
class AuditRecord:
    """Attached to every result; enough to reproduce it (same models, parameters and seed)."""

    pipeline: str
    models: list[ModelInfo]
    parameters: dict[str, Any]
    seed: int | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    # what the run decided that a reviewer counts on (compliance: findings, applied, needs_review)
    outcome: dict[str, int] = field(default_factory=dict)

    @classmethod
    def start(cls, pipeline: str, params: Options, *models: Named | None, **extra: Any) -> AuditRecord:
        """The record of a ``pipeline`` run with ``params`` (``extra`` parameters first) on the
        ``models`` given (None: a model the run does without)."""
        infos = [ModelInfo.of(m.name, getattr(m, "path", None)) for m in models if m is not None]
        return cls(pipeline, infos, {**extra, **params.model_dump()}, params.seed)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings_ms[stage] = round(self.timings_ms.get(stage, 0.0) + 1000 * (time.perf_counter() - t0), 2)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
