"""Export a GLiNER checkpoint to ONNX for serving; dynamic int8 quantization and its F1 check.

    from gliner_core.onnx_export import export_onnx
    result = export_onnx("runs/ft/best/model", "serving/model", quantize="int8",
                         gold="gold_dev.jsonl", max_f1_drop=0.01)
    result.int8_check.accepted    # False: the int8 graph was removed, fp32 is served

The export folder is self-contained: `model.onnx` (and `model_int8.onnx`; a bi-encoder
also `labels_encoder*.onnx`), `gliner_config.json`, the tokenizer files and `onnx.json`
(the files of each precision and what the export checked). Load it with
`gliner_core.load(folder, backend="onnx", precision="fp32" | "int8")`.

Only the tensor part is exported (`gliner_core.onnx_graph.GraphModel`: encoder and heads
to logits, with dynamic batch, token, word and label axes, through the torch.export-based
exporter); word splitting, prompts, windows and decoding stay the `Predictor`'s Python. Every
export runs the new graph on probe sentences it was not traced on and compares its
logits with torch's: a difference above `tolerance` fails the export.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from gliner_core.gliner import GLiNER
from gliner_core.metrics import evaluate_spans
from gliner_core.model import BiEncoder
from gliner_core.onnx_graph import GraphModel, LabelGraph
from gliner_core.onnx_runtime import (
    LABEL_INPUT,
    LABEL_TEXT_INPUTS,
    LABELS_EMBEDS,
    MANIFEST_FILE,
    TEXT_INPUTS,
    Manifest,
    OnnxGLiNER,
    graph_inputs,
)
from gliner_core.predictor import Predictor
from gliner_core.processing import LABELS_TOKENIZER_DIR, Labels, collate, normalize_labels
from gliner_core.text import split_words

MODEL_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
LABELS_MODEL_FILE = "labels_encoder.onnx"
LABELS_INT8_FILE = "labels_encoder_int8.onnx"
DEFAULT_OPSET = 18
DEFAULT_TOLERANCE = 1e-3  # largest |ONNX - torch| logit allowed, relative to max(1, largest |logit|)

# Trace inputs: two rows and three labels, so that no dynamic axis has size 1 (which
# torch.export would fix). The probe has other sizes, to show the axes stay dynamic.
TRACE_TEXTS = ["Ada Lovelace wrote notes in London.", "Alan Turing worked at Bletchley Park in 1940."]
TRACE_LABELS = ["person", "location", "date"]
PROBE_TEXTS = [
    "Barack Obama was born in Honolulu, Hawaii, on August 4, 1961.",
    "Guido van Rossum created Python at CWI in Amsterdam; later he joined Google and Dropbox.",
    "Zoë Kravitz and Björk met in Reykjavík — or was it São Paulo?",
    "Apple",
]
PROBE_LABELS = ["person", "organization", "location", "date", "programming language"]


@dataclass(frozen=True)
class Int8Check:
    """Micro F1 of the int8 graph against the fp32 graph on a gold set, and the verdict."""

    f1_fp32: float
    f1_int8: float
    delta: float  # f1_int8 - f1_fp32 (negative: int8 loses F1)
    max_f1_drop: float  # the largest loss accepted
    accepted: bool  # delta >= -max_f1_drop
    texts: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OnnxExport:
    """What `export_onnx` wrote."""

    directory: Path
    files: dict[str, dict[str, str]]  # precision -> {"model": file[, "labels_encoder": file]}
    max_logit_diff: dict[str, float]  # precision -> largest |ONNX - torch| logit on the probe
    int8_check: Int8Check | None
    seconds: float


def export_onnx(
    checkpoint: str | Path,
    output: str | Path,
    quantize: str | None = None,
    gold: str | Path | Sequence[Mapping] | None = None,
    labels: Labels | None = None,
    max_f1_drop: float = 0.01,
    threshold: float = 0.5,
    opset: int = DEFAULT_OPSET,
    tolerance: float = DEFAULT_TOLERANCE,
    overwrite: bool = False,
) -> OnnxExport:
    """Export `checkpoint` (a folder `GLiNER.from_pretrained` loads) to the folder `output`.

    `quantize="int8"` adds a dynamically quantized graph (int8 weights, `quantize_dynamic`);
    with `gold` (JSONL path or rows `{"text", "spans": [{"start", "end", "label"}]}`) it is
    kept only if its micro F1 is at most `max_f1_drop` below fp32's (`check_int8`, at
    `threshold`, with `labels`: names or {name: prompt}, default the gold labels).
    The folder is written beside `output` and moved into place when complete, so a failed
    export leaves nothing half-written; an existing `output` needs `overwrite=True`.
    """
    started = time.perf_counter()
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    if gold is not None and quantize is None:
        raise ValueError("gold is for the int8 check: pass quantize='int8' too, or leave gold out")
    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} already exists: choose another folder or pass overwrite=True")
    if not Path(checkpoint).is_dir():
        raise FileNotFoundError(f"{checkpoint} is not a checkpoint folder (with gliner_config.json)")
    gold_rows = read_gold(gold) if gold is not None else None
    model = GLiNER.from_pretrained(checkpoint)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        files, diffs = _write_export(model, staging, quantize, opset, tolerance)
        manifest = Manifest(
            architecture=model.config.architecture(),
            files=files,
            opset=opset,
            exporter="torch.onnx.export(dynamo=True)",
            torch_version=torch.__version__,
            max_logit_diff=diffs,
        )
        manifest.write(staging)
        _replace(output, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    check = None
    if gold_rows is not None:
        check = check_int8(output, gold_rows, labels, max_f1_drop, threshold)
    manifest = Manifest.read(output)
    return OnnxExport(output, manifest.files, diffs, check, time.perf_counter() - started)


def _replace(output: Path, staging: Path) -> None:
    """Move the finished `staging` folder to `output`; an old `output` is removed only after."""
    if not output.exists():
        staging.rename(output)
        return
    old = output.with_name(f"{staging.name}.old")
    output.rename(old)
    try:
        staging.rename(output)
    except BaseException:
        old.rename(output)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_export(
    model: GLiNER, directory: Path, quantize: str | None, opset: int, tolerance: float
) -> tuple[dict[str, dict[str, str]], dict[str, float]]:
    """Graphs, tokenizer(s) and config into `directory`; each graph checked on the probe."""
    graph = GraphModel(model.model).eval()
    files = {"fp32": {"model": MODEL_FILE}}
    if isinstance(model.model, BiEncoder):
        files["fp32"]["labels_encoder"] = LABELS_MODEL_FILE
        label_limit = _token_limit(model.labels_tokenizer, model.config.labels_encoder_config)
        _export(
            LabelGraph(model.model).eval(),
            _label_args(model, TRACE_LABELS),
            directory / LABELS_MODEL_FILE,
            opset,
            label_limit,
        )
    text_args = _text_args(model, TRACE_TEXTS, TRACE_LABELS)
    _export(graph, text_args, directory / MODEL_FILE, opset, model.inputs.max_tokens)
    if quantize == "int8":
        files["int8"] = {"model": INT8_FILE}
        _quantize(directory / MODEL_FILE, directory / INT8_FILE)
        if model.config.is_bi_encoder:
            files["int8"]["labels_encoder"] = LABELS_INT8_FILE
            _quantize(directory / LABELS_MODEL_FILE, directory / LABELS_INT8_FILE)
    model.tokenizer.save_pretrained(str(directory))
    if model.labels_tokenizer is not None:
        model.labels_tokenizer.save_pretrained(str(directory / LABELS_TOKENIZER_DIR))
    model.config.to_json_file(directory)
    diffs = {}
    for precision, names in files.items():
        diffs[precision] = _probe_diff(model, directory, names)
    scale = max(1.0, _probe_scale(model))
    if diffs["fp32"] > tolerance * scale:
        raise RuntimeError(
            f"the ONNX graph's logits differ from torch's by {diffs['fp32']:.2e} (largest logit {scale:.1f}, "
            f"tolerance {tolerance:g} of it): the export is wrong; report it with the checkpoint's config"
        )
    return files, diffs


def _text_args(model: GLiNER, texts: list[str], labels: list[str]) -> tuple[torch.Tensor, ...]:
    label_set = normalize_labels(labels)
    windows = model.inputs.windows([split_words(t) for t in texts], label_set)
    inputs = {
        k: torch.from_numpy(v) for k, v in graph_inputs(collate(windows, _pad(model)), model.config).items()
    }
    if model.config.is_bi_encoder:
        labels_arg = model.encode_labels(label_set.prompts).cpu()
    else:
        labels_arg = inputs[LABEL_INPUT]
    return (*(inputs[name] for name in TEXT_INPUTS), labels_arg)


def _label_args(model: GLiNER, labels: list[str]) -> tuple[torch.Tensor, ...]:
    tokens = model.inputs.tokenize_labels(labels)
    return tokens["input_ids"], tokens["attention_mask"]


def _pad(model: GLiNER) -> int:
    return model.tokenizer.pad_token_id or 0


def _token_limit(tokenizer: Any, encoder_config: dict | None) -> int:
    """Most tokens an encoder takes: the tokenizer's limit and its absolute position embeddings."""
    limits = [tokenizer.model_max_length if 0 < tokenizer.model_max_length < 100_000 else 512]
    if encoder_config and encoder_config.get("position_embedding_type", "absolute") == "absolute":
        limits.append(int(encoder_config.get("max_position_embeddings") or limits[0]))
    return min(limits)


