"""GLiNER models in plain PyTorch: text processing, span model, losses, decoding, checkpoints.

import gliner_core
model = gliner_core.load("path/or/hub-id")                      # torch: GLiNER
model = gliner_core.load("serving/model", backend="onnx")       # an ONNX export: OnnxGLiNER
model.predict_entities("Alice moved to Paris.", ["person", "city"])

This file only re-exports; no module of the package imports it.
"""

from gliner_core.backends import BACKENDS, load
from gliner_core.config import GLiNERConfig
from gliner_core.errors import CheckpointError, ModelNotFoundError
from gliner_core.gliner import GLiNER
from gliner_core.onnx_runtime import OnnxGLiNER
from gliner_core.predictor import Predictor

__all__ = [
    "BACKENDS",
    "CheckpointError",
    "GLiNER",
    "GLiNERConfig",
    "ModelNotFoundError",
    "OnnxGLiNER",
    "Predictor",
    "load",
]
