"""What the drafter, the refiner and training share beneath both models.

Nothing here knows about either model: :mod:`backends.tokens` names the shared tokenizer's
special tokens, :mod:`backends.weights` checks weight files, and :mod:`backends.onnx_runtime`
builds ONNX Runtime sessions, picks execution providers and keeps exports cached next to the
weights. The model-specific export graphs live in ``drafter/onnx_backend.py`` and
``refiner/onnx_backend.py``.
"""

from typing import Literal

Backend = Literal["torch", "onnx"]
"""Which runtime executes a model: PyTorch eager, or ONNX Runtime on an exported graph."""

__all__ = ["Backend"]
