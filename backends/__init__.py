"""Inference backends shared by the drafter and the refiner (ONNX Runtime plumbing).

Nothing here knows about either model: :mod:`backends.onnx_runtime` builds sessions, picks
execution providers and keeps exports cached next to the weights. The model-specific export
graphs live in ``drafter/onnx_backend.py`` and ``refiner/onnx_backend.py``.
"""

from typing import Literal

Backend = Literal["torch", "onnx"]
"""Which runtime executes a model: PyTorch eager, or ONNX Runtime on an exported graph."""

__all__ = ["Backend"]
