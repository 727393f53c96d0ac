"""`GLiNER`: a GLiNER model in torch: build, load, save, predict and train.

One class for the four architectures (span or token head, uni- or bi-encoder);
`from_pretrained` picks the architecture from `gliner_config.json`. Prediction
is `Predictor`'s (`gliner_core.predictor`), shared with the ONNX Runtime backend
(`gliner_core.onnx_runtime.OnnxGLiNER`); this class adds the torch model under it,
checkpoints, and what a training loop needs. `gliner_core.load(path, backend=...)`
loads either backend.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from gliner_core.checkpoint import is_onnx_export, load_weights, save_weights
from gliner_core.config import GLiNERConfig
from gliner_core.errors import CheckpointError
from gliner_core.hub import resolve_backbone, resolve_model_dir
from gliner_core.model import (
    GLiNERModel,
    SpanScores,
    TokenScores,
    build_encoder,
    build_labels_encoder,
    build_model,
)
from gliner_core.predictor import Predictor
from gliner_core.processing import (
    FLERT_TOKEN,
    LABELS_TOKENIZER_DIR,
    Window,
    add_special_tokens,
    collate,
    prepare_labels_tokenizer,
    prepare_tokenizer,
)
from gliner_core.training import TrainingBatch, TrainingRow, make_training_batch

TOKENIZER_CONFIG_FILE = "tokenizer_config.json"  # a folder with it holds a tokenizer


class GLiNER(Predictor, nn.Module):
    """A GLiNER model with its tokenizer(s), in torch: text and labels in, entity spans out.

    `model` is one of `SpanModel`, `TokenModel`, `BiEncoderSpanModel`,
    `BiEncoderTokenModel` (see `gliner_core.model`); `inputs` turns texts and
    labels into its batches.
    """

    def __init__(
        self,
        config: GLiNERConfig,
        model: GLiNERModel,
        tokenizer: PreTrainedTokenizerBase,
        labels_tokenizer: PreTrainedTokenizerBase | None = None,
    ):
        super().__init__(config, tokenizer, labels_tokenizer)  # Predictor, then nn.Module
        self.model = model

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_backbone(cls, encoder: str | Path, **config: Any) -> GLiNER:
        """A new model: pretrained encoder (path or hub id), freshly initialised heads.

        `span_mode="token_level"` gives the token-level (multi-task) model;
        `labels_encoder=<path or hub id>` a bi-encoder with that sentence encoder
        for the labels (and `post_fusion_schema="l2l-l2t-t2t"`, say, a poly-encoder).
        A hub id is fetched into the hub cache (see `gliner_core.hub`); the
        config keeps the id, not the cache path.
        """
        cfg = GLiNERConfig(model_name=str(encoder), **config)
        cfg.check_supported()
        source = resolve_backbone(encoder, weights=True)
        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(str(source)))
        backbone = build_encoder(cfg, pretrained=True, source=source)
        add_special_tokens(tokenizer, cfg)
        labels_encoder, labels_tokenizer = None, None
        if cfg.is_bi_encoder:
            labels_source = resolve_backbone(str(cfg.labels_encoder), weights=True, what="label encoder")
            labels_encoder = build_labels_encoder(cfg, pretrained=True, source=labels_source)
            labels_tokenizer = prepare_labels_tokenizer(AutoTokenizer.from_pretrained(str(labels_source)))
            cfg.labels_encoder_config = labels_encoder.config.to_dict()
        else:
            backbone.resize_token_embeddings(len(tokenizer))
        cfg.encoder_config = backbone.config.to_dict()
        gliner = cls(cfg, build_model(cfg, backbone, labels_encoder), tokenizer, labels_tokenizer)
        gliner.eval()  # like any loaded model; call .train() to fine-tune
        return gliner

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | Path,
        map_location: str | torch.device = "cpu",
        backend: str = "torch",
        precision: str = "fp32",
    ) -> GLiNER:
        """Load a checkpoint written here or by the official package: a folder, or a hub id.

        The architecture comes from `gliner_config.json`: `span_mode` (markerV0 or
        token_level) and `labels_encoder` (bi-encoder), as in the official package.
        A hub id (e.g. "urchade/gliner_small-v2.1") is fetched into the hub cache,
        or read from it with HF_HUB_OFFLINE=1; when the checkpoint lacks its
        encoder's tokenizer or config, they come from `model_name` the same way.
        Errors: `ModelNotFoundError` (no such folder, or the id cannot be fetched),
        `CheckpointError` (a damaged config or weights file).

        An ONNX export loads with `gliner_core.load(folder, backend="onnx")`.
        `backend` and `precision` are left from when this method handed off to it:
        kept for one release, any value but "torch" / "fp32" is a `ValueError` that says so.
        """
        _refuse_other_backends(backend, precision)
        directory = resolve_model_dir(path_or_id)
        if is_onnx_export(directory):
            raise FileNotFoundError(
                f"{directory} is an ONNX export without torch weights: load it with "
                "gliner_core.load(path, backend='onnx')"
            )
        cfg = GLiNERConfig.from_json_file(directory)
        cfg.check_supported()
        has_tokenizer = (directory / TOKENIZER_CONFIG_FILE).is_file()
        backbone_dir = None  # the encoder's own files, fetched when the checkpoint lacks some
        if cfg.encoder_config is None or not has_tokenizer:
            backbone_dir = resolve_backbone(cfg.model_name, what=f"encoder of {path_or_id}")
        tokenizer = prepare_tokenizer(
            AutoTokenizer.from_pretrained(str(directory if has_tokenizer else backbone_dir))
        )
        labels_encoder, labels_tokenizer = None, None
        backbone = build_encoder(cfg, pretrained=False, source=backbone_dir)
        if cfg.is_bi_encoder:
            if FLERT_TOKEN not in tokenizer.get_vocab():
                add_special_tokens(tokenizer, cfg)
            labels_encoder, labels_tokenizer = _load_labels_encoder(cfg, directory, path_or_id)
        else:
            _fit_prompt_tokens(tokenizer, cfg, directory)
            if backbone.get_input_embeddings().num_embeddings != len(tokenizer):
                backbone.resize_token_embeddings(len(tokenizer))
        cfg.encoder_config = backbone.config.to_dict()
        model = build_model(cfg, backbone, labels_encoder)
        _load_state(model, directory)
        gliner = cls(cfg, model, tokenizer, labels_tokenizer)
        gliner.to(map_location)
        gliner.eval()
        return gliner

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config, weights (safetensors) and tokenizer(s); loads here and in the official package."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(directory))
        if self.labels_tokenizer is not None:
            self.labels_tokenizer.save_pretrained(str(directory / LABELS_TOKENIZER_DIR))
        save_weights(self.model.state_dict(), directory)
        self.config.to_json_file(directory)  # last: a directory with a config is complete
        return directory

    # -- the torch forward pass (what `Predictor` leaves to a backend) ------------------------

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _forward(
        self, windows: Sequence[Window], label_vecs: torch.Tensor | None
    ) -> SpanScores | TokenScores:
        batch = collate(windows, self.tokenizer.pad_token_id or 0)
        inputs = batch.model_inputs(self.device)
        if label_vecs is not None:
            inputs["labels_embeds"] = label_vecs
        return self.model(**inputs)

    def _encode_label_texts(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.encode_labels(  # type: ignore[union-attr,operator]
            tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)
        )

    def _label_encoder_state(self) -> tuple:
        # parameters' version counters move on every in-place update (optimizer steps, load_state_dict)
        layer = self.model.token_rep_layer
        params = [*layer.labels_encoder.parameters()]  # type: ignore[union-attr]
        if hasattr(layer, "labels_projection"):
            params += [*layer.labels_projection.parameters()]  # type: ignore[union-attr]
        return tuple((id(p), p._version, p.device, p.dtype) for p in params)

    @contextmanager
    def _eval_mode(self) -> Iterator[None]:
        was_training = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(was_training)

    # -- training -------------------------------------------------------------------------------
    # What a training loop needs from the model, so that it never reaches into the model's parts.

    ENCODER_PREFIX = "model.token_rep_layer.bert_layer."  # the pretrained text encoder's parameters

    def forward(self, **inputs: torch.Tensor):
        """The architecture's forward pass on a collated batch (`TrainingBatch.batch.model_inputs`):
        lets a wrapper such as DistributedDataParallel wrap the whole `GLiNER`."""
        return self.model(**inputs)

    def parameter_groups(self, lr_encoder: float, lr_heads: float, weight_decay: float) -> list[dict]:
        """Optimizer parameter groups: the pretrained encoder and the new heads at their own learning
        rates; biases and layer norms without weight decay."""
        groups: dict[tuple[bool, bool], list[nn.Parameter]] = defaultdict(list)
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            decay = not (name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name)
            groups[(name.startswith(self.ENCODER_PREFIX), decay)].append(param)
        out = []
        for encoder in (True, False):
            for decay in (True, False):
                if groups[(encoder, decay)]:
                    out.append(
                        {
                            "params": groups[(encoder, decay)],
                            "lr": lr_encoder if encoder else lr_heads,
                            "weight_decay": weight_decay if decay else 0.0,
                        }
                    )
        return out

    def training_batch(
        self,
        rows: Sequence[TrainingRow],
        label_pool: Sequence[str],
        rng: random.Random,
        soft_targets: bool = False,
    ) -> TrainingBatch:
        """Training rows -> tensors and targets for this architecture (`ValueError` when no row has a
        word); rows without a label set get one sampled from `label_pool`; with `soft_targets` a span's
        score is its target."""
        return make_training_batch(
            rows, self.inputs, label_pool, rng, self.tokenizer.pad_token_id or 0, soft_targets=soft_targets
        )


# -- from_pretrained's steps --------------------------------------------------------------------


def _refuse_other_backends(backend: str, precision: str) -> None:
    """`ValueError` for the arguments of the old handoff to ONNX, naming what replaces it."""
    if backend != "torch":
        raise ValueError(
            f"GLiNER.from_pretrained loads torch checkpoints only, not backend={backend!r}: load an "
            "ONNX export with gliner_core.load(path, backend='onnx')"
        )
    if precision != "fp32":
        raise ValueError(
            f"precision={precision!r} is for ONNX exports: gliner_core.load(path, backend='onnx', "
            f"precision={precision!r}) (a torch checkpoint loads as saved)"
        )


def _load_labels_encoder(
    cfg: GLiNERConfig, directory: Path, path_or_id: str | Path
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A bi-encoder's (empty) label encoder and its tokenizer: the checkpoint's own tokenizer
    and config when it has them, else those of `labels_encoder` (fetched like the encoder's)."""
    labels_source = directory / LABELS_TOKENIZER_DIR
    has_labels_tokenizer = (labels_source / TOKENIZER_CONFIG_FILE).is_file()
    labels_dir = None
    if not has_labels_tokenizer or cfg.labels_encoder_config is None:
        labels_dir = resolve_backbone(str(cfg.labels_encoder), what=f"label encoder of {path_or_id}")
    if not has_labels_tokenizer:
        labels_source = labels_dir  # type: ignore[assignment]
    labels_tokenizer = prepare_labels_tokenizer(AutoTokenizer.from_pretrained(str(labels_source)))
    labels_encoder = build_labels_encoder(cfg, pretrained=False, source=labels_dir)
    cfg.labels_encoder_config = labels_encoder.config.to_dict()
    return labels_encoder, labels_tokenizer


