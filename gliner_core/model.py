"""The GLiNER span model (original GLiNER, `span_mode: markerV0`), in plain PyTorch.

    [CLS] <<ENT>> person <<ENT>> city <<SEP>> Alice lives in Paris [SEP]
      │      │               │                  │     │    │    │
      └──────┴─── BERT-like encoder (one pass over labels and words) ───┘
             │               │                  │     │    │    │
        label vectors (the <<ENT>> outputs)   word vectors (first subtoken)
             │                                  │
         FFN (prompt_rep_layer)               BiLSTM
             │                                  │
             │                    span(i, j) from words i and j, j - i < max_width
             │                                  │
             └────────── dot product ──────────┘ → logits (B, L, K, C)

B batch rows, T subword tokens, L words, K = max_width, C labels, D = hidden_size.

Four architectures share these parts (the official package's model classes):

  SpanModel            uni-encoder, span head          span_mode markerV0
  TokenModel           uni-encoder, token head         span_mode token_level
  BiEncoderSpanModel   bi-encoder, span head           labels_encoder set
  BiEncoderTokenModel  bi-encoder, token head          labels_encoder set, token_level

Each is a head (SpanHead, TokenHead) on an encoder (UniEncoder, BiEncoder), both on GLiNERBase.

The token head scores start / end / inside per (word, label): logits (B, L, C, 3).
A bi-encoder embeds each label text with a separate sentence encoder (mean
pooled), so the text encoder sees only the words; label vectors can be computed
once and passed in (`labels_embeds`). With `post_fusion_schema` the bi-encoder
(poly-encoder) runs attention layers between label and word vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel

from gliner_core.config import GLiNERConfig
from gliner_core.layers import CrossFuser, SpanRepLayer, TokenScorer, WordLSTM, projection


@dataclass
class SpanScores:
    logits: torch.Tensor  # (B, L, K, C) span-label logits
    span_mask: torch.Tensor  # (B, L, K) True where span (i, i + k) lies inside the row's words
    label_mask: torch.Tensor  # (B, C) True for real labels (rows may have fewer labels)


@dataclass
class TokenScores:
    logits: torch.Tensor  # (B, L, C, 3) start, end and inside logits per (word, label)
    word_mask: torch.Tensor  # (B, L) True for the row's real words
    label_mask: torch.Tensor  # (B, C) True for real labels


class Backbone(nn.Module):
    """The Hugging Face encoder, under the checkpoint prefix `token_rep_layer.bert_layer.model`."""

    def __init__(self, encoder: PreTrainedModel):
        super().__init__()
        self.model = encoder


class TokenEncoder(nn.Module):
    """Encoder plus an optional linear map to `hidden_size` (prefix `token_rep_layer`)."""

    def __init__(self, encoder: PreTrainedModel, hidden_size: int):
        super().__init__()
        self.bert_layer = Backbone(encoder)
        encoder_width = encoder.config.hidden_size
        if encoder_width != hidden_size:
            self.projection = nn.Linear(encoder_width, hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # input_ids, attention_mask: (B, T) -> (B, T, D)
        hidden = self.bert_layer.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if hasattr(self, "projection"):
            hidden = self.projection(hidden)
        return hidden


def build_encoder(
    config: GLiNERConfig, pretrained: bool, source: str | Path | None = None
) -> PreTrainedModel:
    """The encoder: pretrained weights from `config.model_name`, or an empty one from `encoder_config`.

    `source` is where `model_name`'s files are (a resolved hub snapshot); default `model_name` itself.
    """
    return _hf_encoder(source or config.model_name, pretrained, config.encoder_config)


def build_labels_encoder(
    config: GLiNERConfig, pretrained: bool, source: str | Path | None = None
) -> PreTrainedModel:
    """The label encoder: pretrained from `labels_encoder`, or empty from `labels_encoder_config`."""
    if not config.labels_encoder:
        raise ValueError("this config has no labels_encoder")
    return _hf_encoder(source or config.labels_encoder, pretrained, config.labels_encoder_config)


def _hf_encoder(source: str | Path, pretrained: bool, settings: dict | None) -> PreTrainedModel:
    """Pretrained weights from `source`; or an empty encoder from `settings` (the encoder config
    stored in gliner_config.json), else from `source`'s own config."""
    if pretrained:
        return AutoModel.from_pretrained(str(source))
    if settings is None:
        return AutoModel.from_config(AutoConfig.from_pretrained(str(source)))
    settings = dict(settings)
    return AutoModel.from_config(AutoConfig.for_model(settings.pop("model_type"), **settings))


