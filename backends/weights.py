"""Weight files of a saved model: found, opened and checked before transformers loads them.

Models are saved as safetensors, often in bfloat16 and split into shards
(``model-0000i-of-0000N.safetensors`` listed in ``model.safetensors.index.json``). When one of
those files is missing, cut short by an interrupted copy or not safetensors at all,
``from_pretrained`` fails deep inside safetensors or transformers with a message that names
no file ("incomplete metadata, file not fully covered"). :func:`check_weights` reads every
file's header first (cheap: no tensor data is read) and raises an error that names the file,
of a type the command line shows as one line: :class:`WeightsError` (a ``ValueError``) for a
file that cannot be read, ``FileNotFoundError`` for one that is not there.

Loading itself stays with transformers, which also casts whatever dtype the files hold to
the dtype the caller asks for (float32 on the CPU).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import safe_open

SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
# PyTorch pickles: read by transformers itself; only their presence is checked here
TORCH_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")


class WeightsError(ValueError):
    """A weight file (or shard index) that cannot be read: corrupt, cut short, incomplete."""


def check_weights(directory: str | os.PathLike[str]) -> list[Path]:
    """The safetensors files of the model in ``directory``, each header opened and checked.

    With an index, every shard it names must exist and together hold every tensor it lists.
    Returns ``[]`` for a checkpoint stored as PyTorch pickles (transformers checks those).
    Raises ``FileNotFoundError`` when there are no weights or a listed shard is missing, and
    :class:`WeightsError` naming the file when the index or a safetensors file cannot be read.
    """
    root = Path(directory)
    index = root / SAFETENSORS_INDEX
    expected: set[str] | None = None
    if index.is_file():
        expected, paths = _read_index(index)
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(
                    f"weight file {str(path)!r} is missing: {str(index)!r} lists it as a shard"
                )
    elif (root / SAFETENSORS_FILE).is_file():
        paths = [root / SAFETENSORS_FILE]
    elif any((root / name).is_file() for name in TORCH_FILES):
        return []
    else:
        paths = sorted(root.glob("*.safetensors"))
        if not paths:
            raise FileNotFoundError(
                f"no model weights in {str(root)!r}: neither {SAFETENSORS_FILE}, "
                f"{SAFETENSORS_INDEX} nor {TORCH_FILES[0]}"
            )
    found: set[str] = set()
    for path in paths:
        found |= _tensor_names(path)
    if expected is not None and expected - found:
        missing = sorted(expected - found)
        raise WeightsError(
            f"the shards in {str(root)!r} lack {len(missing)} tensors that {str(index)!r} "
            f"lists (first: {missing[0]}); the save is incomplete"
        )
    return paths


def _read_index(index: Path) -> tuple[set[str], list[Path]]:
    """Tensor names and shard paths of a ``model.safetensors.index.json``."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) for v in weight_map.values()
        ):
            raise TypeError("weight_map is not a mapping of tensor names to file names")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsError(
            f"shard index {str(index)!r} cannot be read ({type(exc).__name__}: {exc}); the "
            "save is corrupt or was cut short"
        ) from exc
    return set(weight_map), [index.parent / name for name in sorted(set(weight_map.values()))]


def _tensor_names(path: Path) -> set[str]:
    """Names of the tensors in one safetensors file; its header and data extent are checked."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return set(handle.keys())
    except Exception as exc:  # safetensors has one error type for every failure
        raise WeightsError(
            f"weight file {str(path)!r} cannot be read ({exc}); it is corrupt or was cut short"
        ) from exc
