"""The masked-diffusion refiner: mask predictors, noise schedule, sampler, editing, scoring."""

from refiner.editing import (
    EditResult,
    FilledSpan,
    SpanEdit,
    fill_spans,
    infill,
    infill_variable,
)
from refiner.model import RefinerConfig, RefinerModel, refiner_config
from refiner.predictor import HFMaskPredictor, MaskPredictor, load_predictor, native_predictor
from refiner.sampler import DenoiseResult, SamplerConfig, StepEvent, denoise
from refiner.scoring import ScoreRow, token_scores

__all__ = [
    "DenoiseResult",
    "EditResult",
    "FilledSpan",
    "HFMaskPredictor",
    "MaskPredictor",
    "RefinerConfig",
    "RefinerModel",
    "SamplerConfig",
    "ScoreRow",
    "SpanEdit",
    "StepEvent",
    "denoise",
    "fill_spans",
    "infill",
    "infill_variable",
    "load_predictor",
    "native_predictor",
    "refiner_config",
    "token_scores",
]