def _export(
    module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path, opset: int, max_tokens: int
) -> None:
    """`torch.onnx.export` with every axis but the hidden one dynamic (tokens up to `max_tokens`)."""
    Dim = torch.export.Dim
    if isinstance(module, LabelGraph):
        texts, tokens = Dim("label_texts", min=1), Dim("label_tokens", min=1, max=max_tokens)
        names: list[str] = list(LABEL_TEXT_INPUTS)
        shapes: dict[str, Any] = {
            "labels_input_ids": {0: texts, 1: tokens},
            "labels_attention_mask": {0: texts, 1: tokens},
        }
        outputs = [LABELS_EMBEDS]
    else:
        batch, seq, words, labels = (
            Dim("batch", min=1),
            Dim("tokens", min=2, max=max_tokens),
            Dim("words", min=1),
            Dim("labels", min=1),
        )
        bi_encoder = isinstance(module, GraphModel) and module.bi_encoder
        names = [*TEXT_INPUTS, LABELS_EMBEDS if bi_encoder else LABEL_INPUT]
        shapes = {
            "input_ids": {0: batch, 1: seq},
            "attention_mask": {0: batch, 1: seq},
            "word_index": {0: batch, 1: words},
            "text_lengths": {0: batch},
            "labels": {0: labels} if bi_encoder else {0: batch, 1: labels},
        }
        outputs = ["logits"]
    weights = sum(p.numel() * p.element_size() for p in module.parameters())
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            args,
            input_names=names,
            output_names=outputs,
            dynamic_shapes=shapes,
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
        assert program is not None
        # one file while it fits protobuf's 2 GiB limit; larger models keep weights beside it
        program.save(str(path), external_data=weights > 1_800_000_000)
    _check_dynamic(path, shapes, names)


