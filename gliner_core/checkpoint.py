"""Checkpoint files, interchangeable with the official `gliner` package.

A checkpoint is a directory with `gliner_config.json`, the weights
(`model.safetensors`, or an official `pytorch_model.bin` read with
`weights_only=True`, which cannot run code) and the tokenizer files, which
already hold the added `<<ENT>>`/`<<SEP>>` tokens.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

SAFETENSORS_FILE = "model.safetensors"
PICKLE_FILE = "pytorch_model.bin"


def resolve_model_dir(path_or_id: str | Path) -> Path:
    """A local checkpoint directory, or a hub id fetched into the local cache."""
    path = Path(path_or_id)
    if path.is_dir():
        return path
    if path.exists() or str(path_or_id).startswith((".", "/", "~")):
        raise FileNotFoundError(f"{path_or_id} is not a checkpoint directory")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(path_or_id)))


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


def load_weights(directory: Path) -> dict[str, torch.Tensor]:
    """Read the weights of a checkpoint directory without executing any code."""
    path = directory / SAFETENSORS_FILE
    if path.is_file():
        state: dict[str, torch.Tensor] = {}
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                state[key] = f.get_tensor(key)
        for alias, original in metadata.items():
            if alias not in state and original in state:
                state[alias] = state[original]
        return state
    path = directory / PICKLE_FILE
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"no {SAFETENSORS_FILE} or {PICKLE_FILE} in {directory}")
