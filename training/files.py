"""Atomic file writes for training outputs.

A corpus or tokenizer directory is read by other processes (benchmarks, training runs);
a crash half-way through a write must never leave a truncated file under the final name.
Every writer here writes to a temporary name in the destination's own directory (so the
rename stays on one file system) and then moves it into place with :func:`os.replace`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit move it onto ``path``.

    ``mode`` is ``"w"`` (UTF-8 text, ``\\n`` line ends kept as written) or ``"wb"``. On an
    exception the temporary file is removed and ``path`` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes only, mode 'w' or 'wb', not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(tmp, _default_mode())  # mkstemp makes 0600; final files get the usual mode
        if mode == "w":
            handle: IO[Any] = os.fdopen(fd, "w", encoding="utf-8", newline="")
        else:
            handle = os.fdopen(fd, "wb")
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically.

    Sorted keys and a fixed indent make the bytes a function of the value, so two builds of
    the same corpus produce identical files (and identical hashes).
    """
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def replace_files_from(src_dir: Path, dest_dir: Path) -> list[str]:
    """Move every file of ``src_dir`` (flat) into ``dest_dir``, one ``os.replace`` each.

    Used for writers that insist on a directory of their own (``save_pretrained``): they
    write into a temporary directory created inside ``dest_dir``'s parent, and each file
    then replaces its namesake atomically. Returns the names moved, sorted.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in src_dir.iterdir() if p.is_file())
    for name in names:
        os.replace(src_dir / name, dest_dir / name)
    shutil.rmtree(src_dir, ignore_errors=True)
    return names


def temporary_dir_beside(dest_dir: Path) -> Path:
    """Create and return an empty temporary directory in ``dest_dir``'s parent."""
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.", suffix=".tmp", dir=dest_dir.parent))