def _check_dynamic(path: Path, shapes: dict[str, Any], names: list[str]) -> None:
    """Fail if the exporter fixed an axis that was asked to be dynamic (it may fall back to that)."""
    import onnx

    inputs = {i.name: i for i in onnx.load(str(path), load_external_data=False).graph.input}
    for name, axes in zip(names, shapes.values(), strict=True):
        dims = inputs[name].type.tensor_type.shape.dim
        for axis, dim in axes.items():
            if not dims[axis].dim_param:
                axis_name = getattr(dim, "__name__", "")
                raise RuntimeError(
                    f"the exporter fixed axis {axis} ({axis_name}) of {name} to {dims[axis].dim_value}: "
                    "an op in the graph does not trace with dynamic shapes"
                )


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8: int8 weights, activations quantized per call (`quantize_dynamic`).

    Only the matrix products with a weight (MatMul, Gemm: the encoder's and the heads' linear
    layers, nearly all the compute) are quantized; the embedding table and the word LSTM stay
    float32. On a CoNLL-trained MiniLM model that kept micro F1 (+0.009 on 300 dev sentences),
    where quantizing every op (embeddings, LSTM) lost 0.012, and uint8 weights 0.036.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
    )


def _probe_diff(model: GLiNER, directory: Path, files: dict[str, str]) -> float:
    """Largest |ONNX - torch| logit over real words and spans of the probe batch."""
    from gliner_core.onnx_runtime import _session

    args = _text_args(model, PROBE_TEXTS, PROBE_LABELS)
    session = _session(directory / files["model"], None, None)
    feed = dict(zip([i.name for i in session.get_inputs()], (a.numpy() for a in args), strict=True))
    if model.config.is_bi_encoder:
        # the label graph of this precision makes the label vectors, as in serving
        label_session = _session(directory / files["labels_encoder"], None, None)
        label_args = _label_args(model, PROBE_LABELS)
        feed[LABELS_EMBEDS] = label_session.run(
            None, dict(zip(LABEL_TEXT_INPUTS, (a.numpy() for a in label_args), strict=True))
        )[0]
    logits = torch.from_numpy(session.run(None, feed)[0])
    reference, mask = _torch_logits(model, PROBE_TEXTS, PROBE_LABELS)
    return float((logits - reference).abs()[mask].max())


