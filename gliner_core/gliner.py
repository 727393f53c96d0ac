"""`GLiNER`: load, save and run a span model on plain text with character offsets."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from gliner_core.checkpoint import load_weights, resolve_model_dir, save_weights
from gliner_core.config import GLiNERConfig
from gliner_core.decoding import Candidates, find_candidates, greedy_select, to_entities
from gliner_core.model import SpanModel, build_encoder
from gliner_core.processing import Encoder, Labels, collate, length_sorted_batches, normalize_labels
from gliner_core.text import Words, split_words

log = logging.getLogger(__name__)

FLERT_TOKEN = "[FLERT]"  # added by the official package too; keeps token ids aligned with its checkpoints


def _prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    # As the official package: tokenizers that define bos/eos (sentencepiece
    # ones) add them; cls/sep tokenizers are left alone.
    if hasattr(tokenizer, "add_bos_token") and tokenizer.bos_token_id is not None:
        tokenizer.add_bos_token = True
    if hasattr(tokenizer, "add_eos_token") and tokenizer.eos_token_id is not None:
        tokenizer.add_eos_token = True
    return tokenizer


def _add_special_tokens(tokenizer: PreTrainedTokenizerBase, config: GLiNERConfig) -> None:
    tokenizer.add_tokens([FLERT_TOKEN, config.ent_token, config.sep_token], special_tokens=True)
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


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError(f"texts must be a list of strings, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts[{i}] is a {type(text).__name__}, not a string")
    return list(texts)


class GLiNER(nn.Module):
    """A GLiNER span model with its tokenizer: text and labels in, entity spans out."""

    def __init__(self, config: GLiNERConfig, model: SpanModel, tokenizer: PreTrainedTokenizerBase):
        super().__init__()
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.inputs = Encoder(tokenizer, config, _max_tokens(tokenizer, config))

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_backbone(cls, encoder: str | Path, **config: Any) -> GLiNER:
        """A new model: pretrained encoder (path or hub id), freshly initialised heads."""
        cfg = GLiNERConfig(model_name=str(encoder), **config)
        cfg.check_supported()
        tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(str(encoder)))
        backbone = AutoModel.from_pretrained(str(encoder))
        _add_special_tokens(tokenizer, cfg)
        backbone.resize_token_embeddings(len(tokenizer))
        cfg.encoder_config = backbone.config.to_dict()
        gliner = cls(cfg, SpanModel(cfg, backbone), tokenizer)
        gliner.eval()  # like any loaded model; call .train() to fine-tune
        return gliner

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path, map_location: str | torch.device = "cpu") -> GLiNER:
        """Load a checkpoint written here or by the official package (directory or hub id)."""
        directory = resolve_model_dir(path_or_id)
        cfg = GLiNERConfig.from_json_file(directory)
        cfg.check_supported()
        source = directory if (directory / "tokenizer_config.json").is_file() else cfg.model_name
        tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(str(source)))
        needs_tokens = cfg.class_token_index == -1 or cfg.vocab_size == -1
        if needs_tokens:
            _add_special_tokens(tokenizer, cfg)
        elif tokenizer.convert_tokens_to_ids(cfg.ent_token) != cfg.class_token_index:
            raise ValueError(
                f"{directory}: class_token_index {cfg.class_token_index} is not the tokenizer's id of "
                f"{cfg.ent_token!r}; the checkpoint's tokenizer files do not match its config"
            )
        backbone = build_encoder(cfg, pretrained=False)
        if backbone.get_input_embeddings().num_embeddings != len(tokenizer):
            backbone.resize_token_embeddings(len(tokenizer))
        cfg.encoder_config = backbone.config.to_dict()
        model = SpanModel(cfg, backbone)
        result = model.load_state_dict(load_weights(directory), strict=True)
        buffers = {name for name, _ in model.named_buffers()}
        missing = [key for key in result.missing_keys if key not in buffers]
        if missing:
            raise ValueError(
                f"{directory}: weights missing for {len(missing)} parameters, e.g. {missing[:3]}"
            )
        if result.unexpected_keys:
            log.warning(
                "%s: ignored %d unknown weights, e.g. %s",
                directory,
                len(result.unexpected_keys),
                result.unexpected_keys[:3],
            )
        gliner = cls(cfg, model, tokenizer)
        gliner.to(map_location)
        gliner.eval()
        return gliner

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config, weights (safetensors) and tokenizer; loads here and in the official package."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(directory))
        save_weights(self.model.state_dict(), directory)
        self.config.to_json_file(directory)  # last: a directory with a config is complete
        return directory

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- prediction ---------------------------------------------------------------------------

    def predict_entities(
        self,
        text: str,
        labels: Labels,
        threshold: float = 0.5,
        flat_ner: bool = True,
        multi_label: bool = False,
    ) -> list[dict]:
        """Entities in one text: `[{"start", "end", "text", "label", "score"}]`, offsets in characters."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a string, got {type(text).__name__}")
        return self.batch_predict_entities(
            [text], labels, threshold=threshold, flat_ner=flat_ner, multi_label=multi_label
        )[0]

    @torch.inference_mode()
    def batch_predict_entities(
        self,
        texts: Sequence[str],
        labels: Labels,
        batch_size: int = 8,
        threshold: float = 0.5,
        flat_ner: bool = True,
        multi_label: bool = False,
    ) -> list[list[dict]]:
        """Entities in each text (one list per text, in input order).

        Texts are batched by length; a text longer than the encoder window is
        read in overlapping windows, so no part of it is skipped.
        """
        texts = _check_texts(texts)
        label_set = normalize_labels(labels)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        words = [split_words(text) for text in texts]
        present = [i for i, w in enumerate(words) if len(w) > 0]
        results: list[list[dict]] = [[] for _ in texts]
        if not present:
            return results

        windows = self.inputs.windows([words[i] for i in present], label_set)
        found: dict[int, list[tuple[int, Candidates]]] = defaultdict(list)  # text -> (offset, candidates)
        was_training = self.model.training
        self.model.eval()
        try:
            for chunk in length_sorted_batches(windows, batch_size):
                for window, candidates in zip(chunk, self._score(chunk, threshold), strict=True):
                    found[window.text_index].append((window.offset, candidates))
        finally:
            self.model.train(was_training)

        for index, text_words in enumerate(words[i] for i in present):
            candidates = Candidates.empty()
            for _, part in sorted(found[index], key=lambda item: item[0]):
                candidates.extend(part)
            kept = greedy_select(candidates, flat_ner=flat_ner, multi_label=multi_label)
            results[present[index]] = self._entities(candidates, kept, text_words, label_set.names)
        return results

    def _score(self, windows, threshold: float) -> list[Candidates]:
        """Run one batch of windows; candidates per window in text word indices."""
        batch = collate(windows, self.tokenizer.pad_token_id or 0)
        out = self.model(**batch.model_inputs(self.device))
        probs = torch.sigmoid(out.logits.float())  # (B, L, K, C)
        L = probs.size(1)
        own_start = torch.tensor([w.own_start for w in windows], device=probs.device)
        own_end = torch.tensor([w.own_end for w in windows], device=probs.device)
        position = torch.arange(L, device=probs.device)[None, :]
        owned = (position >= own_start[:, None]) & (position < own_end[:, None])  # (B, L)
        row, start, width, label, score = find_candidates(probs, out.span_mask & owned[..., None], threshold)
        # candidates come ordered by row: split them per window in bulk, no per-candidate Python
        sizes = torch.bincount(row, minlength=len(windows)).tolist()
        offsets = torch.tensor([w.offset for w in windows], device=row.device)[row]
        first, last = (start + offsets).split(sizes), (start + width + offsets).split(sizes)
        return [
            Candidates(s.tolist(), e.tolist(), c.tolist(), p.tolist())
            for s, e, c, p in zip(first, last, label.split(sizes), score.split(sizes), strict=True)
        ]

    @staticmethod
    def _entities(candidates: Candidates, kept: list[int], words: Words, names: list[str]) -> list[dict]:
        return to_entities(candidates, kept, words.text, words.starts, words.ends, names)
