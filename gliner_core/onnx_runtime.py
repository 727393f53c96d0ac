"""`OnnxGLiNER`: a GLiNER export folder run on ONNX Runtime, with the same prediction code.

An export folder (`gliner_core.onnx_export.export_onnx`) holds the graph(s), the
tokenizer files and `gliner_config.json`, and no torch weights. `OnnxGLiNER` is a
`Predictor` (`gliner_core.predictor`) whose forward pass is an ONNX Runtime session:
word splitting, prompts, windows, batching, thresholds and greedy decoding are the
code the torch `GLiNER` runs too, so the two backends differ only in how the logits
are computed.

    import gliner_core
    model = gliner_core.load("export/", backend="onnx")                     # fp32
    model = gliner_core.load("export/", backend="onnx", precision="int8")
    model.predict_entities("Alice moved to Paris.", ["person", "city"])
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from gliner_core.checkpoint import ONNX_MANIFEST_FILE
from gliner_core.config import CONFIG_FILE, GLiNERConfig
from gliner_core.model import SpanScores, TokenScores
from gliner_core.predictor import Predictor
from gliner_core.processing import (
    LABELS_TOKENIZER_DIR,
    Batch,
    Window,
    collate,
    prepare_labels_tokenizer,
    prepare_tokenizer,
)

MANIFEST_FILE = ONNX_MANIFEST_FILE  # what an export folder holds: graph files per precision, checks
PRECISIONS = ("fp32", "int8")
TEXT_INPUTS = ("input_ids", "attention_mask", "word_index", "text_lengths")
LABEL_INPUT = "label_index"  # uni-encoder: token position of each <<ENT>> (B, C)
LABELS_EMBEDS = "labels_embeds"  # bi-encoder: label vectors (C, D) from the label graph
LABEL_TEXT_INPUTS = ("labels_input_ids", "labels_attention_mask")  # bi-encoder label graph


@dataclass
class Manifest:
    """`onnx.json`: the graph files of each precision and what the export checked."""

    architecture: str
    files: dict[str, dict[str, str]]  # precision -> {"model": file, "labels_encoder": file}
    opset: int
    exporter: str
    torch_version: str
    max_logit_diff: dict[str, float] = field(default_factory=dict)  # precision -> |ONNX - torch| on a probe
    int8_check: dict[str, Any] | None = None  # `Int8Check.to_dict()` once checked
    refused: dict[str, str] = field(default_factory=dict)  # precision -> why it was removed

    def write(self, directory: Path) -> Path:
        path = directory / MANIFEST_FILE
        path.write_text(json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_FILE
        if not path.is_file():
            hint = (
                "it is a torch checkpoint: load it with gliner_core.load(path) (backend='torch'), or "
                "export it with gliner_core.onnx_export.export_onnx"
                if (directory / CONFIG_FILE).is_file()
                else "export a checkpoint with gliner_core.onnx_export.export_onnx"
            )
            raise FileNotFoundError(f"{directory} is not an ONNX export (no {MANIFEST_FILE}): {hint}")
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path} is not a valid ONNX export manifest ({error}): export again") from error


def word_index(batch: Batch) -> np.ndarray:
    """(B, L) token position of each word's first subtoken, -1 for padding and for a dropped word."""
    words_mask = batch.words_mask.numpy()
    B, L = words_mask.shape[0], int(batch.text_lengths.max())
    index = np.full((B, L), -1, dtype=np.int64)
    row, token = np.nonzero(words_mask > 0)
    index[row, words_mask[row, token] - 1] = token
    return index


def label_index(batch: Batch, class_token_index: int) -> np.ndarray:
    """(B, C) token position of each <<ENT>> in prompt order, -1 past a row's labels."""
    is_ent = (batch.input_ids.numpy() == class_token_index) & (batch.attention_mask.numpy() > 0)
    counts = is_ent.sum(1)
    index = np.full((is_ent.shape[0], int(counts.max()) if len(counts) else 0), -1, dtype=np.int64)
    row, token = np.nonzero(is_ent)
    index[row, np.cumsum(is_ent, axis=1)[row, token] - 1] = token
    return index


def graph_inputs(batch: Batch, config: GLiNERConfig) -> dict[str, np.ndarray]:
    """The text graph's inputs for a batch (a bi-encoder's `labels_embeds` are added by the caller)."""
    inputs = {
        "input_ids": batch.input_ids.numpy(),
        "attention_mask": batch.attention_mask.numpy(),
        "word_index": word_index(batch),
        "text_lengths": batch.text_lengths.numpy(),
    }
    if not config.is_bi_encoder:
        inputs[LABEL_INPUT] = label_index(batch, config.class_token_index)
    return inputs


