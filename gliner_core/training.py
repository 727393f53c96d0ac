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

import bisect
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gliner_core.config import GLiNERConfig
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
    loss: Callable[..., torch.Tensor]
    if isinstance(out, TokenScores):
        loss, mask = token_loss, out.word_mask  # (B, L) real words
    else:
        loss, mask = span_loss, out.span_mask  # (B, L, K) real spans
    return loss(
        out.logits,
        tb.targets.to(device),
        mask,
        out.label_mask,
        alpha=alpha,
        gamma=gamma,
        label_smoothing=label_smoothing,
        reduction=reduction,
        weights=tb.weights.to(device),
    )


@dataclass
class RowCheck:
    """What training rows will teach, counted before any training (see `check_training_rows`).

    Every span lands in exactly one of: positive, out of range, empty, not
    offered, too wide, truncated (checked in that order). `misaligned_spans`
    counts, across all of them, spans that start or end inside a word: they
    are trained on the whole words they touch, and many of them usually mean
    the offsets are not character offsets into this text.
    """

    rows: int = 0
    rows_with_words: int = 0  # text has at least one word
    rows_with_positives: int = 0  # at least one positive span
    spans: int = 0  # all spans given
    positive_spans: int = 0  # spans that become a positive target
    out_of_range_spans: int = 0  # start < 0, end > len(text), start >= end, or not integers
    empty_spans: int = 0  # cover no word (only spaces), or the row has no word
    unoffered_spans: int = 0  # label not in the row's offered `labels`: never asked about
    too_wide_spans: int = 0  # more than max_width words (span model only)
    truncated_spans: int = 0  # past the first max_len words of the row
    misaligned_spans: int = 0  # start or end inside a word
    bad_scores: int = 0  # a score that is not a probability in [0, 1]
    positives_per_label: dict[str, int] = field(default_factory=dict)
    unoffered_labels: dict[str, int] = field(default_factory=dict)  # label -> spans with it, not offered

    @property
    def misaligned_fraction(self) -> float:
        return self.misaligned_spans / self.spans if self.spans else 0.0

    def problems(self, max_misaligned_fraction: float = 0.5) -> list[str]:
        """Reasons not to train on these rows, one sentence each (empty: go ahead)."""
        found = []
        if not self.rows:
            return ["no training rows"]
        if not self.rows_with_words:
            found.append(f"none of the {self.rows} rows has any word in its text")
        if not self.positive_spans:
            dropped = {
                "out of range": self.out_of_range_spans,
                "covering no word": self.empty_spans,
                "with a label the row does not offer": self.unoffered_spans,
                "too wide": self.too_wide_spans,
                "past max_len words": self.truncated_spans,
            }
            why = ", ".join(f"{n} {reason}" for reason, n in dropped.items() if n)
            found.append(
                f"no positive span in {self.rows} rows ({self.spans} spans given"
                + (f": {why})" if why else ")")
                + ": the model would only learn to predict nothing"
            )
        if self.spans and self.misaligned_fraction > max_misaligned_fraction:
            found.append(
                f"{self.misaligned_spans} of {self.spans} spans ({self.misaligned_fraction:.0%}) start or "
                "end inside a word: the offsets are probably not character offsets into `text` "
                "(byte or token offsets, or spans of another text)"
            )
        if self.bad_scores:
            found.append(f"{self.bad_scores} spans have a score that is not a probability in [0, 1]")
        return found

    def to_dict(self) -> dict[str, int]:
        """The counts, for logging (`positives_per_label` and `unoffered_labels` left out)."""
        return {
            name: value
            for name, value in vars(self).items()
            if isinstance(value, int) and not isinstance(value, bool)
        }

    def summary(self) -> str:
        return (
            f"{self.rows} rows ({self.rows_with_words} with words, {self.rows_with_positives} with "
            f"positives), {self.spans} spans: {self.positive_spans} positive, {self.misaligned_spans} "
            f"misaligned, {self.too_wide_spans} too wide, {self.truncated_spans} truncated, "
            f"{self.unoffered_spans} not offered, {self.empty_spans} empty, "
            f"{self.out_of_range_spans} out of range"
        )


def check_training_rows(
    rows: Iterable[TrainingRow | Mapping], config: GLiNERConfig | Encoder | Any
) -> RowCheck:
    """Count what `rows` will teach a model with `config` (or an `Encoder` / `GLiNER`, via `.config`).

    Rows are `TrainingRow`s or training-row dicts (`text`, `spans` with
    `start`, `end`, `label`, optional `score`, optional `labels`); dicts are
    read leniently, so a malformed span is counted rather than raised. Words
    and widths follow `make_training_batch` (max_width for the span model,
    max_len words per row); the encoder's token limit is not checked (it needs
    the tokenizer), so a few more spans may be cut in training.
    """
    cfg: GLiNERConfig = config if isinstance(config, GLiNERConfig) else config.config
    max_width = None if cfg.span_mode == "token_level" else cfg.max_width
    check = RowCheck()
    positives: Counter[str] = Counter()
    unoffered: Counter[str] = Counter()
    for row in rows:
        text, spans, offered = _row_parts(row)
        check.rows += 1
        words = split_words(text)
        check.rows_with_words += len(words) > 0
        positive_before = check.positive_spans
        for start, end, label, score in spans:
            check.spans += 1
            if score is not None and not (isinstance(score, (int, float)) and 0.0 <= score <= 1.0):
                check.bad_scores += 1
            if not (isinstance(start, int) and isinstance(end, int)) or not 0 <= start < end <= len(text):
                check.out_of_range_spans += 1
                continue
            check.misaligned_spans += _inside_a_word(words, start) or _inside_a_word(words, end)
            span = char_to_word_span(words, start, end)
            if span is None:
                check.empty_spans += 1
            elif offered is not None and label not in offered:
                check.unoffered_spans += 1
                unoffered[label] += 1
            elif max_width is not None and span[1] - span[0] >= max_width:
                check.too_wide_spans += 1
            elif span[1] >= cfg.max_len:
                check.truncated_spans += 1
            else:
                check.positive_spans += 1
                positives[label] += 1
        check.rows_with_positives += check.positive_spans > positive_before
    check.positives_per_label = dict(positives.most_common())
    check.unoffered_labels = dict(unoffered.most_common())
    return check


def _row_parts(row: TrainingRow | Mapping) -> tuple[str, list[tuple[Any, Any, str, Any]], set[str] | None]:
    """(text, [(start, end, label, score)], offered labels or None) of a row or row dict."""
    spans: list[tuple[Any, Any, str, Any]] = []
    if isinstance(row, TrainingRow):
        scores: Sequence[float | None] = row.span_scores or [None] * len(row.spans)
        spans = [(s, e, label, score) for (s, e, label), score in zip(row.spans, scores, strict=True)]
        return row.text, spans, set(row.labels) if row.labels is not None else None
    text = row.get("text")
    text = text if isinstance(text, str) else ""
    for span in row.get("spans") or []:
        if isinstance(span, Mapping):
            spans.append(
                (
                    _as_int(span.get("start")),
                    _as_int(span.get("end")),
                    str(span.get("label")),
                    span.get("score"),
                )
            )
        else:
            spans.append((None, None, "", None))
    labels = row.get("labels")
    return text, spans, set(labels) if labels is not None else None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _inside_a_word(words: Words, offset: int) -> bool:
    """True when character `offset` falls strictly inside a word (not at its start or end)."""
    i = bisect.bisect_right(words.starts, offset) - 1  # last word starting at or before offset
    return i >= 0 and words.starts[i] < offset < words.ends[i]
