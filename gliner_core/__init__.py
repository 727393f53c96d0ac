"""GLiNER models in plain PyTorch: text processing, span model, losses, decoding, checkpoints.

from gliner_core import GLiNER
model = GLiNER.from_pretrained("path/or/hub-id")
model.predict_entities("Alice moved to Paris.", ["person", "city"])
"""

from gliner_core.config import GLiNERConfig
from gliner_core.errors import CheckpointError, ModelNotFoundError
from gliner_core.gliner import GLiNER

__all__ = ["CheckpointError", "GLiNER", "GLiNERConfig", "ModelNotFoundError"]
