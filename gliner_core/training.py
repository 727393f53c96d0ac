"""Training rows to tensors: label sets with sampled negatives, targets, one step.

Targets depend on the architecture (`config.span_mode`):
  span model   (B, L, K, C): 1 at (start, width, label) of each gold span;
  token model  (B, L, C, 3): per (word, label), 1 where a gold span starts, ends, covers it.
With `soft_targets=True` a span's target is its probability (`score` of a weak
label) instead of 1; where spans share a cell the larger value wins.
A bi-encoder batch also carries the batch's distinct label texts for the label encoder.

`check_training_rows` counts what a set of rows will teach (positive spans,
spans off word boundaries, too wide, labels not offered) before any training.

The training loop itself (optimiser, schedule, distribution) belongs to the
caller (`pipelines` runs it under Ray Train); this module gives it batches and
the loss.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from gliner_core.losses import span_loss, token_loss
from gliner_core.model import TokenScores
from gliner_core.processing import Batch, Encoder, LabelSet, collate
from gliner_core.text import Words, char_to_word_span, split_words


@dataclass
class TrainingRow:
    """Text with character-offset spans; `labels` is the label set to offer (None: sample one).

    `span_scores` (parallel to `spans`, each in [0, 1]) are the spans'
    probabilities, used as targets by `make_training_batch(soft_targets=True)`;
    None means every span is certain (1.0).
    """

    text: str
    spans: list[tuple[int, int, str]]
    labels: list[str] | None = None
    weight: float = 1.0
    span_scores: list[float] | None = None

    def __post_init__(self) -> None:
        if self.span_scores is not None:
            if len(self.span_scores) != len(self.spans):
                raise ValueError(
                    f"span_scores has {len(self.span_scores)} values for {len(self.spans)} spans"
                )
            for score in self.span_scores:
                if not 0.0 <= score <= 1.0:  # NaN fails too
                    raise ValueError(f"span score {score!r} is not a probability in [0, 1]")

    @classmethod
    def from_dict(cls, row: Mapping) -> TrainingRow:
        """From a training-row dict; a span's `score` (missing or None: 1.0) becomes its soft target."""
        raw = row.get("spans") or []
        spans = [(int(s["start"]), int(s["end"]), str(s["label"])) for s in raw]
        scores = [_span_score(s) for s in raw]
        labels = row.get("labels")
        return cls(
            text=row["text"],
            spans=spans,
            labels=list(labels) if labels is not None else None,
            weight=float(row.get("weight", 1.0)),
            span_scores=scores if any(score != 1.0 for score in scores) else None,
        )

    def targets(self, soft: bool) -> list[float]:
        """Each span's target: its score with `soft`, else 1.0."""
        if soft and self.span_scores is not None:
            return list(self.span_scores)
        return [1.0] * len(self.spans)


def _span_score(span: Mapping) -> float:
    score = span.get("score")
    return 1.0 if score is None else float(score)


def sample_label_set(
    positives: Sequence[str],
    pool: Sequence[str],
    max_neg_type_ratio: int,
    max_types: int,
    rng: random.Random,
) -> list[str]:
    """Positives plus up to `ratio x len(positives)` negatives from `pool`, shuffled.

    Negative labels teach the model to say "none of these here". Rows with no
    entity at all get one negative, so they still teach something. Positives
    are kept first when `max_types` cuts the set.
    """
    positives = list(dict.fromkeys(positives))[:max_types]
    others = [label for label in dict.fromkeys(pool) if label not in positives]
    n_neg = len(positives) * rng.randint(0, max_neg_type_ratio) if max_neg_type_ratio else 0
    if not positives:
        n_neg = 1
    negatives = rng.sample(others, min(n_neg, len(others), max_types - len(positives)))
    labels = positives + negatives
    rng.shuffle(labels)
    return labels


@dataclass
class TrainingBatch:
    batch: Batch
    targets: torch.Tensor  # (B, L, K, C) span model, (B, L, C, 3) token model
    weights: torch.Tensor  # (B,)
    dropped_spans: int = 0  # gold spans that could not be represented (too wide, truncated, no word)
    label_sets: list[list[str]] = field(default_factory=list)


