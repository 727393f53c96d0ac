"""Damaged checkpoints: one clear `CheckpointError` naming the file, never a raw library error."""

from __future__ import annotations

import shutil

import pytest
import torch

from gliner_core import GLiNER
from gliner_core.errors import CheckpointError


@pytest.fixture(scope="module")
def checkpoint(minilm_path, tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("good")
    GLiNER.from_backbone(minilm_path, hidden_size=32, max_len=32).save_pretrained(path)
    return path


@pytest.fixture
def copy(checkpoint, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(checkpoint, target)
    return target


def no_chained_error(error: BaseException) -> bool:
    """Nothing of the library's own traceback is printed with it."""
    return error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def load_error(path) -> str:
    with pytest.raises(CheckpointError) as caught:
        GLiNER.from_pretrained(path)
    assert no_chained_error(caught.value)  # no chained library traceback
    return str(caught.value)


@pytest.mark.parametrize("keep", [0.5, 0.001])
def test_truncated_safetensors(copy, keep):
    weights = copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * keep)])  # an interrupted copy: the header or the data cut off
    message = load_error(copy)
    assert str(weights) in message and "truncated" in message


def test_empty_safetensors(copy):
    (copy / "model.safetensors").write_bytes(b"")
    assert "empty" in load_error(copy)


def test_garbage_safetensors(copy):
    (copy / "model.safetensors").write_bytes(b"<html>404 Not Found</html>" * 10)
    assert "safetensors" in load_error(copy)


def test_truncated_pytorch_bin(copy, checkpoint):
    (copy / "model.safetensors").unlink()
    weights = GLiNER.from_pretrained(checkpoint).model.state_dict()
    torch.save(weights, copy / "pytorch_model.bin")
    assert GLiNER.from_pretrained(copy) is not None  # the intact file loads
    data = (copy / "pytorch_model.bin").read_bytes()
    (copy / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    message = load_error(copy)
    assert "pytorch_model.bin" in message and "truncated" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "empty"),
        ('{"model_name": "x", "max_width": 12', "not valid JSON"),  # cut off mid-write
        ("[1, 2, 3]", "JSON object"),
        ('{"max_width": 12}', "missing model_name"),
        ('{"model_name": "x", "max_width": "wide"}', "max_width"),
    ],
)
def test_bad_config(copy, content, expected):
    (copy / "gliner_config.json").write_text(content)
    message = load_error(copy)
    assert "gliner_config.json" in message and expected in message


def test_weights_that_do_not_fit_the_config(copy):
    config = (copy / "gliner_config.json").read_text().replace('"hidden_size": 32', '"hidden_size": 48')
    (copy / "gliner_config.json").write_text(config)
    message = load_error(copy)
    assert "do not fit gliner_config.json" in message and "size mismatch" in message