def _fit_prompt_tokens(tokenizer: PreTrainedTokenizerBase, cfg: GLiNERConfig, directory: Path) -> None:
    """A uni-encoder's prompt tokens: added (and recorded in `cfg`) when the config has no ids yet,
    else checked against the ids it recorded (`CheckpointError` when they differ)."""
    if cfg.class_token_index == -1 or cfg.vocab_size == -1:
        add_special_tokens(tokenizer, cfg)
        return
    if cfg.ent_token not in tokenizer.get_vocab():
        # the encoder's own tokenizer (the checkpoint has none): add the tokens as
        # training did; the ids must then be the ones the config recorded
        tokenizer.add_tokens([FLERT_TOKEN, cfg.ent_token, cfg.sep_token], special_tokens=True)
    if tokenizer.convert_tokens_to_ids(cfg.ent_token) != cfg.class_token_index:
        raise CheckpointError(
            f"{directory}: class_token_index {cfg.class_token_index} is not the tokenizer's id "
            f"of {cfg.ent_token!r}; the checkpoint's tokenizer files do not match its config"
        )


def _load_state(model: GLiNERModel, directory: Path) -> None:
    """The checkpoint's weights into `model`, every one (`CheckpointError` for a misfit)."""
    weights = load_weights(directory)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as error:  # missing, unknown or misshapen weights
        problems = [line.strip()[:200] for line in str(error).strip().splitlines()[1:4]]
        raise CheckpointError(
            f"{directory}: the weights do not fit gliner_config.json: {'; '.join(problems)}"
        ) from None
