"""Hub ids: checkpoints and their encoders from a local hub cache, offline; clear errors when absent.

The cache is built in the test with huggingface_hub's layout
(`models--org--name/snapshots/<rev>/...` + `refs/main`), so nothing downloads.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gliner_core import GLiNER
from gliner_core.errors import ModelNotFoundError
from gliner_core.hub import is_hub_id, model_source

REPO = Path(__file__).resolve().parents[1]
ENCODER_ID = "sentence-transformers/all-MiniLM-L6-v2"
TEXT = "Ada Lovelace met Charles Babbage in London in 1833."
LABELS = ["person", "city", "date"]


def add_to_cache(cache: Path, repo_id: str, files: dict[str, Path | bytes]) -> Path:
    """One cached snapshot of `repo_id`, as huggingface_hub lays it out; returns the snapshot folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    revision = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for name, content in files.items():
        target = snapshot / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.symlink_to(content)  # the hub cache links snapshots to blobs, too
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return snapshot


@pytest.fixture(scope="module")
def original(minilm_path):
    torch.manual_seed(0)
    model = GLiNER.from_backbone(minilm_path, hidden_size=32, max_len=32)
    with torch.no_grad():
        model.model.prompt_rep_layer[3].weight.mul_(40.0)
    return model


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory, minilm_path, original) -> Path:
    """HF_HOME with a hub cache holding the MiniLM encoder (tokenizer + config) and three checkpoints."""
    home = tmp_path_factory.mktemp("hf_home")
    cache = home / "hub"
    encoder = Path(minilm_path)
    add_to_cache(
        cache,
        ENCODER_ID,
        {
            name: encoder / name
            for name in (
                "config.json",
                "tokenizer.json",
                "tokenizer_config.json",
                "vocab.txt",
                "model.safetensors",
            )
        },
    )
    saved = tmp_path_factory.mktemp("saved")
    original.save_pretrained(saved)
    settings = json.loads((saved / "gliner_config.json").read_text())
    weights = saved / "model.safetensors"
    # ours, complete (tokenizer files and encoder_config inside)
    add_to_cache(cache, "testorg/gliner-full", {p.name: p for p in saved.iterdir()})
    # as official hub checkpoints are: config + weights only, the encoder named by model_name
    official_style = {**settings, "model_name": ENCODER_ID, "encoder_config": None}
    official_style.update(class_token_index=-1, vocab_size=-1)
    add_to_cache(
        cache,
        "testorg/gliner-tiny",
        {"gliner_config.json": json.dumps(official_style).encode(), "model.safetensors": weights},
    )
    # the same, but with the special token ids recorded in the config
    indexed = {**settings, "model_name": ENCODER_ID, "encoder_config": None}
    add_to_cache(
        cache,
        "testorg/gliner-indexed",
        {"gliner_config.json": json.dumps(indexed).encode(), "model.safetensors": weights},
    )
    # an encoder that is not in the cache
    orphan = {**settings, "model_name": "nobody/no-encoder", "encoder_config": None}
    add_to_cache(
        cache,
        "testorg/gliner-orphan",
        {"gliner_config.json": json.dumps(orphan).encode(), "model.safetensors": weights},
    )
    return home


@pytest.fixture
def hub_env(hf_home, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hf_home


def test_hub_id_or_local_path(tmp_path):
    assert is_hub_id("urchade/gliner_small-v2.1")
    assert is_hub_id("knowledgator/gliner-multitask-v1.0")
    for path in ("./model", "/abs/model", "~/model", "runs/x/champion", "a\\b", "", "org/na..me", "org/--x"):
        assert not is_hub_id(path), path
    assert not is_hub_id("bert-base-cased") and is_hub_id("bert-base-cased", require_namespace=False)
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "name").mkdir()
    os.chdir(tmp_path)  # "org/name" exists here: a local path wins
    try:
        assert not is_hub_id("org/name") and model_source("org/name") == "local"
    finally:
        os.chdir(REPO)
    assert model_source(tmp_path) == "local"
    assert model_source("urchade/gliner_small-v2.1") == "hub"
    with pytest.raises(ModelNotFoundError, match="neither a local folder"):
        model_source(tmp_path / "missing" / "champion")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        model_source(tmp_path / "file.txt")


@pytest.mark.parametrize("repo_id", ["testorg/gliner-full", "testorg/gliner-tiny", "testorg/gliner-indexed"])
def test_load_a_hub_id_offline_from_the_cache(hub_env, original, repo_id):
    model = GLiNER.from_pretrained(repo_id)
    expected = original.predict_entities(TEXT, LABELS, threshold=0.3)
    assert expected, "the comparison needs entities"
    assert model.predict_entities(TEXT, LABELS, threshold=0.3) == expected
    if repo_id != "testorg/gliner-full":
        assert model.config.model_name == ENCODER_ID  # the id, not the cache path


def test_from_backbone_with_a_hub_id(hub_env):
    model = GLiNER.from_backbone(ENCODER_ID, hidden_size=16, max_len=16)
    assert model.config.model_name == ENCODER_ID
    assert model.predict_entities(TEXT, LABELS, threshold=0.0)


def no_chained_error(error: BaseException) -> bool:
    """Nothing of huggingface_hub's own traceback is printed with it."""
    return error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def assert_one_clear_error(caught, *needles: str) -> str:
    message = str(caught.value)
    assert no_chained_error(caught.value)
    for needle in needles:
        assert needle in message, (needle, message)
    return message


def test_unknown_id_offline_is_one_clear_error(hub_env):
    with pytest.raises(ModelNotFoundError) as caught:
        GLiNER.from_pretrained("testorg/not-there")
    assert_one_clear_error(
        caught,
        "'testorg/not-there'",
        "HF_HUB_OFFLINE=1",
        str(hub_env / "hub"),
        "hf download testorg/not-there",
        "local folder",
    )


def test_missing_encoder_of_a_hub_checkpoint_is_named(hub_env):
    with pytest.raises(ModelNotFoundError) as caught:
        GLiNER.from_pretrained("testorg/gliner-orphan")
    assert_one_clear_error(caught, "encoder of testorg/gliner-orphan", "'nobody/no-encoder'", "hf download")


def test_a_path_that_is_not_a_hub_id_is_not_looked_up(hub_env, tmp_path):
    with pytest.raises(ModelNotFoundError, match="neither a local folder"):
        GLiNER.from_pretrained(tmp_path / "runs" / "champion")


def test_a_fresh_process_with_hf_home_and_offline(hub_env):
    """The environment as a user sets it, read when huggingface_hub is first imported; no traceback noise."""
    script = (
        "from gliner_core import GLiNER\n"
        f"print(len(GLiNER.from_pretrained('testorg/gliner-tiny').predict_entities({TEXT!r}, {LABELS!r}, "
        "threshold=0.3)))\n"
        "GLiNER.from_pretrained('testorg/not-there')\n"
    )
    env = {**os.environ, "HF_HOME": str(hub_env), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 1
    assert int(done.stdout.strip()) > 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("gliner_core.errors.ModelNotFoundError: model 'testorg/not-there'"), last
    assert "site-packages/huggingface_hub" not in done.stderr  # no frame of the library's own traceback
    assert "During handling of the above exception" not in done.stderr
