"""`GLiNER`: load, save and run a GLiNER model on plain text with character offsets.

One class for the four architectures (span or token head, uni- or bi-encoder);
`from_pretrained` picks the architecture from `gliner_config.json`.
"""

from __future__ import annotations

import random
import re
from collections import OrderedDict, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from gliner_core.checkpoint import PICKLE_FILE, SAFETENSORS_FILE, load_weights, save_weights
from gliner_core.config import GLiNERConfig
from gliner_core.decoding import (
    Candidates,
    Threshold,
    find_candidates,
    find_token_candidates,
    greedy_select,
    resolve_thresholds,
    threshold_tensor,
    to_entities,
)
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
from gliner_core.processing import (
    Encoder,
    Labels,
    LabelSet,
    Window,
    collate,
    length_sorted_batches,
    normalize_labels,
)
from gliner_core.text import Words, split_words
from gliner_core.training import TrainingBatch, TrainingRow, make_training_batch

FLERT_TOKEN = "[FLERT]"  # added by the official package too; keeps token ids aligned with its checkpoints
LABELS_TOKENIZER_DIR = "labels_tokenizer"  # where a bi-encoder checkpoint keeps its label tokenizer
LABEL_CACHE_SIZE = 20_000  # label vectors kept per model (bi-encoder)
ONNX_MANIFEST_FILE = "onnx.json"  # marks a folder written by gliner_core.onnx_export (no torch weights)


def _prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    # As the official package: tokenizers that define bos/eos (sentencepiece
    # ones) add them; cls/sep tokenizers are left alone.
    if hasattr(tokenizer, "add_bos_token") and tokenizer.bos_token_id is not None:
        tokenizer.add_bos_token = True
    if hasattr(tokenizer, "add_eos_token") and tokenizer.eos_token_id is not None:
        tokenizer.add_eos_token = True
    return tokenizer


def _prepare_labels_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:  # as the official package
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _add_special_tokens(tokenizer: PreTrainedTokenizerBase, config: GLiNERConfig) -> None:
    tokenizer.add_tokens([FLERT_TOKEN, config.ent_token, config.sep_token], special_tokens=True)
    if config.is_bi_encoder:
        # The official bi-encoder adds the tokens to its tokenizer but not to the
        # encoder (which never sees a prompt): vocab_size and class_token_index stay -1.
        return
    config.class_token_index = int(tokenizer.convert_tokens_to_ids(config.ent_token))  # type: ignore[arg-type]
    config.vocab_size = len(tokenizer)


def _max_tokens(tokenizer: PreTrainedTokenizerBase, config: GLiNERConfig) -> int:
    """How many tokens (special tokens included) one encoder pass may take."""
    limits = [512]
    if 0 < tokenizer.model_max_length < 100_000:
        limits = [tokenizer.model_max_length]
    positions = (config.encoder_config or {}).get("max_position_embeddings")
    if positions and (config.encoder_config or {}).get("position_embedding_type", "absolute") == "absolute":
        limits.append(int(positions))
    return min(limits)


