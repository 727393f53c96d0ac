"""ONNX export and the ONNX Runtime backend: same logits and entities as torch; int8 and its F1 check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import gliner_core
from gliner_core import GLiNER, Predictor
from gliner_core.onnx_export import (
    INT8_FILE,
    MODEL_FILE,
    check_int8,
    export_onnx,
    read_gold,
)
from gliner_core.onnx_runtime import MANIFEST_FILE, OnnxGLiNER, graph_inputs
from gliner_core.processing import collate, normalize_labels
from gliner_core.text import split_words
from tests.official import build_official
from tests.test_parity import LABELS, TEXTS, assert_same_entities

SHORT = TEXTS[:-1]  # one window each at max_len 48; TEXTS[-1] is cut into several
LOGIT_TOLERANCE = 1e-4  # |ONNX fp32 - torch| on real words and spans (float32 rounding)

ARCHITECTURES = {
    # random heads scaled (tests/official.py) so that scores spread around the thresholds;
    # the seeds of tests/test_parity.py and tests/test_token_model.py, whose spreads are checked
    "span": {"seed": 0, "hidden_size": 256},
    "token": {"seed": 1, "hidden_size": 256, "span_mode": "token_level", "probe": (SHORT, LABELS)},
    # text graph + label encoder graph (tests/test_biencoder.py's settings)
    "bi_span": {"seed": 2, "hidden_size": 256, "labels_encoder": None},
}
PARAMS = [pytest.param(name, marks=pytest.mark.slow) if name == "bi_span" else name for name in ARCHITECTURES]


@pytest.fixture(scope="module", params=PARAMS)
def exported(request, tmp_path_factory, minilm_path) -> tuple[str, Path, Path]:
    """(name, torch checkpoint, its ONNX export with int8): exported once per architecture."""
    root = tmp_path_factory.mktemp(f"onnx_{request.param}")
    config = dict(ARCHITECTURES[request.param])
    if "labels_encoder" in config:
        config["labels_encoder"] = minilm_path
    model = build_official(minilm_path, max_len=48, **config)
    model.save_pretrained(root / "checkpoint")
    export_onnx(root / "checkpoint", root / "export", quantize="int8")
    return request.param, root / "checkpoint", root / "export"


@pytest.fixture(scope="module")
def models(exported) -> tuple[GLiNER, OnnxGLiNER]:
    _, checkpoint, export = exported
    return GLiNER.from_pretrained(checkpoint), OnnxGLiNER.from_pretrained(export)


def test_export_folder_serves_without_torch_weights(exported, tmp_path):
    _, _, export = exported
    names = {p.name for p in export.iterdir()}
    assert {MODEL_FILE, INT8_FILE, MANIFEST_FILE, "gliner_config.json", "tokenizer.json"} <= names
    assert not [n for n in names if n.endswith((".safetensors", ".bin", ".pt"))]
    moved = shutil.copytree(export, tmp_path / "elsewhere")  # nothing points back to the checkpoint
    model = gliner_core.load(moved, backend="onnx")
    assert isinstance(model, OnnxGLiNER) and model.precision == "fp32"
    assert model.predict_entities(TEXTS[0], LABELS) == gliner_core.load(
        export, backend="onnx"
    ).predict_entities(TEXTS[0], LABELS)
    manifest = json.loads((export / MANIFEST_FILE).read_text())
    assert manifest["max_logit_diff"]["fp32"] <= LOGIT_TOLERANCE


def test_logits_match_torch(exported, models):
    name, _, _ = exported
    ours, onnx = models
    # other texts, batch size and label count than the export traced: the axes are dynamic
    label_set = normalize_labels(LABELS)
    windows = ours.inputs.windows([split_words(t) for t in SHORT], label_set)
    with torch.inference_mode():
        expected = ours._forward(windows, ours._label_vectors(label_set, None))
    got = onnx._forward(windows, onnx._label_vectors(label_set, None))
    assert got.logits.shape == expected.logits.shape
    mask = expected.word_mask if name == "token" else expected.span_mask
    assert torch.equal(mask, got.word_mask if name == "token" else got.span_mask)
    diff = (got.logits - expected.logits).abs()[mask].max().item()
    assert diff <= LOGIT_TOLERANCE, f"max |ONNX - torch| logit {diff:.2e}"
    probs = torch.sigmoid(expected.logits)[mask]
    assert 0.05 < (probs > 0.5).float().mean() < 0.95, "heads should give a spread of scores"


@pytest.mark.parametrize(
    "options",
    [
        {"threshold": 0.5, "flat_ner": True, "multi_label": False},
        {"threshold": 0.3, "flat_ner": False, "multi_label": False},
        {"threshold": 0.4, "flat_ner": False, "multi_label": True},
    ],
)
def test_same_entities_as_torch(models, options):
    ours, onnx = models
    texts = [*TEXTS, " ".join(TEXTS[1:3] * 3)]  # the last two are read in several windows
    expected = ours.batch_predict_entities(texts, LABELS, batch_size=3, **options)
    got = onnx.batch_predict_entities(texts, LABELS, batch_size=3, **options)
    assert sum(map(len, expected)) > 10
    assert_same_entities(got, expected, texts)
    assert onnx.predict_entities(texts[1], LABELS, **options) == got[1]


def test_int8_check_measures_and_refuses(exported, models, tmp_path):
    _, _, export = exported
    ours, _ = models
    # gold = the torch model's own entities: fp32 ONNX scores 1.0, int8 shows what quantization costs
    found = ours.batch_predict_entities(SHORT, LABELS)
    gold = [{"text": t, "spans": e} for t, e in zip(SHORT, found, strict=True)]
    assert sum(len(g["spans"]) for g in gold) > 5
    int8 = gliner_core.load(export, backend="onnx", precision="int8")
    assert len(int8.batch_predict_entities(SHORT, LABELS)) == len(SHORT)

    folder = shutil.copytree(export, tmp_path / "copy")
    lenient = check_int8(folder, gold, LABELS, max_f1_drop=1.0)
    assert lenient.f1_fp32 == 1.0 and 0.0 <= lenient.f1_int8 < 1.0  # heads scaled x150 magnify int8 error
    assert lenient.delta == pytest.approx(lenient.f1_int8 - 1.0) and lenient.accepted
    assert (folder / INT8_FILE).is_file()

    strict = check_int8(folder, gold, LABELS, max_f1_drop=0.0)
    assert not strict.accepted and strict.f1_int8 == lenient.f1_int8
    assert not (folder / INT8_FILE).exists()
    with pytest.raises(FileNotFoundError, match="refused by the int8 check"):
        gliner_core.load(folder, backend="onnx", precision="int8")
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["int8_check"]["accepted"] is False
    gliner_core.load(folder, backend="onnx")  # fp32 still serves


def test_graph_inputs_index_words_and_labels(models):
    ours, _ = models
    if ours.config.is_bi_encoder:
        pytest.skip("a bi-encoder's prompt has no labels: its graph takes label vectors")
    windows = ours.inputs.windows(
        [split_words("Ada met Alan"), split_words("Paris")], normalize_labels(LABELS)
    )
    batch = collate(windows, ours.tokenizer.pad_token_id)
    inputs = graph_inputs(batch, ours.config)
    words, labels = inputs["word_index"], inputs["label_index"]
    assert words.shape == (2, 3) and words[1, 1:].tolist() == [-1, -1]  # "Paris" has one word
    assert batch.words_mask[0, words[0]].tolist() == [1, 2, 3]  # each word's first subtoken
    assert labels.shape == (2, len(LABELS))
    assert (batch.input_ids.gather(1, torch.from_numpy(labels)) == ours.config.class_token_index).all()


def test_load_picks_the_backend(exported):
    _, checkpoint, export = exported
    torch_model, onnx_model = gliner_core.load(checkpoint), gliner_core.load(export, backend="onnx")
    assert type(torch_model) is GLiNER and type(gliner_core.load(checkpoint, backend="torch")) is GLiNER
    assert type(onnx_model) is OnnxGLiNER and onnx_model.precision == "fp32"
    # siblings under one base: the torch class does not know the ONNX one
    assert isinstance(onnx_model, Predictor) and not isinstance(onnx_model, GLiNER)
    assert gliner_core.load(export, backend="onnx", precision="int8").precision == "int8"
    with pytest.raises(ValueError, match="backend must be one of"):
        gliner_core.load(checkpoint, backend="tensorrt")


def test_torch_loader_points_to_load_for_onnx(exported):
    _, checkpoint, export = exported
    to_load = r"gliner_core\.load\(path, backend='onnx'"
    for path in (export, checkpoint):
        with pytest.raises(ValueError, match=r"torch checkpoints only.*" + to_load + r"\)"):
            GLiNER.from_pretrained(path, backend="onnx")
    with pytest.raises(ValueError, match=to_load + r", precision='int8'\)"):
        GLiNER.from_pretrained(checkpoint, precision="int8")
    with pytest.raises(FileNotFoundError, match=r"ONNX export.*" + to_load + r"\)"):
        GLiNER.from_pretrained(export)  # no torch weights to load


def test_clear_errors(exported, tmp_path):
    _, checkpoint, export = exported
    with pytest.raises(FileNotFoundError, match="not a directory"):
        gliner_core.load(tmp_path / "missing", backend="onnx")
    with pytest.raises(FileNotFoundError, match="torch checkpoint"):
        gliner_core.load(checkpoint, backend="onnx")
    with pytest.raises(ValueError, match="precision must be one of"):
        gliner_core.load(export, backend="onnx", precision="int4")
    with pytest.raises(FileNotFoundError, match="not a checkpoint folder"):
        export_onnx(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_onnx(checkpoint, export)
    with pytest.raises(ValueError, match="quantize must be"):
        export_onnx(checkpoint, tmp_path / "out", quantize="int4")
    bad = tmp_path / "gold.jsonl"
    bad.write_text('{"text": "a", "spans": []}\n{oops\n')
    with pytest.raises(ValueError, match=r"gold.jsonl:2: not JSON"):
        read_gold(bad)
    broken = shutil.copytree(export, tmp_path / "broken")
    (broken / MODEL_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="model.onnx is missing"):
        gliner_core.load(broken, backend="onnx")


def test_failed_export_keeps_the_old_folder(exported, tmp_path, monkeypatch):
    _, checkpoint, _ = exported
    target = tmp_path / "serving"
    target.mkdir()
    (target / "keep.txt").write_text("previous export")

    def fail(*args, **kwargs):
        raise RuntimeError("exporter failed")

    monkeypatch.setattr("gliner_core.onnx_export._export", fail)
    with pytest.raises(RuntimeError, match="exporter failed"):
        export_onnx(checkpoint, target, overwrite=True)
    assert (target / "keep.txt").read_text() == "previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["serving"]  # no staging folder left