def make_training_batch(
    rows: Sequence[TrainingRow],
    encoder: Encoder,
    label_pool: Sequence[str],
    rng: random.Random,
    pad_token_id: int,
    soft_targets: bool = False,
) -> TrainingBatch:
    """Tensors for one training step from `rows`; rows without any word are left out.

    `soft_targets=True`: a span's target is its probability (`TrainingRow.span_scores`)
    instead of 1.0; label smoothing (in the loss) still applies on top.
    """
    config = encoder.config
    words: list[Words] = [split_words(row.text) for row in rows]
    keep = [i for i, w in enumerate(words) if len(w) > 0]
    rows = [rows[i] for i in keep]
    words = [words[i] for i in keep]
    if not rows:
        raise ValueError("no row in this batch has any word")
    label_sets = [
        rng.sample(row.labels, len(row.labels))  # a fresh order each time: no position is a label's
        if row.labels
        else sample_label_set(
            [s[2] for s in row.spans], label_pool, config.max_neg_type_ratio, config.max_types, rng
        )
        for row in rows
    ]
    windows = encoder.truncated_windows(words, [LabelSet(prompts=ls, names=ls) for ls in label_sets])
    batch = collate(windows, pad_token_id)
    if config.labels_encoder:
        _add_label_texts(batch, encoder, label_sets)
    word_spans = [
        [
            (char_to_word_span(w, start, end), label, target)
            for (start, end, label), target in zip(row.spans, row.targets(soft_targets), strict=True)
        ]
        for row, w in zip(rows, words, strict=True)
    ]
    build = _token_targets if config.span_mode == "token_level" else _span_targets
    targets, dropped = build(word_spans, label_sets, windows, int(batch.text_lengths.max()), config.max_width)
    weights = torch.tensor([row.weight for row in rows], dtype=torch.float32)
    return TrainingBatch(batch, targets, weights, dropped, label_sets)


# per row: (word span or None, label, target value)
WordSpans = list[list[tuple[tuple[int, int] | None, str, float]]]


def _span_targets(
    spans: WordSpans, label_sets: list[list[str]], windows: list, L: int, K: int
) -> tuple[torch.Tensor, int]:
    """(B, L, K, C): the target at (first word, width, label) of each span; spans wider than K are dropped."""
    targets = torch.zeros(len(spans), L, K, max(map(len, label_sets)))
    dropped = 0
    for b, (row_spans, labels, window) in enumerate(zip(spans, label_sets, windows, strict=True)):
        index = {label: c for c, label in enumerate(labels)}
        for span, label, value in row_spans:
            if label not in index:
                continue  # a label the row does not offer is simply not asked about
            if span is None or span[1] - span[0] >= K or span[1] >= window.num_words:
                dropped += 1
                continue
            cell = (b, span[0], span[1] - span[0], index[label])
            targets[cell] = max(float(targets[cell]), value)
    return targets, dropped


def _token_targets(
    spans: WordSpans, label_sets: list[list[str]], windows: list, L: int, K: int
) -> tuple[torch.Tensor, int]:
    """(B, L, C, 3): start, end and inside marks per (word, label); the token model has no width limit."""
    targets = torch.zeros(len(spans), L, max(map(len, label_sets)), 3)
    dropped = 0
    for b, (row_spans, labels, window) in enumerate(zip(spans, label_sets, windows, strict=True)):
        index = {label: c for c, label in enumerate(labels)}
        for span, label, value in row_spans:
            if label not in index:
                continue
            if span is None or span[1] >= window.num_words:
                dropped += 1
                continue
            first, last, c = span[0], span[1], index[label]
            targets[b, first, c, 0] = max(float(targets[b, first, c, 0]), value)
            targets[b, last, c, 1] = max(float(targets[b, last, c, 1]), value)
            inside = targets[b, first : last + 1, c, 2]  # (width,) view
            inside.clamp_(min=value)
    return targets, dropped


def _add_label_texts(batch: Batch, encoder: Encoder, label_sets: list[list[str]]) -> None:
    """Bi-encoder: tokenize the batch's distinct labels once; each row indexes into them."""
    distinct = list(dict.fromkeys(label for labels in label_sets for label in labels))
    tokens = encoder.tokenize_labels(distinct)
    position = {label: i for i, label in enumerate(distinct)}
    C = max(map(len, label_sets))
    batch.label_index = torch.zeros(len(label_sets), C, dtype=torch.long)
    batch.label_mask = torch.zeros(len(label_sets), C, dtype=torch.bool)
    for b, labels in enumerate(label_sets):
        batch.label_index[b, : len(labels)] = torch.tensor([position[label] for label in labels])
        batch.label_mask[b, : len(labels)] = True
    batch.labels_input_ids = tokens["input_ids"]
    batch.labels_attention_mask = tokens["attention_mask"]


def training_loss(
    model: torch.nn.Module,
    tb: TrainingBatch,
    device: torch.device | str = "cpu",
    alpha: float = -1.0,
    gamma: float = 0.0,
    label_smoothing: float = 0.0,
    reduction: str = "sum",
) -> torch.Tensor:
    """Forward pass and loss for one training batch (any architecture)."""
    out = model(**tb.batch.model_inputs(device))
    if isinstance(out, TokenScores):
        return token_loss(
            out.logits,
            tb.targets.to(device),
            out.word_mask,
            out.label_mask,
            alpha=alpha,
            gamma=gamma,
            label_smoothing=label_smoothing,
            reduction=reduction,
            weights=tb.weights.to(device),
        )
    return span_loss(
        out.logits,
        tb.targets.to(device),
        out.span_mask,
        out.label_mask,
        alpha=alpha,
        gamma=gamma,
        label_smoothing=label_smoothing,
        reduction=reduction,
        weights=tb.weights.to(device),
    )