def _probe_scale(model: GLiNER) -> float:
    reference, mask = _torch_logits(model, PROBE_TEXTS, PROBE_LABELS)
    return float(reference.abs()[mask].max())


@torch.inference_mode()
def _torch_logits(model: GLiNER, texts: list[str], labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The torch model's logits for texts in one batch, and where they are real (word or span mask)."""
    label_set = normalize_labels(labels)
    windows = model.inputs.windows([split_words(t) for t in texts], label_set)
    inputs = collate(windows, _pad(model)).model_inputs("cpu")
    if model.config.is_bi_encoder:
        inputs["labels_embeds"] = model.encode_labels(label_set.prompts).cpu()
    out = model.model(**inputs)
    mask = out.word_mask if model.config.is_token_level else out.span_mask
    return out.logits, mask


# -- int8 check ---------------------------------------------------------------------------------


def read_gold(gold: str | Path | Sequence[Mapping]) -> list[dict]:
    """Gold rows `{"text", "spans": [{"start", "end", "label"}]}` from a JSONL file or a list."""
    if isinstance(gold, (str, Path)):
        path = Path(gold)
        if not path.is_file():
            raise FileNotFoundError(f"gold file {path} does not exist")
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON ({error.msg})") from error
        source = str(path)
    else:
        rows, source = [dict(row) for row in gold], "gold rows"
    for number, row in enumerate(rows, 1):
        if not isinstance(row.get("text"), str) or not isinstance(row.get("spans"), list):
            raise ValueError(f"{source}: row {number} needs 'text' (string) and 'spans' (list)")
        for span in row["spans"]:
            if not {"start", "end", "label"} <= set(span):
                raise ValueError(f"{source}: row {number} has a span without start, end and label: {span}")
    if not rows:
        raise ValueError(f"{source} has no rows: the int8 check needs a gold set")
    return rows


def _micro_f1(model: Predictor, gold: list[dict], labels: Labels, threshold: float, batch_size: int) -> float:
    names = list(labels)  # a mapping's keys are the label names
    predicted = model.batch_predict_entities(
        [row["text"] for row in gold], labels, batch_size=batch_size, threshold=threshold
    )
    return evaluate_spans(
        [[(s["start"], s["end"], s["label"]) for s in row["spans"]] for row in gold],
        [[(e["start"], e["end"], e["label"]) for e in found] for found in predicted],
        names,
    ).micro_f1


def check_int8(
    export_dir: str | Path,
    gold: str | Path | Sequence[Mapping],
    labels: Labels | None = None,
    max_f1_drop: float = 0.01,
    threshold: float = 0.5,
    batch_size: int = 8,
    remove_refused: bool = True,
) -> Int8Check:
    """Micro F1 of the folder's int8 and fp32 graphs on `gold`; refuse int8 if it loses too much.

    Accepted when `f1_int8 >= f1_fp32 - max_f1_drop`. The verdict is recorded in the folder's
    `onnx.json`; a refused int8 graph is deleted (`remove_refused`), so that loading it
    (`precision="int8"`) fails with the reason instead of serving a worse model.
    """
    if max_f1_drop < 0:
        raise ValueError(f"max_f1_drop must be >= 0, got {max_f1_drop}")
    directory = Path(export_dir)
    rows = read_gold(gold)
    if labels is None:
        labels = sorted({str(s["label"]) for row in rows for s in row["spans"]})
        if not labels:
            raise ValueError("the gold rows have no spans: pass labels to check against")
    f1 = {
        precision: _micro_f1(
            OnnxGLiNER.from_pretrained(directory, precision), rows, labels, threshold, batch_size
        )
        for precision in ("fp32", "int8")
    }
    delta = f1["int8"] - f1["fp32"]
    check = Int8Check(f1["fp32"], f1["int8"], delta, max_f1_drop, delta >= -max_f1_drop, len(rows))
    manifest = Manifest.read(directory)
    manifest.int8_check = check.to_dict()
    if not check.accepted and remove_refused:
        for name in manifest.files.pop("int8").values():
            (directory / name).unlink(missing_ok=True)
        manifest.refused["int8"] = (
            f"refused by the int8 check: micro F1 {check.f1_fp32:.4f} (fp32) -> {check.f1_int8:.4f} (int8) "
            f"on {check.texts} gold texts, more than the allowed drop of {max_f1_drop:g}; serve fp32"
        )
    manifest.write(directory)
    return check


__all__ = [
    "INT8_FILE",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "Int8Check",
    "OnnxExport",
    "check_int8",
    "export_onnx",
    "read_gold",
]