# Tokens that give a label prompt structure: a label containing one would add a class slot or
# a separator to the prompt (and silently shift every label after it), so such labels are refused.
RESERVED_LABEL_TOKENS = (FLERT_TOKEN, "<<ENT>>", "<<SEP>>")
# Special tokens of the usual encoders, refused in labels too (checked before a model is loaded).
COMMON_SPECIAL_TOKENS = (
    "[CLS]",
    "[SEP]",
    "[PAD]",
    "[MASK]",
    "[UNK]",
    "<s>",
    "</s>",
    "<pad>",
    "<unk>",
    "<mask>",
)
_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Lone UTF-16 surrogates (e.g. from a JSON `\\ud800` escape) cannot be tokenized: each becomes
    U+FFFD, so lengths and character offsets stay the same."""
    return text if text.isascii() else _SURROGATES.sub("\ufffd", text)


def check_label_prompts(prompts: Sequence[str], reserved: Sequence[str] = RESERVED_LABEL_TOKENS) -> None:
    """`ValueError` for a label prompt that holds a special token or is not valid Unicode."""
    for prompt in prompts:
        for token in reserved:
            if token and token in prompt:
                raise ValueError(
                    f"label {prompt!r} contains the special token {token!r}, which would corrupt the "
                    "model's prompt: rename the label"
                )
        if _SURROGATES.search(prompt):
            raise ValueError(f"label {prompt!r} is not valid Unicode (a lone surrogate)")


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError(f"texts must be a list of strings, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts[{i}] is a {type(text).__name__}, not a string")
    return [clean_text(text) for text in texts]


class GLiNER(nn.Module):
    """A GLiNER model with its tokenizer(s): text and labels in, entity spans out.

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
        super().__init__()
        if config.is_bi_encoder and labels_tokenizer is None:
            raise ValueError("a bi-encoder needs the tokenizer of its label encoder")
        config.model_type = config.architecture()
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.labels_tokenizer = labels_tokenizer
        self.inputs = Encoder(tokenizer, config, _max_tokens(tokenizer, config), labels_tokenizer)
        self._label_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._label_cache_key: tuple = ()

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
        tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(str(source)))
        backbone = build_encoder(cfg, pretrained=True, source=source)
        _add_special_tokens(tokenizer, cfg)
        labels_encoder, labels_tokenizer = None, None
        if cfg.is_bi_encoder:
            labels_source = resolve_backbone(str(cfg.labels_encoder), weights=True, what="label encoder")
            labels_encoder = build_labels_encoder(cfg, pretrained=True, source=labels_source)
            labels_tokenizer = _prepare_labels_tokenizer(AutoTokenizer.from_pretrained(str(labels_source)))
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
        `backend="onnx"` loads a folder written by `gliner_core.onnx_export.export_onnx`
        instead and runs it on ONNX Runtime (CPU), `precision` "fp32" or "int8"
        (see `gliner_core.onnx_runtime.OnnxGLiNER`); prediction is the same code.
        """
        if backend == "onnx":
            from gliner_core.onnx_runtime import OnnxGLiNER

            return OnnxGLiNER.from_pretrained(path_or_id, precision=precision)
        if backend != "torch":
            raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        if precision != "fp32":
            raise ValueError(
                f"precision={precision!r} needs backend='onnx' (a torch checkpoint loads as saved)"
            )
        directory = resolve_model_dir(path_or_id)
        if (directory / ONNX_MANIFEST_FILE).is_file() and not (
            (directory / SAFETENSORS_FILE).is_file() or (directory / PICKLE_FILE).is_file()
        ):
            raise FileNotFoundError(
                f"{directory} is an ONNX export without torch weights: load it with backend='onnx'"
            )
        cfg = GLiNERConfig.from_json_file(directory)
        cfg.check_supported()
        what = f"encoder of {path_or_id}"
        needs_backbone = cfg.encoder_config is None or not (directory / "tokenizer_config.json").is_file()
        backbone_dir = resolve_backbone(cfg.model_name, what=what) if needs_backbone else None
        source = directory if (directory / "tokenizer_config.json").is_file() else backbone_dir
        tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(str(source)))
        labels_encoder, labels_tokenizer = None, None
        backbone = build_encoder(cfg, pretrained=False, source=backbone_dir)
        if cfg.is_bi_encoder:
            if FLERT_TOKEN not in tokenizer.get_vocab():
                _add_special_tokens(tokenizer, cfg)
            labels_source = directory / LABELS_TOKENIZER_DIR
            has_labels_tokenizer = (labels_source / "tokenizer_config.json").is_file()
            labels_dir = None
            if not has_labels_tokenizer or cfg.labels_encoder_config is None:
                labels_dir = resolve_backbone(str(cfg.labels_encoder), what=f"label encoder of {path_or_id}")
            if not has_labels_tokenizer:
                labels_source = labels_dir  # type: ignore[assignment]
            labels_tokenizer = _prepare_labels_tokenizer(AutoTokenizer.from_pretrained(str(labels_source)))
            labels_encoder = build_labels_encoder(cfg, pretrained=False, source=labels_dir)
            cfg.labels_encoder_config = labels_encoder.config.to_dict()
        else:
            needs_tokens = cfg.class_token_index == -1 or cfg.vocab_size == -1
            if needs_tokens:
                _add_special_tokens(tokenizer, cfg)
            else:
                if cfg.ent_token not in tokenizer.get_vocab():
                    # the encoder's own tokenizer (the checkpoint has none): add the tokens as
                    # training did; the ids must then be the ones the config recorded
                    tokenizer.add_tokens([FLERT_TOKEN, cfg.ent_token, cfg.sep_token], special_tokens=True)
                if tokenizer.convert_tokens_to_ids(cfg.ent_token) != cfg.class_token_index:
                    raise CheckpointError(
                        f"{directory}: class_token_index {cfg.class_token_index} is not the tokenizer's id "
                        f"of {cfg.ent_token!r}; the checkpoint's tokenizer files do not match its config"
                    )
            if backbone.get_input_embeddings().num_embeddings != len(tokenizer):
                backbone.resize_token_embeddings(len(tokenizer))
        cfg.encoder_config = backbone.config.to_dict()
        model = build_model(cfg, backbone, labels_encoder)
        weights = load_weights(directory)
        try:
            model.load_state_dict(weights, strict=True)
        except RuntimeError as error:  # missing, unknown or misshapen weights
            problems = [line.strip()[:200] for line in str(error).strip().splitlines()[1:4]]
            raise CheckpointError(
                f"{directory}: the weights do not fit gliner_config.json: {'; '.join(problems)}"
            ) from None
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

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- label vectors (bi-encoder) -------------------------------------------------------------

    @torch.inference_mode()
    def encode_labels(self, labels: Labels, batch_size: int = 64) -> torch.Tensor:
        """Label vectors (C, D) of a bi-encoder, in the order of `labels` (duplicates dropped).

        Vectors are cached per label text, so a corpus labelled in many batches
        encodes each label once; the cache is dropped whenever the label
        encoder's weights change (training, `load_state_dict`) or move. Pass
        the result as `label_embeddings=` to the predict methods to skip even
        the cache look-up.
        """
        if not self.config.is_bi_encoder:
            raise ValueError("encode_labels needs a bi-encoder (a config with labels_encoder)")
        prompts = self._label_set(labels).prompts
        key = self._label_encoder_state()
        if key != self._label_cache_key:
            self._label_cache.clear()
            self._label_cache_key = key
        missing = list(dict.fromkeys(p for p in prompts if p not in self._label_cache))
        if missing:
            with self._eval_mode():
                for i in range(0, len(missing), batch_size):
                    chunk = missing[i : i + batch_size]
                    vectors = self._encode_label_texts(self.inputs.tokenize_labels(chunk))
                    for prompt, vector in zip(chunk, vectors, strict=True):
                        self._label_cache[prompt] = vector.clone()
        for prompt in prompts:
            self._label_cache.move_to_end(prompt)
        vectors = torch.stack([self._label_cache[p] for p in prompts])
        while len(self._label_cache) > LABEL_CACHE_SIZE:
            self._label_cache.popitem(last=False)
        return vectors

    def _label_set(self, labels: Labels) -> LabelSet:
        """Validated labels: `normalize_labels`, and no special token of the model in any prompt."""
        label_set = normalize_labels(labels)
        reserved = {FLERT_TOKEN, self.config.ent_token, self.config.sep_token}
        for tokenizer in (self.tokenizer, self.labels_tokenizer):
            if tokenizer is not None:
                reserved.update(str(t) for t in tokenizer.all_special_tokens)
        check_label_prompts(label_set.prompts, sorted(t for t in reserved if t))
        return label_set

    def clear_label_cache(self) -> None:
        self._label_cache.clear()

    def _encode_label_texts(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Label vectors (N, D) of tokenized label texts (`Encoder.tokenize_labels`)."""
        return self.model.encode_labels(  # type: ignore[union-attr,operator]
            tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)
        )

    @contextmanager
    def _eval_mode(self) -> Iterator[None]:
        """Run the body with the model in eval mode (dropout off), then restore its mode."""
        was_training = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(was_training)

    def _label_encoder_state(self) -> tuple:
        # parameters' version counters move on every in-place update (optimizer steps, load_state_dict)
        layer = self.model.token_rep_layer
        params = [*layer.labels_encoder.parameters()]  # type: ignore[union-attr]
        if hasattr(layer, "labels_projection"):
            params += [*layer.labels_projection.parameters()]  # type: ignore[union-attr]
        return tuple((id(p), p._version, p.device, p.dtype) for p in params)

    # -- prediction ---------------------------------------------------------------------------

    def predict_entities(
        self,
        text: str,
        labels: Labels,
        threshold: Threshold = None,
        flat_ner: bool = True,
        multi_label: bool = False,
        label_embeddings: torch.Tensor | None = None,
    ) -> list[dict]:
        """Entities in one text: `[{"start", "end", "text", "label", "score"}]`, offsets in characters.

        `threshold`: see `batch_predict_entities`.
        """
        if not isinstance(text, str):
            raise ValueError(f"text must be a string, got {type(text).__name__}")
        return self.batch_predict_entities(
            [text],
            labels,
            threshold=threshold,
            flat_ner=flat_ner,
            multi_label=multi_label,
            label_embeddings=label_embeddings,
        )[0]

    @torch.inference_mode()
    def batch_predict_entities(
        self,
        texts: Sequence[str],
        labels: Labels,
        batch_size: int = 8,
        threshold: Threshold = None,
        flat_ner: bool = True,
        multi_label: bool = False,
        label_embeddings: torch.Tensor | None = None,
    ) -> list[list[dict]]:
        """Entities in each text (one list per text, in input order).

        `threshold`: a number for every label; `{label name: threshold}` (labels
        it does not name use the checkpoint's `default_threshold`, else 0.5); or
        None, the default: the checkpoint's calibrated `label_thresholds` (see
        `set_thresholds`, `gliner_core.calibration`), else 0.5. A span passes when
        its probability is above its label's threshold, before greedy selection.

        Texts are batched by length; a text longer than the encoder window is
        read in overlapping windows, so no part of it is skipped. A bi-encoder
        takes `label_embeddings` (C, D) from `encode_labels(labels)`; without
        them it encodes (and caches) the labels itself.
        """
        label_set = self._label_set(labels)
        found = self.score_candidates(texts, label_set, threshold, batch_size, label_embeddings)
        return [
            self._entities(
                candidates, greedy_select(candidates, flat_ner, multi_label), words, label_set.names
            )
            for words, candidates in found
        ]

    def thresholds(self, labels: Labels, threshold: Threshold = None) -> dict[str, float]:
        """The threshold each label name gets from `threshold` (as in `batch_predict_entities`)."""
        names = self._label_set(labels).names
        return dict(zip(names, self._resolve_thresholds(threshold, names), strict=True))

    def set_thresholds(
        self, label_thresholds: Mapping[str, float] | None, default: float | None = None
    ) -> None:
        """Store calibrated thresholds in the config (and so in `save_pretrained`'s gliner_config.json).

        They are what `threshold=None` (the default) uses; None clears them.
        The official package ignores these keys when it loads the checkpoint.
        """
        checked = None
        if label_thresholds is not None:
            names = list(label_thresholds)
            checked = dict(zip(names, resolve_thresholds(label_thresholds, names), strict=True))
        if default is not None:
            resolve_thresholds(default, [])  # validates
        self.config.label_thresholds = checked
        self.config.default_threshold = None if default is None else float(default)

    def _resolve_thresholds(self, threshold: Threshold, names: Sequence[str]) -> list[float]:
        return resolve_thresholds(
            threshold, names, self.config.label_thresholds, self.config.default_threshold
        )

    @torch.inference_mode()
    def score_candidates(
        self,
        texts: Sequence[str],
        labels: Labels | LabelSet,
        threshold: Threshold = None,
        batch_size: int = 8,
        label_embeddings: torch.Tensor | None = None,
    ) -> list[tuple[Words, Candidates]]:
        """Each text's words and every (span, label) above its threshold, before greedy selection.

        Label indices follow the label set's order; word indices are the
        text's. `batch_predict_entities` is this plus `greedy_select`;
        calibration scores once at a low threshold and re-selects cheaply.
        """
        texts = _check_texts(texts)
        label_set = labels if isinstance(labels, LabelSet) else self._label_set(labels)
        thresholds = self._resolve_thresholds(threshold, label_set.names)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        label_vecs = self._label_vectors(label_set, label_embeddings)
        words = [split_words(text) for text in texts]
        present = [i for i, w in enumerate(words) if len(w) > 0]
        results = [(w, Candidates.empty()) for w in words]
        if not present:
            return results

        windows = self.inputs.windows([words[i] for i in present], label_set)
        found: dict[int, list[tuple[int, Candidates]]] = defaultdict(list)  # text -> (offset, candidates)
        with self._eval_mode():
            for chunk in length_sorted_batches(windows, batch_size):
                for window, candidates in zip(chunk, self._score(chunk, thresholds, label_vecs), strict=True):
                    found[window.text_index].append((window.offset, candidates))

        for index, text_index in enumerate(present):
            for _, part in sorted(found[index], key=lambda item: item[0]):
                results[text_index][1].extend(part)
        return results

    def _label_vectors(self, label_set: LabelSet, given: torch.Tensor | None) -> torch.Tensor | None:
        if not self.config.is_bi_encoder:
            if given is not None:
                raise ValueError("label_embeddings need a bi-encoder; this model has labels in its prompt")
            return None
        if given is None:
            return self.encode_labels(label_set.prompts)
        if given.dim() != 2 or given.size(0) != len(label_set.prompts):
            raise ValueError(
                f"label_embeddings must be (num_labels={len(label_set.prompts)}, hidden), got "
                f"{tuple(given.shape)}; compute them with encode_labels(labels) for the same labels"
            )
        return given.to(self.device)

    def _forward(
        self, windows: Sequence[Window], label_vecs: torch.Tensor | None
    ) -> SpanScores | TokenScores:
        """The model's scores for one batch of windows (the one step a backend replaces)."""
        batch = collate(windows, self.tokenizer.pad_token_id or 0)
        inputs = batch.model_inputs(self.device)
        if label_vecs is not None:
            inputs["labels_embeds"] = label_vecs
        return self.model(**inputs)

    def _score(
        self, windows: Sequence[Window], thresholds: Sequence[float], label_vecs: torch.Tensor | None = None
    ):
        """Run one batch of windows; candidates per window in text word indices (one threshold per label)."""
        out = self._forward(windows, label_vecs)
        device = out.logits.device
        threshold = threshold_tensor(thresholds, out.logits.float())  # a number, or (C,)
        own_start = torch.tensor([w.own_start for w in windows], device=device)
        own_end = torch.tensor([w.own_end for w in windows], device=device)
        position = torch.arange(out.logits.size(1), device=device)[None, :]
        owned = (position >= own_start[:, None]) & (position < own_end[:, None])  # (B, L)
        if isinstance(out, TokenScores):
            probs = torch.sigmoid(out.logits.float()) * out.label_mask[:, None, :, None]  # (B, L, C, 3)
            row, start, end, label, score = find_token_candidates(probs, out.word_mask, owned, threshold)
        else:
            probs = torch.sigmoid(out.logits.float())  # (B, L, K, C)
            allowed = out.span_mask & owned[..., None]  # (B, L, K)
            row, start, width, label, score = find_candidates(probs, allowed, threshold)
            end = start + width
        # candidates come ordered by row: split them per window in bulk, no per-candidate Python
        sizes = torch.bincount(row, minlength=len(windows)).tolist()
        offsets = torch.tensor([w.offset for w in windows], device=row.device)[row]
        first, last = (start + offsets).split(sizes), (end + offsets).split(sizes)
        return [
            Candidates(s.tolist(), e.tolist(), c.tolist(), p.tolist())
            for s, e, c, p in zip(first, last, label.split(sizes), score.split(sizes), strict=True)
        ]

    @staticmethod
    def _entities(candidates: Candidates, kept: list[int], words: Words, names: list[str]) -> list[dict]:
        return to_entities(candidates, kept, words.text, words.starts, words.ends, names)

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
