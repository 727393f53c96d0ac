"""The forward pass of a GLiNER model as an exportable graph: fixed tensor inputs in, logits out.

`gliner_core.model` finds label and word positions in the forward pass (`nonzero`,
`int(tensor.max())`), packs the word BiLSTM's sequences and picks code paths by
shape; none of that traces into a graph with dynamic batch, token, word and label
axes. Here the same weights (the model's own modules, shared, not copied) run the
same function with those steps moved out of the graph:

- word and label positions are inputs (`word_index` (B, L), `label_index` (B, C):
  the token position of each word's first subtoken and of each <<ENT>>; -1 gives a
  zero vector, as `word_vectors` / `label_vectors` give to a word the tokenizer dropped
  and to padding). `gliner_core.onnx_runtime.graph_inputs` computes them from a `Batch`;
- the word BiLSTM is exported as ONNX `LSTM` nodes with each row's length as `sequence_lens`
  (torch.export would unroll `nn.LSTM` over a fixed number of words);
- the span head always folds its last layer into the labels (the `C < D` path of
  `SpanHead.score`; the same values for any C), the token head scores all labels
  at once (no chunks).

B batch rows, T tokens, L words (max `text_lengths`), K = max_width, C labels, D = hidden_size.
"""

from __future__ import annotations

import torch
from torch import nn

from gliner_core.layers import TokenScorer, WordLSTM
from gliner_core.model import BiEncoder, GLiNERModel, SpanHead, UniEncoder


