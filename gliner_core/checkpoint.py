"""Checkpoint files, interchangeable with the official `gliner` package.

A checkpoint is a directory with `gliner_config.json`, the weights
(`model.safetensors`, or an official `pytorch_model.bin` read with
`weights_only=True`, which cannot run code) and the tokenizer files, which
already hold the added `<<ENT>>`/`<<SEP>>` tokens.

A damaged weights file (truncated by an interrupted copy or download, empty,
not safetensors) is a `CheckpointError` naming the file, not a raw
safetensors/torch error. A pickle that tries to run code is still refused by
`torch.load(weights_only=True)` with its own `UnpicklingError`.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from gliner_core.errors import CheckpointError

SAFETENSORS_FILE = "model.safetensors"
PICKLE_FILE = "pytorch_model.bin"
ONNX_MANIFEST_FILE = "onnx.json"  # marks a folder written by gliner_core.onnx_export (graphs, no weights)
_FIX = "copy, save or download the checkpoint again"


def save_weights(state_dict: dict[str, torch.Tensor], directory: Path) -> Path:
    """Write `model.safetensors`; tensors that share memory are stored once (as the official does)."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, tensor in state_dict.items():
        key = (tensor.device, tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
        if tensor.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        # a fresh contiguous copy: views into larger storages cannot be saved as they are
        tensors[name] = tensor.detach().to("cpu").contiguous().clone()
    path = directory / SAFETENSORS_FILE
    save_file(tensors, str(path), metadata={"format": "pt", **aliases})
    return path


def is_onnx_export(directory: Path) -> bool:
    """A folder written by `gliner_core.onnx_export`: its manifest and no torch weights to load."""
    has_weights = (directory / SAFETENSORS_FILE).is_file() or (directory / PICKLE_FILE).is_file()
    return (directory / ONNX_MANIFEST_FILE).is_file() and not has_weights


def load_weights(directory: Path) -> dict[str, torch.Tensor]:
    """Read the weights of a checkpoint directory without executing any code."""
    path = directory / SAFETENSORS_FILE
    if path.is_file():
        return _read_safetensors(path)
    path = directory / PICKLE_FILE
    if path.is_file():
        return _read_pickle(path)
    raise FileNotFoundError(f"no {SAFETENSORS_FILE} or {PICKLE_FILE} in {directory}")


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    size = _nonempty_size(path)
    state: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                state[key] = f.get_tensor(key)
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise _damaged(path, size, "safetensors", error) from None
    for alias, original in metadata.items():
        if alias not in state and original in state:
            state[alias] = state[original]
    return state


def _read_pickle(path: Path) -> dict[str, torch.Tensor]:
    size = _nonempty_size(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise  # weights_only refused something (code, unknown types): keep torch's own explanation
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise _damaged(path, size, "PyTorch weights", error) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a dict of weights")
    return state


def _nonempty_size(path: Path) -> int:
    """The weights file's size in bytes; `CheckpointError` if it is empty."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): an interrupted write or copy; {_FIX}")
    return size


def _damaged(path: Path, size: int, kind: str, error: Exception) -> CheckpointError:
    """The error for a weights file that its reader refused: `kind` names the format."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return CheckpointError(
        f"{path} ({size:,} bytes) is not a readable {kind} file ({detail}); it is probably "
        f"truncated or damaged: {_FIX}"
    )
