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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel

from gliner_core.config import GLiNERConfig
from gliner_core.layers import SpanRepLayer, WordLSTM, projection


@dataclass
class SpanScores:
    logits: torch.Tensor  # (B, L, K, C) span-label logits
    span_mask: torch.Tensor  # (B, L, K) True where span (i, i + k) lies inside the row's words
    label_mask: torch.Tensor  # (B, C) True for real labels (rows may have fewer labels)


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


def build_encoder(config: GLiNERConfig, pretrained: bool) -> PreTrainedModel:
    """The encoder: pretrained weights from `config.model_name`, or an empty one from `encoder_config`."""
    if pretrained:
        return AutoModel.from_pretrained(config.model_name)
    if config.encoder_config is None:
        return AutoModel.from_config(AutoConfig.from_pretrained(config.model_name))
    settings = dict(config.encoder_config)
    encoder_config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    return AutoModel.from_config(encoder_config)


class SpanModel(nn.Module):
    def __init__(self, config: GLiNERConfig, encoder: PreTrainedModel):
        super().__init__()
        config.check_supported()
        self.config = config
        D = config.hidden_size
        self.token_rep_layer = TokenEncoder(encoder, D)
        if config.num_rnn_layers > 0:
            self.rnn = WordLSTM(D, config.num_rnn_layers)
        self.span_rep_layer = SpanRepLayer(D, config.max_width, config.dropout)
        self.prompt_rep_layer = projection(D, config.dropout)  # refines each label's <<ENT>> vector

    @property
    def encoder(self) -> PreTrainedModel:
        return self.token_rep_layer.bert_layer.model

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T) prompt + words, padded
        attention_mask: torch.Tensor,  # (B, T)
        words_mask: torch.Tensor,  # (B, T) 1-based word index at each word's first subtoken, else 0
        text_lengths: torch.Tensor,  # (B,) words per row
    ) -> SpanScores:
        tokens = self.token_rep_layer(input_ids, attention_mask)  # (B, T, D)
        B, _, D = tokens.shape
        device = tokens.device

        # label vectors: the encoder output at each <<ENT>> token, in prompt order
        is_ent = (input_ids == self.config.class_token_index) & attention_mask.bool()  # (B, T)
        label_counts = is_ent.sum(1)  # (B,)
        C = int(label_counts.max()) if B else 0
        row, tok = is_ent.nonzero(as_tuple=True)
        slot = is_ent.cumsum(1)[row, tok] - 1  # position of each <<ENT>> among its row's labels
        labels = tokens.new_zeros(B, C, D)
        labels[row, slot] = tokens[row, tok]
        label_mask = torch.arange(C, device=device) < label_counts[:, None]  # (B, C)

        # word vectors: the encoder output at each word's first subtoken
        L = int(text_lengths.max())
        row, tok = (words_mask > 0).nonzero(as_tuple=True)
        words = tokens.new_zeros(B, L, D)
        words[row, words_mask[row, tok] - 1] = tokens[row, tok]
        if hasattr(self, "rnn"):
            words = self.rnn(words, text_lengths)  # (B, L, D)

        # every span (i, i + k) for k < K; spans running past a row's last word are masked
        K = self.config.max_width
        span_end = torch.arange(L, device=device)[:, None] + torch.arange(K, device=device)  # (L, K)
        span_mask = span_end[None] < text_lengths[:, None, None]  # (B, L, K)
        hidden = self.span_rep_layer(words)  # (B, L, K, 4D), span vectors before their last linear layer
        labels = self.prompt_rep_layer(labels)  # (B, C, D)

        # logit = span . label = (W2 h + b2) . label = h . (W2^T label) + b2 . label:
        # apply W2 on the label side when there are fewer labels than dimensions.
        last = self.span_rep_layer.span_rep_layer.out_project[3]
        if C < D:
            folded = labels @ last.weight  # (B, C, 4D)
            logits = torch.einsum("blkh,bch->blkc", hidden, folded) + (labels @ last.bias)[:, None, None, :]
        else:
            spans = self.span_rep_layer.project(hidden)  # (B, L, K, D)
            logits = torch.einsum("blkd,bcd->blkc", spans, labels)
        return SpanScores(logits=logits, span_mask=span_mask, label_mask=label_mask)