def label_vectors(
    tokens: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, class_token_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder output at each <<ENT>> token, in prompt order: (B, C, D) and mask (B, C)."""
    B, _, D = tokens.shape
    is_ent = (input_ids == class_token_index) & attention_mask.bool()  # (B, T)
    label_counts = is_ent.sum(1)  # (B,)
    C = int(label_counts.max()) if B else 0
    row, tok = is_ent.nonzero(as_tuple=True)
    slot = is_ent.cumsum(1)[row, tok] - 1  # position of each <<ENT>> among its row's labels
    labels = tokens.new_zeros(B, C, D)
    labels[row, slot] = tokens[row, tok]
    label_mask = torch.arange(C, device=tokens.device) < label_counts[:, None]  # (B, C)
    return labels, label_mask


def word_vectors(tokens: torch.Tensor, words_mask: torch.Tensor, text_lengths: torch.Tensor) -> torch.Tensor:
    """The encoder output at each word's first subtoken: (B, L, D), zeros past a row's words."""
    B, _, D = tokens.shape
    L = int(text_lengths.max())
    row, tok = (words_mask > 0).nonzero(as_tuple=True)
    words = tokens.new_zeros(B, L, D)
    words[row, words_mask[row, tok] - 1] = tokens[row, tok]
    return words


def build_fuser(config: GLiNERConfig, encoder: PreTrainedModel) -> CrossFuser:
    """The official CrossFuser settings: as many heads as the text encoder has."""
    heads = encoder.config.num_attention_heads
    if config.hidden_size % heads:
        raise ValueError(
            f"post_fusion_schema needs hidden_size divisible by the encoder's {heads} attention heads, "
            f"got hidden_size={config.hidden_size}"
        )
    return CrossFuser(
        config.hidden_size,
        num_heads=encoder.config.num_attention_heads,
        num_layers=config.num_post_fusion_layers,
        dropout=config.dropout,
        schema=config.post_fusion_schema,
    )


class GLiNERBase(nn.Module):
    """What all four architectures have: config, `token_rep_layer`, the word LSTM (num_rnn_layers > 0)
    and the label-word fuser (post_fusion_schema). The encoder classes below add `represent` and
    `forward`; the head (`SpanHead` or `TokenHead`, listed first among a model's bases) adds its
    layers and `score`. Module names are the official checkpoint's.
    """

    token_rep_layer: TokenEncoder
    # UniEncoder's or BiEncoder's: words (B, L, D), label vectors (B, C, D), label mask (B, C)
    represent: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]

    def __init__(self, config: GLiNERConfig, token_rep_layer: TokenEncoder):
        super().__init__()
        config.check_supported()
        self.config = config
        self.token_rep_layer = token_rep_layer
        # Both official encoders build both layers, and each applies only one: the uni-encoder the
        # word LSTM, the bi-encoder the fuser (0.2.29). The unused one is kept so that checkpoints
        # load and save with the same weights.
        if config.num_rnn_layers > 0:
            self.rnn = WordLSTM(config.hidden_size, config.num_rnn_layers)
        if config.post_fusion_schema:
            self.cross_fuser = build_fuser(config, self.encoder)
        self._init_head(config)

    @property
    def encoder(self) -> PreTrainedModel:
        return self.token_rep_layer.bert_layer.model

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T)
        attention_mask: torch.Tensor,  # (B, T)
        words_mask: torch.Tensor,  # (B, T)
        text_lengths: torch.Tensor,  # (B,)
        **labels: torch.Tensor | None,  # a bi-encoder's label inputs (see BiEncoder.represent)
    ) -> SpanScores | TokenScores:
        words, label_vecs, label_mask = self.represent(
            input_ids, attention_mask, words_mask, text_lengths, **labels
        )
        return self.score(words, label_vecs, label_mask, text_lengths)

    def _init_head(self, config: GLiNERConfig) -> None:
        raise NotImplementedError("list a head (SpanHead, TokenHead) before the encoder in the bases")

    def score(
        self, words: torch.Tensor, labels: torch.Tensor, label_mask: torch.Tensor, text_lengths: torch.Tensor
    ) -> SpanScores | TokenScores:
        raise NotImplementedError("list a head (SpanHead, TokenHead) before the encoder in the bases")


class SpanHead(nn.Module):
    """Span marker + label FFN: scores (B, L, K, C)."""

    span_rep_layer: SpanRepLayer
    prompt_rep_layer: nn.Sequential
    config: GLiNERConfig

    def _init_head(self, config: GLiNERConfig) -> None:
        D = config.hidden_size
        self.span_rep_layer = SpanRepLayer(D, config.max_width, config.dropout)
        self.prompt_rep_layer = projection(D, config.dropout)  # refines each label vector

    def score(
        self, words: torch.Tensor, labels: torch.Tensor, label_mask: torch.Tensor, text_lengths: torch.Tensor
    ) -> SpanScores:
        # words: (B, L, D), labels: (B, C, D)
        L, C, D = words.size(1), labels.size(1), labels.size(2)
        device = words.device
        # every span (i, i + k) for k < K; spans running past a row's last word are masked
        K = self.config.max_width
        span_end = torch.arange(L, device=device)[:, None] + torch.arange(K, device=device)  # (L, K)
        span_mask = span_end[None] < text_lengths[:, None, None]  # (B, L, K)
        hidden = self.span_rep_layer(words)  # (B, L, K, 4D), span vectors before their last linear layer
        labels = self.prompt_rep_layer(labels)  # (B, C, D)

        # logit = span . label = (W2 h + b2) . label = h . (W2^T label) + b2 . label:
        # apply W2 on the label side when there are fewer labels than dimensions.
        last = self.span_rep_layer.span_rep_layer.out_project[3]
        assert isinstance(last, nn.Linear)
        if C < D:
            folded = labels @ last.weight  # (B, C, 4D)
            logits = torch.einsum("blkh,bch->blkc", hidden, folded) + (labels @ last.bias)[:, None, None, :]
        else:
            spans = self.span_rep_layer.project(hidden)  # (B, L, K, D)
            logits = torch.einsum("blkd,bcd->blkc", spans, labels)
        return SpanScores(logits=logits, span_mask=span_mask, label_mask=label_mask)


class TokenHead(nn.Module):
    """Start / end / inside logits per (word, label): scores (B, L, C, 3)."""

    scorer: TokenScorer

    def _init_head(self, config: GLiNERConfig) -> None:
        self.scorer = TokenScorer(config.hidden_size, config.dropout)

    def score(
        self, words: torch.Tensor, labels: torch.Tensor, label_mask: torch.Tensor, text_lengths: torch.Tensor
    ) -> TokenScores:
        # words: (B, L, D), labels: (B, C, D)
        word_mask = torch.arange(words.size(1), device=words.device) < text_lengths[:, None]  # (B, L)
        return TokenScores(self.scorer(words, labels), word_mask, label_mask)


class UniEncoder(GLiNERBase):
    """Labels in the prompt: one encoder pass gives label vectors (<<ENT>>) and word vectors."""

    def __init__(self, config: GLiNERConfig, encoder: PreTrainedModel):
        super().__init__(config, TokenEncoder(encoder, config.hidden_size))

    def represent(
        self,
        input_ids: torch.Tensor,  # (B, T) prompt + words, padded
        attention_mask: torch.Tensor,  # (B, T)
        words_mask: torch.Tensor,  # (B, T) 1-based word index at each word's first subtoken, else 0
        text_lengths: torch.Tensor,  # (B,) words per row
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Word vectors (B, L, D), label vectors (B, C, D), label mask (B, C)."""
        tokens = self.token_rep_layer(input_ids, attention_mask)  # (B, T, D)
        labels, label_mask = label_vectors(tokens, input_ids, attention_mask, self.config.class_token_index)
        words = word_vectors(tokens, words_mask, text_lengths)
        if hasattr(self, "rnn"):
            words = self.rnn(words, text_lengths)  # (B, L, D)
        return words, labels, label_mask


class BiTokenEncoder(TokenEncoder):
    """Text encoder plus a label encoder (prefix `token_rep_layer.labels_encoder.model`)."""

    def __init__(self, encoder: PreTrainedModel, labels_encoder: PreTrainedModel, hidden_size: int):
        super().__init__(encoder, hidden_size)
        self.labels_encoder = Backbone(labels_encoder)
        if labels_encoder.config.hidden_size != hidden_size:
            self.labels_projection = nn.Linear(labels_encoder.config.hidden_size, hidden_size)

    def encode_labels(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # input_ids, attention_mask: (N, T) tokenized label texts -> (N, D), mean over real tokens
        out = self.labels_encoder.model(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state  # (N, T, D')
        if hasattr(self, "labels_projection"):
            hidden = self.labels_projection(hidden)
        mask = attention_mask[..., None].to(hidden.dtype)  # (N, T, 1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class BiEncoder(GLiNERBase):
    """Labels through their own encoder; the text encoder sees only the words.

    Label vectors come either as `labels_embeds` (N, D), computed once by
    `encode_labels` and reused, or as tokenized label texts encoded in the
    forward pass (training: gradients reach the label encoder). `label_index`
    (B, C) picks each row's labels from the N; without it every row gets all N.
    """

    token_rep_layer: BiTokenEncoder

    def __init__(self, config: GLiNERConfig, encoder: PreTrainedModel, labels_encoder: PreTrainedModel):
        super().__init__(config, BiTokenEncoder(encoder, labels_encoder, config.hidden_size))

    def encode_labels(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.token_rep_layer.encode_labels(input_ids, attention_mask)  # (N, D)

    def represent(
        self,
        input_ids: torch.Tensor,  # (B, T) words only, padded
        attention_mask: torch.Tensor,  # (B, T)
        words_mask: torch.Tensor,  # (B, T)
        text_lengths: torch.Tensor,  # (B,)
        labels_embeds: torch.Tensor | None = None,  # (N, D) label vectors
        labels_input_ids: torch.Tensor | None = None,  # (N, T') label texts, when labels_embeds is None
        labels_attention_mask: torch.Tensor | None = None,  # (N, T')
        label_index: torch.Tensor | None = None,  # (B, C) index into the N labels
        label_mask: torch.Tensor | None = None,  # (B, C) real labels
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens = self.token_rep_layer(input_ids, attention_mask)  # (B, T, D)
        words = word_vectors(tokens, words_mask, text_lengths)  # (B, L, D)
        B, L, _ = words.shape
        if labels_embeds is None:
            if labels_input_ids is None or labels_attention_mask is None:
                raise ValueError(
                    "a bi-encoder needs labels_embeds or labels_input_ids + labels_attention_mask"
                )
            labels_embeds = self.encode_labels(labels_input_ids, labels_attention_mask)
        if labels_embeds.dim() != 2:
            raise ValueError(f"labels_embeds must be (num_labels, hidden), got {tuple(labels_embeds.shape)}")
        labels_embeds = labels_embeds.to(device=words.device, dtype=words.dtype)
        if label_index is None:
            labels = labels_embeds[None].expand(B, -1, -1)  # (B, N, D)
            label_mask = torch.ones(labels.shape[:2], dtype=torch.bool, device=words.device)
        else:
            labels = labels_embeds[label_index]  # (B, C, D)
            if label_mask is None:
                label_mask = torch.ones(label_index.shape, dtype=torch.bool, device=words.device)
            label_mask = label_mask.bool()
            labels = labels * label_mask[..., None]
        if hasattr(self, "cross_fuser"):
            word_mask = torch.arange(L, device=words.device) < text_lengths[:, None]  # (B, L)
            labels, words = self.cross_fuser(labels, words, label_mask, word_mask)
            labels = labels * label_mask[..., None]
        return words, labels, label_mask


class SpanModel(SpanHead, UniEncoder):
    """The original GLiNER (official UniEncoderSpanModel)."""


class TokenModel(TokenHead, UniEncoder):
    """The token-level (multi-task) GLiNER (official UniEncoderTokenModel)."""


class BiEncoderSpanModel(SpanHead, BiEncoder):
    """Bi-encoder, span head (official BiEncoderSpanModel)."""


class BiEncoderTokenModel(TokenHead, BiEncoder):
    """Bi-encoder, token head (official BiEncoderTokenModel)."""


GLiNERModel = SpanModel | TokenModel | BiEncoderSpanModel | BiEncoderTokenModel


def build_model(
    config: GLiNERConfig, encoder: PreTrainedModel, labels_encoder: PreTrainedModel | None = None
) -> GLiNERModel:
    """The architecture that `config` describes (span_mode, labels_encoder)."""
    token_level = config.span_mode == "token_level"
    if config.labels_encoder:
        if labels_encoder is None:
            raise ValueError("a bi-encoder config (labels_encoder set) needs a label encoder model")
        cls = BiEncoderTokenModel if token_level else BiEncoderSpanModel
        return cls(config, encoder, labels_encoder)
    return TokenModel(config, encoder) if token_level else SpanModel(config, encoder)
