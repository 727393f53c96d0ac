"""Building blocks of the GLiNER heads: FFN projection, word BiLSTM, span marker.

Attribute names mirror the official checkpoints' state-dict keys
(`project_start.0.weight`, `rnn.lstm.weight_ih_l0`, ...), so weights move
between the two packages without renaming.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def projection(in_dim: int, dropout: float, out_dim: int | None = None) -> nn.Sequential:
    """2-layer FFN in_dim -> 4*out_dim -> out_dim (ReLU, dropout between)."""
    out_dim = in_dim if out_dim is None else out_dim
    return nn.Sequential(
        nn.Linear(in_dim, out_dim * 4),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(out_dim * 4, out_dim),
    )


class WordLSTM(nn.Module):
    """Bidirectional LSTM over word vectors; output width equals input width."""

    def __init__(self, hidden_size: int, num_layers: int = 1):
        super().__init__()
        self.lstm = nn.LSTM(
            input_size=hidden_size,
            hidden_size=hidden_size // 2,
            num_layers=num_layers,
            bidirectional=True,
            batch_first=True,
        )

    def forward(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # words: (B, L, D), lengths: (B,) number of real words per row (>= 1)
        L = words.size(1)
        packed = pack_padded_sequence(words, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=L)
        return out  # (B, L, D), zeros past each row's length


class SpanMarkerV0(nn.Module):
    """Span vector from its first and last word (the paper's span representation).

    span(i, j) = FFN([relu(FFN_start(h_i)); relu(FFN_end(h_j))])

    The first linear layer of the output FFN acts on a concatenation, so it
    splits into a start half and an end half that we apply once per word
    instead of once per span (L*K spans, only L words): same function, about
    a third of the span FLOPs.
    """

    def __init__(self, hidden_size: int, max_width: int, dropout: float):
        super().__init__()
        self.max_width = max_width
        self.project_start = projection(hidden_size, dropout)
        self.project_end = projection(hidden_size, dropout)
        self.out_project = projection(hidden_size * 2, dropout, hidden_size)

    def forward(self, words: torch.Tensor, span_start: torch.Tensor, span_end: torch.Tensor) -> torch.Tensor:
        # words: (B, L, D); span_start, span_end: (L*K,) word index of each span's ends
        B, L, D = words.shape
        K = span_start.numel() // L
        first, act, drop, last = self.out_project  # Linear(2D, 4D), ReLU, Dropout, Linear(4D, D)
        assert isinstance(first, nn.Linear)
        w_start, w_end = first.weight[:, :D], first.weight[:, D:]  # (4D, D) each
        start = torch.relu(self.project_start(words)) @ w_start.T  # (B, L, 4D)
        end = torch.relu(self.project_end(words)) @ w_end.T + first.bias  # (B, L, 4D)
        hidden = start[:, span_start] + end[:, span_end]  # (B, L*K, 4D)
        spans = last(drop(act(hidden)))  # (B, L*K, D)
        return spans.view(B, L, K, D)


class SpanRepLayer(nn.Module):
    """Holder that gives the span marker its checkpoint prefix `span_rep_layer.span_rep_layer`."""

    def __init__(self, hidden_size: int, max_width: int, dropout: float):
        super().__init__()
        self.span_rep_layer = SpanMarkerV0(hidden_size, max_width, dropout)

    def forward(self, words: torch.Tensor, span_start: torch.Tensor, span_end: torch.Tensor) -> torch.Tensor:
        return self.span_rep_layer(words, span_start, span_end)
