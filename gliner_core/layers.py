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


class TokenScorer(nn.Module):
    """Start, end and inside logits for every (word, label) pair (the token-level head).

    Words and labels are projected to 2D and split in halves (w0, w1) and (l0, l1);
    the pair's features are [w0; l0; w1 * l1] (3D), and an FFN maps them to 3 logits:

        logits(i, c) = W2 · relu(drop(W1 · [w0_i; l0_c; w1_i * l1_c] + b1)) + b2

    As in the span marker, W1 acts on a concatenation, so its word and label
    thirds are applied once per word and once per label; only the product third
    costs a matmul per pair. Attribute names follow the official checkpoints
    (`scorer.proj_token`, `scorer.proj_label`, `scorer.out_mlp.{0,3}`).
    """

    def __init__(self, hidden_size: int, dropout: float):
        super().__init__()
        D = hidden_size
        self.proj_token = nn.Linear(D, 2 * D)
        self.proj_label = nn.Linear(D, 2 * D)
        self.out_mlp = nn.Sequential(
            nn.Linear(3 * D, 4 * D),
            nn.Dropout(dropout),
            nn.ReLU(),
            nn.Linear(4 * D, 3),  # start, end, inside
        )

    def forward(self, words: torch.Tensor, labels: torch.Tensor, chunk_elements: int = 2**25) -> torch.Tensor:
        # words: (B, L, D), labels: (B, C, D) -> logits (B, L, C, 3)
        B, L, D = words.shape
        C = labels.size(1)
        first, drop, act, last = self.out_mlp
        assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear)
        w_word, w_label, w_pair = first.weight[:, :D], first.weight[:, D : 2 * D], first.weight[:, 2 * D :]
        w0, w1 = self.proj_token(words).split(D, dim=-1)  # (B, L, D) each
        l0, l1 = self.proj_label(labels).split(D, dim=-1)  # (B, C, D) each
        word_part = w0 @ w_word.T + first.bias  # (B, L, 4D)
        label_part = l0 @ w_label.T  # (B, C, 4D)
        # without autograd, bound the (B, L, c, 4D) intermediate by scoring labels in chunks
        step = C if torch.is_grad_enabled() else max(1, chunk_elements // max(1, B * L * 4 * D))
        out = []
        for c in range(0, C, step):
            pair = (w1[:, :, None, :] * l1[:, None, c : c + step, :]) @ w_pair.T  # (B, L, c, 4D)
            hidden = act(drop(word_part[:, :, None, :] + label_part[:, None, c : c + step, :] + pair))
            out.append(last(hidden))  # (B, L, c, 3)
        return out[0] if len(out) == 1 else torch.cat(out, dim=2)


class Attention(nn.Module):
    """Multi-head scaled dot-product attention (`query_layer`, `key_layer`, `value_layer`)."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by {num_heads} attention heads")
        self.num_heads = num_heads
        self.dropout = dropout
        self.query_layer = nn.Linear(hidden_size, hidden_size)
        self.key_layer = nn.Linear(hidden_size, hidden_size)
        self.value_layer = nn.Linear(hidden_size, hidden_size)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        # query: (B, Q, D), key/value: (B, K, D), mask: (B, Q, K) True where attending is allowed
        B, Q, D = query.shape
        H = self.num_heads

        def heads(x: torch.Tensor) -> torch.Tensor:  # (B, N, D) -> (B, H, N, D/H)
            return x.view(B, x.size(1), H, D // H).transpose(1, 2)

        q, k, v = heads(self.query_layer(query)), heads(self.key_layer(key)), heads(self.value_layer(value))
        mask = None if mask is None else mask.bool()[:, None]  # (B, 1, Q, K); a fully masked row gives 0
        out = F.scaled_dot_product_attention(q, k, v, mask, self.dropout if self.training else 0.0)
        return out.transpose(1, 2).reshape(B, Q, D)


class SelfAttentionBlock(nn.Module):
    """x <- post_norm(n + drop(attn(q(n), k(n), v(n)))) with n = pre_norm(x)."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        self.self_attn = Attention(hidden_size, num_heads, dropout)
        self.pre_norm = nn.LayerNorm(hidden_size)
        self.post_norm = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.pre_norm(x)
        attended = self.self_attn(self.q_proj(x), self.k_proj(x), self.v_proj(x), mask)
        return self.post_norm(x + self.dropout(attended))


class CrossAttentionBlock(nn.Module):
    """q <- post_norm(n + drop(attn(n, other, v(other)))) with n = pre_norm(q)."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        self.cross_attn = Attention(hidden_size, num_heads, dropout)
        self.pre_norm = nn.LayerNorm(hidden_size)
        self.post_norm = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.v_proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, query: torch.Tensor, other: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        query = self.pre_norm(query)
        attended = self.cross_attn(query, other, self.v_proj(other), mask)
        return self.post_norm(query + self.dropout(attended))


FUSION_STEPS = ("l2l", "t2t", "l2t", "t2l")


def parse_fusion_schema(schema: str) -> list[str]:
    """'l2l-l2t-t2t' -> ['l2l', 'l2t', 't2t']; each step is one of FUSION_STEPS."""
    steps = schema.split("-")
    bad = [s for s in steps if s not in FUSION_STEPS]
    if bad:
        raise ValueError(f"post_fusion_schema {schema!r}: unknown steps {bad}, expected {FUSION_STEPS}")
    return steps


class CrossFuser(nn.Module):
    """Post-fusion layers of the poly-encoder: labels and words attend to themselves and each other.

    The schema is a '-'-separated list of steps, repeated `num_layers` times:
      l2l  labels self-attend      t2t  words self-attend
      l2t  labels attend to words  t2l  words attend to labels
    """

    def __init__(self, hidden_size: int, num_heads: int, num_layers: int, dropout: float, schema: str):
        super().__init__()
        self.schema = parse_fusion_schema(schema)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                SelfAttentionBlock(hidden_size, num_heads, dropout)
                if step in ("l2l", "t2t")
                else CrossAttentionBlock(hidden_size, num_heads, dropout)
                for step in self.schema
            )
            for _ in range(num_layers)
        )

    def forward(
        self, labels: torch.Tensor, words: torch.Tensor, label_mask: torch.Tensor, word_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # labels: (B, C, D), words: (B, L, D), label_mask: (B, C), word_mask: (B, L) -> same shapes
        lm, wm = label_mask.bool(), word_mask.bool()
        masks = {
            "l2l": lm[:, None, :] & lm[:, :, None],  # (B, C, C)
            "t2t": wm[:, None, :] & wm[:, :, None],  # (B, L, L)
            "l2t": lm[:, :, None] & wm[:, None, :],  # (B, C, L)
            "t2l": wm[:, :, None] & lm[:, None, :],  # (B, L, C)
        }
        for layer in self.layers:
            for step, block in zip(self.schema, layer, strict=True):  # type: ignore[call-overload]
                if step == "l2l":
                    labels = block(labels, masks[step])
                elif step == "t2t":
                    words = block(words, masks[step])
                elif step == "l2t":
                    labels = block(labels, words, masks[step])
                else:
                    words = block(words, labels, masks[step])
        return labels, words
