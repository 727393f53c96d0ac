"""`load`: a GLiNER model from a folder or hub id, on the backend that serves it.

    import gliner_core
    model = gliner_core.load("runs/ft/best/model")                               # torch checkpoint
    model = gliner_core.load("serving/model", backend="onnx", precision="int8")  # ONNX export
    model.predict_entities("Alice moved to Paris.", ["person", "city"])

Both backends are a `Predictor` (`gliner_core.predictor`): the same prediction code,
with the forward pass in torch (`GLiNER`, which also trains and saves) or in ONNX
Runtime (`OnnxGLiNER`, on a folder written by `gliner_core.onnx_export.export_onnx`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, overload

from gliner_core.gliner import GLiNER
from gliner_core.onnx_runtime import OnnxGLiNER
from gliner_core.predictor import Predictor

BACKENDS = ("torch", "onnx")


@overload
def load(path_or_id: str | Path, backend: Literal["torch"] = "torch", **options: Any) -> GLiNER: ...
@overload
def load(path_or_id: str | Path, backend: Literal["onnx"], **options: Any) -> OnnxGLiNER: ...
@overload
def load(path_or_id: str | Path, backend: str, **options: Any) -> Predictor: ...


def load(path_or_id: str | Path, backend: str = "torch", **options: Any) -> Predictor:
    """The model at `path_or_id` on `backend`: "torch" (the default) or "onnx".

    torch: a checkpoint folder or hub id, `GLiNER.from_pretrained` (options: `map_location`).
    onnx: an export folder, `OnnxGLiNER.from_pretrained` (options: `precision` "fp32" | "int8",
    `threads`, `providers`).
    """
    if backend == "torch":
        return GLiNER.from_pretrained(path_or_id, **options)
    if backend == "onnx":
        return OnnxGLiNER.from_pretrained(path_or_id, **options)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