def gather_rows(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (B, T, D), index (B, N) positions in T (-1: none) -> (B, N, D), zeros where -1."""
    safe = index.clamp(min=0)
    picked = torch.gather(values, 1, safe[..., None].expand(-1, -1, values.size(-1)))
    return picked * (index >= 0)[..., None].to(values.dtype)


class OnnxWordLSTM(nn.Module):
    """`WordLSTM` that exports as ONNX `LSTM` nodes, one per layer.

    torch.export unrolls `nn.LSTM` over time, fixing the number of words; ONNX's LSTM op
    runs both directions over each row's first `sequence_lens` steps, which is what packing
    does, so during `torch.onnx.export` the layers are emitted as that op (weights in ONNX's
    gate order). Run eagerly, it is the model's own `WordLSTM`.
    """

    GATES = (0, 3, 1, 2)  # torch's i, f, g, o blocks in ONNX's order i, o, f, c

    def __init__(self, rnn: WordLSTM):
        super().__init__()
        self.rnn = rnn
        lstm = rnn.lstm
        self.hidden_size, self.num_layers = lstm.hidden_size, lstm.num_layers
        for layer in range(self.num_layers):
            directions = [f"l{layer}", f"l{layer}_reverse"]
            w = [self._gates(getattr(lstm, f"weight_ih_{d}")) for d in directions]  # (4H, in) each
            r = [self._gates(getattr(lstm, f"weight_hh_{d}")) for d in directions]  # (4H, H) each
            b = [
                torch.cat(
                    [self._gates(getattr(lstm, f"bias_ih_{d}")), self._gates(getattr(lstm, f"bias_hh_{d}"))]
                )
                for d in directions
            ]  # (8H,) each
            self.register_buffer(f"w{layer}", torch.stack(w), persistent=False)  # (2, 4H, in)
            self.register_buffer(f"r{layer}", torch.stack(r), persistent=False)  # (2, 4H, H)
            self.register_buffer(f"b{layer}", torch.stack(b), persistent=False)  # (2, 8H)

    def _gates(self, weight: torch.Tensor) -> torch.Tensor:
        blocks = weight.detach().chunk(4, dim=0)
        return torch.cat([blocks[i] for i in self.GATES], dim=0)

    def forward(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # words: (B, L, D), lengths: (B,) -> (B, L, D); positions past a row's length are not used
        if not torch.onnx.is_in_onnx_export():
            return self.rnn(words, lengths)
        B, L, _ = words.shape
        H = self.hidden_size
        x = words.transpose(0, 1)  # (L, B, D): the op's default layout
        steps = lengths.to(torch.int32)
        for layer in range(self.num_layers):
            inputs = [
                x,
                getattr(self, f"w{layer}"),
                getattr(self, f"r{layer}"),
                getattr(self, f"b{layer}"),
                steps,
            ]
            y = torch.onnx.ops.symbolic(
                "LSTM",
                inputs,
                {"direction": "bidirectional", "hidden_size": H},
                dtype=x.dtype,
                shape=(L, 2, B, H),
            )  # (L, 2, B, H)
            x = y.permute(0, 2, 1, 3).reshape(L, B, 2 * H)  # forward and backward halves, as torch
        return x.transpose(0, 1)


class GraphModel(nn.Module):
    """A GLiNER model's tensors-to-logits function, for `torch.onnx.export`.

    Uni-encoder inputs: input_ids, attention_mask (B, T), word_index (B, L),
    text_lengths (B,), label_index (B, C). Bi-encoder: the same without
    label_index, plus labels_embeds (C, D) from the label encoder graph.
    Output: logits, (B, L, K, C) for the span head, (B, L, C, 3) for the token head.
    """

    def __init__(self, model: GLiNERModel):
        super().__init__()
        self.model = model
        self.bi_encoder = isinstance(model, BiEncoder)
        # the bi-encoder builds a word LSTM but never applies it (as the official package)
        if isinstance(model, UniEncoder) and hasattr(model, "rnn"):
            self.rnn = OnnxWordLSTM(model.rnn)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_index: torch.Tensor,
        text_lengths: torch.Tensor,
        labels: torch.Tensor,  # label_index (B, C), or labels_embeds (C, D) for a bi-encoder
    ) -> torch.Tensor:
        tokens = self.model.token_rep_layer(input_ids, attention_mask)  # (B, T, D)
        words = gather_rows(tokens, word_index)  # (B, L, D)
        if self.bi_encoder:
            words, label_vecs = self._fuse(words, labels, text_lengths)
        else:
            label_vecs = gather_rows(tokens, labels)  # (B, C, D)
            if hasattr(self, "rnn"):
                words = self.rnn(words, text_lengths)
        if isinstance(self.model, SpanHead):
            return self._span_logits(words, label_vecs)
        return self._token_logits(words, label_vecs)

    def _fuse(
        self, words: torch.Tensor, labels_embeds: torch.Tensor, text_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # as BiEncoder.represent with every row given all C labels
        B, L, _ = words.shape
        labels = labels_embeds[None].expand(B, -1, -1)  # (B, C, D)
        if hasattr(self.model, "cross_fuser"):
            word_mask = torch.arange(L, device=words.device)[None, :] < text_lengths[:, None]  # (B, L)
            label_mask = torch.ones(labels.shape[:2], dtype=torch.bool, device=words.device)  # (B, C)
            labels, words = self.model.cross_fuser(labels, words, label_mask, word_mask)
        return words, labels

    def _span_logits(self, words: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # as SpanHead.score (C < D path): words (B, L, D), labels (B, C, D) -> (B, L, K, C)
        assert isinstance(self.model, SpanHead)
        B, L, _ = words.shape
        K = self.model.config.max_width
        hidden = self._span_hidden(words)  # (B, L, K, 4D)
        labels = self.model.prompt_rep_layer(labels)  # (B, C, D)
        last = self.model.span_rep_layer.span_rep_layer.out_project[3]
        assert isinstance(last, nn.Linear)
        folded = labels @ last.weight  # (B, C, 4D)
        logits = hidden.reshape(B, L * K, -1) @ folded.transpose(1, 2)  # (B, L*K, C)
        return logits.reshape(B, L, K, -1) + (labels @ last.bias)[:, None, None, :]

    def _span_hidden(self, words: torch.Tensor) -> torch.Tensor:
        # as SpanMarkerV0.forward, with K slices for `unfold` (which exports with L fixed):
        # words (B, L, D) -> hidden (B, L, K, 4D) of spans (i, i + k)
        assert isinstance(self.model, SpanHead)
        marker = self.model.span_rep_layer.span_rep_layer
        L, D = words.size(1), words.size(2)
        K = marker.max_width
        first, act, _, _ = marker.out_project
        assert isinstance(first, nn.Linear)
        w_start, w_end = first.weight[:, :D], first.weight[:, D:]  # (4D, D) each
        start = torch.relu(marker.project_start(words)) @ w_start.T + first.bias  # (B, L, 4D)
        end = torch.relu(marker.project_end(words)) @ w_end.T  # (B, L, 4D)
        end = nn.functional.pad(end, (0, 0, 0, K - 1))  # (B, L + K - 1, 4D)
        end_of_span = torch.stack([end[:, k : k + L] for k in range(K)], dim=2)  # (B, L, K, 4D)
        return act(start[:, :, None, :] + end_of_span)

    def _token_logits(self, words: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # as TokenScorer.forward in one chunk: words (B, L, D), labels (B, C, D) -> (B, L, C, 3)
        scorer = getattr(self.model, "scorer", None)
        assert isinstance(scorer, TokenScorer)
        D = words.size(-1)
        first, _, act, last = scorer.out_mlp
        assert isinstance(first, nn.Linear)
        w_word, w_label, w_pair = first.weight[:, :D], first.weight[:, D : 2 * D], first.weight[:, 2 * D :]
        w0, w1 = scorer.proj_token(words).split(D, dim=-1)  # (B, L, D) each
        l0, l1 = scorer.proj_label(labels).split(D, dim=-1)  # (B, C, D) each
        word_part = w0 @ w_word.T + first.bias  # (B, L, 4D)
        label_part = l0 @ w_label.T  # (B, C, 4D)
        pair = (w1[:, :, None, :] * l1[:, None, :, :]) @ w_pair.T  # (B, L, C, 4D)
        return last(act(word_part[:, :, None, :] + label_part[:, None, :, :] + pair))  # (B, L, C, 3)


class LabelGraph(nn.Module):
    """A bi-encoder's label encoder: labels_input_ids, labels_attention_mask (N, T') -> (N, D)."""

    def __init__(self, model: BiEncoder):
        super().__init__()
        self.model = model

    def forward(self, labels_input_ids: torch.Tensor, labels_attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.encode_labels(labels_input_ids, labels_attention_mask)
