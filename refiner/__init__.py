"""The masked-diffusion refiner: mask predictors, noise schedule, sampler, editing."""

from refiner.editing import (
    EditResult,
    FilledSpan,
    SpanEdit,
    fill_spans,
    infill,
    infill_variable,
    token_scores,
)
from refiner.model import RefinerConfig, RefinerModel, refiner_config
from refiner.predictor import HFMaskPredictor, MaskPredictor, load_predictor, native_predictor
from refiner.sampler import DenoiseResult, SamplerConfig, StepEvent, denoise

__all__ = [
    "DenoiseResult",
    "EditResult",
    "FilledSpan",
    "HFMaskPredictor",
    "MaskPredictor",
    "RefinerConfig",
    "RefinerModel",
    "SamplerConfig",
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
