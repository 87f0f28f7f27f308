"""The AR drafter: any transformers causal LM, drafting text with per-token log-probs.

The public surface:

* :class:`Drafter` (``drafter.model``): load, generate, stream, batch, FIM, score.
* :class:`GenerationParams` (``drafter.params``): per-request knobs.
* :class:`Draft`, :class:`DraftToken`, :class:`Score` (``drafter.outputs``): results.
* FIM formats (``drafter.fim``): :func:`fim_format_for`, the registry, prompt layouts.
"""

from drafter.fim import (
    FIM_FORMATS,
    FimFormat,
    FimPrompt,
    FimTokens,
    FimUnsupportedError,
    build_fim_prompt,
    fim_format_for,
    fim_prompt_ids,
    register_fim_format,
)
from drafter.generate import DraftStream
from drafter.model import Drafter
from drafter.outputs import Draft, DraftToken, FinishReason, Score
from drafter.params import GenerationParams

__all__ = [
    "FIM_FORMATS",
    "Draft",
    "DraftStream",
    "DraftToken",
    "Drafter",
    "FimFormat",
    "FimPrompt",
    "FimTokens",
    "FimUnsupportedError",
    "FinishReason",
    "GenerationParams",
    "Score",
    "build_fim_prompt",
    "fim_format_for",
    "fim_prompt_ids",
    "register_fim_format",
]