def scores(
    logits: torch.Tensor, text_lengths: torch.Tensor, config: GLiNERConfig
) -> SpanScores | TokenScores:
    """The masks the torch models return beside their logits (see `SpanHead`, `TokenHead`)."""
    B, L = logits.shape[:2]
    C = logits.shape[2] if config.is_token_level else logits.shape[3]
    label_mask = torch.ones(B, C, dtype=torch.bool)  # every row of a prediction batch has all labels
    if config.is_token_level:
        word_mask = torch.arange(L)[None, :] < text_lengths[:, None]  # (B, L)
        return TokenScores(logits, word_mask, label_mask)
    span_end = torch.arange(L)[:, None] + torch.arange(config.max_width)  # (L, K)
    return SpanScores(logits, span_end[None] < text_lengths[:, None, None], label_mask)


def _session(path: Path, threads: int | None, providers: Sequence[str] | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(
        str(path), sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
    )


class OnnxGLiNER(Predictor):
    """A `Predictor` whose forward pass runs on ONNX Runtime; it holds no torch weights.

    `predict_entities`, `batch_predict_entities`, `score_candidates`, thresholds and
    (bi-encoder) `encode_labels` behave as the torch `GLiNER`'s; training and saving
    are torch-only (`GLiNER`).
    """

    def __init__(
        self,
        config: GLiNERConfig,
        session: Any,
        tokenizer: PreTrainedTokenizerBase,
        labels_tokenizer: PreTrainedTokenizerBase | None = None,
        labels_session: Any = None,
        precision: str = "fp32",
    ):
        if config.is_bi_encoder and (labels_tokenizer is None or labels_session is None):
            raise ValueError("a bi-encoder needs the tokenizer and the graph of its label encoder")
        super().__init__(config, tokenizer, labels_tokenizer)
        self.session = session  # onnxruntime.InferenceSession of the text graph
        self.labels_session = labels_session  # and of the label encoder's graph (bi-encoder)
        self.precision = precision

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | Path,
        precision: str = "fp32",
        threads: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> OnnxGLiNER:
        """Load an export folder: `precision` "fp32" or "int8" (if exported and not refused).

        `threads` sets ONNX Runtime's intra-op threads (default: one per physical core);
        `providers` its execution providers (default: CPU).
        """
        directory = Path(path_or_id)
        if not directory.is_dir():
            raise FileNotFoundError(f"{path_or_id} is not a directory: give the folder export_onnx wrote")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        manifest = Manifest.read(directory)
        if precision not in manifest.files:
            why = manifest.refused.get(precision, "it was not exported (export_onnx(..., quantize='int8'))")
            raise FileNotFoundError(f"{directory} has no {precision} model: {why}")
        files = manifest.files[precision]
        for name in files.values():
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory / name} is missing: the export folder is incomplete")
        config = GLiNERConfig.from_json_file(directory)
        config.check_supported()
        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(str(directory)))
        labels_tokenizer, labels_session = None, None
        if config.is_bi_encoder:
            labels_tokenizer = prepare_labels_tokenizer(
                AutoTokenizer.from_pretrained(str(directory / LABELS_TOKENIZER_DIR))
            )
            labels_session = _session(directory / files["labels_encoder"], threads, providers)
        elif tokenizer.convert_tokens_to_ids(config.ent_token) != config.class_token_index:
            raise ValueError(
                f"{directory}: class_token_index {config.class_token_index} is not the tokenizer's id of "
                f"{config.ent_token!r}; the folder's tokenizer files do not match its config"
            )
        session = _session(directory / files["model"], threads, providers)
        return cls(config, session, tokenizer, labels_tokenizer, labels_session, precision)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")  # outputs come back as numpy arrays on the host

    @contextmanager
    def _eval_mode(self) -> Iterator[None]:
        yield  # a graph has no training mode

    def _label_encoder_state(self) -> tuple:
        return (id(self.labels_session),)  # the graph's weights never change

    def _encode_label_texts(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        feed = {
            "labels_input_ids": tokens["input_ids"].numpy(),
            "labels_attention_mask": tokens["attention_mask"].numpy(),
        }
        return torch.from_numpy(self.labels_session.run(None, feed)[0])

    def _forward(
        self, windows: Sequence[Window], label_vecs: torch.Tensor | None
    ) -> SpanScores | TokenScores:
        batch = collate(windows, self.tokenizer.pad_token_id or 0)
        feed = graph_inputs(batch, self.config)
        if label_vecs is not None:
            feed[LABELS_EMBEDS] = label_vecs.float().numpy()
        logits = torch.from_numpy(self.session.run(None, feed)[0])
        return scores(logits, batch.text_lengths, self.config)
