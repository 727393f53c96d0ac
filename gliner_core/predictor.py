"""`Predictor`: what every GLiNER backend shares, from texts and labels to entities.

A backend holds a config, its tokenizer(s) and one way to compute logits.
Everything around that forward pass is here, once: checking texts and labels,
word splitting, prompts and windows (`Encoder`), batching, label vectors and
their cache (bi-encoder), thresholds, candidate search and greedy decoding.

    Predictor                  prediction; `_forward` and the label-encoder hooks are abstract
    ├── GLiNER                 torch (`gliner_core.gliner`): weights, training, save
    └── OnnxGLiNER             ONNX Runtime sessions (`gliner_core.onnx_runtime`)

`gliner_core.load(path, backend="torch" | "onnx")` loads either.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

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
from gliner_core.model import SpanScores, TokenScores
from gliner_core.processing import (
    FLERT_TOKEN,
    Encoder,
    Labels,
    LabelSet,
    Window,
    check_label_prompts,
    length_sorted_batches,
    max_tokens,
    normalize_labels,
)
from gliner_core.text import Words, clean_text, split_words

LABEL_CACHE_SIZE = 20_000  # label vectors kept per model (bi-encoder)


def check_texts(texts: Any) -> list[str]:
    """The texts of a predict call, cleaned (`clean_text`); `ValueError` unless a list of strings."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError(f"texts must be a list of strings, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts[{i}] is a {type(text).__name__}, not a string")
    return [clean_text(text) for text in texts]


class Predictor(ABC):
    """A GLiNER model with its tokenizer(s): text and labels in, entity spans out.

    `inputs` turns texts and labels into batches; a backend implements `_forward`
    (one batch of windows -> scores), `device`, and for a bi-encoder how label
    texts become vectors (`_encode_label_texts`, `_label_encoder_state`).
    """

    def __init__(
        self,
        config: GLiNERConfig,
        tokenizer: PreTrainedTokenizerBase,
        labels_tokenizer: PreTrainedTokenizerBase | None = None,
    ):
        super().__init__()  # the next class of a backend's bases (torch.nn.Module for GLiNER)
        if config.is_bi_encoder and labels_tokenizer is None:
            raise ValueError("a bi-encoder needs the tokenizer of its label encoder")
        config.model_type = config.architecture()
        self.config = config
        self.tokenizer = tokenizer
        self.labels_tokenizer = labels_tokenizer
        self.inputs = Encoder(tokenizer, config, max_tokens(tokenizer, config), labels_tokenizer)
        self._label_cache: OrderedDict[str, torch.Tensor] = OrderedDict()  # label text -> vector (D,)
        self._label_cache_key: tuple = ()  # `_label_encoder_state()` the cached vectors belong to

    # -- what a backend provides ------------------------------------------------------------------

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """Where the backend's outputs are (and where label vectors must be)."""

    @abstractmethod
    def _forward(
        self, windows: Sequence[Window], label_vecs: torch.Tensor | None
    ) -> SpanScores | TokenScores:
        """The model's scores for one batch of windows (the one step a backend replaces)."""

    @abstractmethod
    def _encode_label_texts(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Label vectors (N, D) of tokenized label texts (`Encoder.tokenize_labels`)."""

    @abstractmethod
    def _label_encoder_state(self) -> tuple:
        """Changes whenever the label encoder's weights change or move: cached label vectors go."""

    @abstractmethod
    def _eval_mode(self) -> AbstractContextManager[None]:
        """Run the body with the model in eval mode (dropout off), then restore its mode."""

    # -- labels -----------------------------------------------------------------------------------

    def label_set(self, labels: Labels) -> LabelSet:
        """Validated labels: `normalize_labels`, and no special token of the model in any prompt."""
        label_set = normalize_labels(labels)
        reserved = {FLERT_TOKEN, self.config.ent_token, self.config.sep_token}
        for tokenizer in (self.tokenizer, self.labels_tokenizer):
            if tokenizer is not None:
                reserved.update(str(t) for t in tokenizer.all_special_tokens)
        check_label_prompts(label_set.prompts, sorted(t for t in reserved if t))
        return label_set

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
        prompts = self.label_set(labels).prompts
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

    def clear_label_cache(self) -> None:
        self._label_cache.clear()

    def _label_vectors(self, label_set: LabelSet, given: torch.Tensor | None) -> torch.Tensor | None:
        """A bi-encoder's label vectors (C, D): `given`, checked, or encoded; None for a uni-encoder."""
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

    # -- thresholds -------------------------------------------------------------------------------

    def thresholds(self, labels: Labels, threshold: Threshold = None) -> dict[str, float]:
        """The threshold each label name gets from `threshold` (as in `batch_predict_entities`)."""
        names = self.label_set(labels).names
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

    # -- prediction -------------------------------------------------------------------------------

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
        label_set = self.label_set(labels)
        found = self.score_candidates(texts, label_set, threshold, batch_size, label_embeddings)
        return [
            self._entities(
                candidates, greedy_select(candidates, flat_ner, multi_label), words, label_set.names
            )
            for words, candidates in found
        ]

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
        texts = check_texts(texts)
        label_set = labels if isinstance(labels, LabelSet) else self.label_set(labels)
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

    def _score(
        self, windows: Sequence[Window], thresholds: Sequence[float], label_vecs: torch.Tensor | None = None
    ) -> list[Candidates]:
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
