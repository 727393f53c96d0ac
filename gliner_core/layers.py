"""Building blocks of the GLiNER heads: FFN projection, word BiLSTM, span marker.

Attribute names mirror the official checkpoints' state-dict keys
(`project_start.0.weight`, `rnn.lstm.weight_ih_l0`, ...), so weights move
between the two packages without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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

    span(i, j) = W2 · drop(relu(W1 · [relu(FFN_start(h_i)); relu(FFN_end(h_j))] + b1)) + b2

    Two rewrites of the same function keep it cheap, since there are L*K spans
    but only L words:
    - W1 acts on a concatenation, so it splits into a start half and an end
      half applied once per word; a span's pre-activation is a sum of the two.
    - `forward` stops before W2 (`hidden`); `project` applies it. A caller that
      only wants span . label scores can fold W2 into the labels instead.
    """

    def __init__(self, hidden_size: int, max_width: int, dropout: float):
        super().__init__()
        self.max_width = max_width
        self.project_start = projection(hidden_size, dropout)
        self.project_end = projection(hidden_size, dropout)
        self.out_project = projection(hidden_size * 2, dropout, hidden_size)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        # words: (B, L, D) -> hidden: (B, L, K, 4D) for spans (i, i + k), k < K
        B, L, D = words.shape
        K = self.max_width
        first, act, drop, _ = self.out_project  # Linear(2D, 4D), ReLU, Dropout, Linear(4D, D)
        assert isinstance(first, nn.Linear)
        w_start, w_end = first.weight[:, :D], first.weight[:, D:]  # (4D, D) each
        start = torch.relu(self.project_start(words)) @ w_start.T + first.bias  # (B, L, 4D)
        end = torch.relu(self.project_end(words)) @ w_end.T  # (B, L, 4D)
        # end word of span (i, i + k) is i + k: a sliding window over `end`, padded past the last word
        end = F.pad(end, (0, 0, 0, K - 1))  # (B, L + K - 1, 4D)
        end_of_span = end.unfold(1, K, 1).transpose(2, 3)  # (B, L, K, 4D), a view
        return drop(act(start[:, :, None, :] + end_of_span))  # (B, L, K, 4D)

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        # hidden: (B, L, K, 4D) -> span vectors (B, L, K, D)
        return self.out_project[3](hidden)


class SpanRepLayer(nn.Module):
    """Holder that gives the span marker its checkpoint prefix `span_rep_layer.span_rep_layer`."""

    def __init__(self, hidden_size: int, max_width: int, dropout: float):
        super().__init__()
        self.span_rep_layer = SpanMarkerV0(hidden_size, max_width, dropout)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        return self.span_rep_layer(words)

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.span_rep_layer.project(hidden)
