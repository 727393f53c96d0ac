"""Per-label decision thresholds, calibrated on gold rows.

One threshold for every label is rarely right: a label the model is unsure of
(weak labels, few examples) needs a lower one, a label it over-predicts a
higher one. `calibrate_thresholds` picks, per label, the threshold on a grid
that maximises F1 on gold rows, never below `floor`; labels with fewer than
`min_support` gold spans keep the default (too few examples to trust a choice).

Cost: the encoder runs once. Every (span, label) above `floor` is scored once
per text; a threshold setting is then just a filter on those scores plus the
greedy selection (flat by default), so trying a threshold re-decodes only the
texts that hold candidates of that label. Coordinate ascent: one label at a
time, each step takes the grid value that maximises the objective over all
labels, `objective="macro"` (default: the sum of the labels' F1) or "micro"
(pooled F1, what the pipeline promotes on). All labels count because in flat
decoding a label's spans can block another's: raising a label's threshold can
cost it a little F1 and give a neighbour more. Ties go to the label's own F1,
then to its current threshold, then to the one nearest the default. Rounds
repeat until nothing changes (at most `max_rounds`); the default is always on
the grid, so the objective never ends below where it started.

The thresholds fit the rows they were chosen on: calibrate on a split you do
not report (a calibration split of the dev data, say) and evaluate elsewhere.

    result = calibrate_thresholds(model, gold_rows, ["person", "drug"])
    print(result.table())
    result.apply(model)            # model.set_thresholds(...): predict's threshold=None uses them
    model.save_pretrained(path)    # stored in gliner_config.json
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from gliner_core.decoding import Candidates, greedy_select
from gliner_core.processing import Labels
from gliner_core.text import Words

if TYPE_CHECKING:
    from gliner_core.predictor import Predictor

DEFAULT_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95


@dataclass
class LabelCalibration:
    label: str
    threshold: float
    support: int  # gold spans with this label
    f1_before: float  # every label at the default threshold
    f1_after: float  # with the calibrated thresholds
    calibrated: bool  # False: support below min_support (or no candidate), the default is kept


@dataclass
class CalibrationResult:
    """Thresholds per label name, and the F1 they give on the calibration rows."""

    thresholds: dict[str, float]  # every label; uncalibrated ones at the default
    default_threshold: float
    per_label: dict[str, LabelCalibration] = field(default_factory=dict)
    micro_f1_before: float = 0.0
    micro_f1_after: float = 0.0
    macro_f1_before: float = 0.0
    macro_f1_after: float = 0.0
    settings_tried: int = (
        0  # threshold settings decoded (each one would be a full predict pass without caching)
    )

    def apply(self, model: Predictor) -> None:
        """Store the thresholds in `model.config`: predict's default, saved with the checkpoint."""
        model.set_thresholds(self.thresholds, default=self.default_threshold)

    def to_dict(self) -> dict[str, float]:
        """Flat metrics for logging: `threshold/<label>`, `f1_before/<label>`, `f1_after/<label>`, means."""
        out = {
            "micro_f1_before": self.micro_f1_before,
            "micro_f1_after": self.micro_f1_after,
            "macro_f1_before": self.macro_f1_before,
            "macro_f1_after": self.macro_f1_after,
        }
        for name, row in self.per_label.items():
            out[f"threshold/{name}"] = row.threshold
            out[f"f1_before/{name}"] = row.f1_before
            out[f"f1_after/{name}"] = row.f1_after
        return out

    def table(self) -> str:
        """One line per label: support, threshold, F1 before -> after; then micro and macro."""
        width = max([5, *map(len, self.per_label)])
        lines = [f"{'label':<{width}}  support  threshold  f1_before  f1_after"]
        for name, row in self.per_label.items():
            mark = "" if row.calibrated else "  (default)"
            lines.append(
                f"{name:<{width}}  {row.support:>7}  {row.threshold:>9.2f}  {row.f1_before:>9.4f}  "
                f"{row.f1_after:>8.4f}{mark}"
            )
        lines.append(
            f"{'micro':<{width}}  {'':>7}  {'':>9}  {self.micro_f1_before:>9.4f}  {self.micro_f1_after:>8.4f}"
        )
        lines.append(
            f"{'macro':<{width}}  {'':>7}  {'':>9}  {self.macro_f1_before:>9.4f}  {self.macro_f1_after:>8.4f}"
        )
        return "\n".join(lines)


def _gold_spans(row: Mapping, index: Mapping[str, int]) -> set[tuple[int, int, int]]:
    """A gold row's spans as (start, end, label index); labels outside the calibrated set are ignored."""
    spans = set()
    for span in row.get("spans") or []:
        start, end, label = (
            (span["start"], span["end"], span["label"]) if isinstance(span, Mapping) else tuple(span)[:3]
        )
        if label in index:
            spans.add((int(start), int(end), index[label]))
    return spans


class _Text:
    """One text's candidates (char offsets) and gold spans; re-decodes for a threshold vector."""

    def __init__(self, words: Words, candidates: Candidates, gold: set[tuple[int, int, int]]):
        self.candidates = candidates
        self.labels = np.asarray(candidates.labels, dtype=np.int64)
        self.scores = np.asarray(candidates.scores, dtype=np.float64)
        self.spans = [
            (words.starts[s], words.ends[e], c)
            for s, e, c in zip(candidates.starts, candidates.ends, candidates.labels, strict=True)
        ]
        self.gold = gold

    def counts(
        self, limits: np.ndarray, flat_ner: bool, multi_label: bool, C: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """True and false positives per label (C,) when label c keeps scores above limits[c]."""
        keep: list[int] = np.flatnonzero(self.scores > limits[self.labels]).tolist()
        c = self.candidates
        sub = Candidates(
            [c.starts[i] for i in keep], [c.ends[i] for i in keep], [c.labels[i] for i in keep],
            [c.scores[i] for i in keep],
        )  # fmt: skip
        predicted = {self.spans[keep[i]] for i in greedy_select(sub, flat_ner, multi_label)}
        tp, fp = np.zeros(C, dtype=np.int64), np.zeros(C, dtype=np.int64)
        for span in predicted:
            if span in self.gold:
                tp[span[2]] += 1
            else:
                fp[span[2]] += 1
        return tp, fp


def _f1(tp: np.ndarray, fp: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Per-label F1 (C,) = 2 tp / (2 tp + fp + fn); 0 where nothing was predicted or expected."""
    denominator = 2 * tp + fp + (support - tp)
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def _micro_f1(tp: np.ndarray, fp: np.ndarray, support: np.ndarray) -> float:
    denominator = 2 * tp.sum() + fp.sum() + (support.sum() - tp.sum())
    return float(2 * tp.sum() / denominator) if denominator else 0.0


def calibrate_thresholds(
    model: Predictor,
    gold_rows: Sequence[Mapping],
    labels: Labels,
    *,
    default_threshold: float = 0.5,
    floor: float = 0.1,
    grid: Sequence[float] | None = None,
    min_support: int = 5,
    max_rounds: int = 3,
    objective: Literal["macro", "micro"] = "macro",
    flat_ner: bool = True,
    multi_label: bool = False,
    batch_size: int = 8,
) -> CalibrationResult:
    """Per-label thresholds that maximise F1 on `gold_rows` (see the module docstring).

    gold_rows: `{"text", "spans": [{"start", "end", "label"}]}` with character
    offsets (end exclusive), as `evaluate_spans` scores them. labels: label
    names, or {name: description} as for predict; thresholds are keyed by name.
    grid: the thresholds tried (default 0.05 .. 0.95 by 0.05); values below
    `floor` are dropped and `default_threshold` is always tried.
    """
    _check_settings(default_threshold, floor, min_support, max_rounds, objective)
    values = _grid_values(grid, floor, default_threshold)
    label_set = model.label_set(labels)
    index = {name: c for c, name in enumerate(label_set.names)}
    texts = [str(row["text"]) for row in gold_rows]
    found = model.score_candidates(texts, label_set, threshold=floor, batch_size=batch_size)
    items = [
        _Text(words, candidates, _gold_spans(row, index))
        for (words, candidates), row in zip(found, gold_rows, strict=True)
    ]
    search = _Search(items, len(index), default_threshold, objective, flat_ner, multi_label)
    before = search.f1(), search.micro_f1()
    tunable = [
        c
        for c in np.argsort(-search.support, kind="stable")
        if search.support[c] >= min_support and search.texts_with[c]
    ]
    for _ in range(max_rounds):
        changed = False
        for c in tunable:
            changed |= search.tune(c, values)
        if not changed:
            break
    return _result(search, label_set.names, set(tunable), *before)


def _check_settings(
    default_threshold: float, floor: float, min_support: int, max_rounds: int, objective: str
) -> None:
    if not 0.0 <= floor <= default_threshold <= 1.0:
        raise ValueError(f"need 0 <= floor ({floor}) <= default_threshold ({default_threshold}) <= 1")
    if min_support < 0 or max_rounds < 0:
        raise ValueError("min_support and max_rounds must be >= 0")
    if objective not in ("macro", "micro"):
        raise ValueError(f"objective must be 'macro' or 'micro', got {objective!r}")


def _grid_values(grid: Sequence[float] | None, floor: float, default_threshold: float) -> list[float]:
    """The thresholds tried for each label, ascending: the grid from `floor` up, and the default."""
    return sorted(
        {round(float(t), 6) for t in (grid or DEFAULT_GRID) if floor <= t <= 1.0} | {default_threshold}
    )


class _Search:
    """Coordinate ascent over per-label thresholds, with the counts of the current setting.

    `per_text[i]` holds text i's true and false positives per label (C,) under
    `thresholds`; `tp` and `fp` are their sums. Trying a threshold for label c
    re-decodes only the texts with a candidate of label c.
    """

    def __init__(
        self,
        items: list[_Text],
        C: int,
        default_threshold: float,
        objective: str,
        flat_ner: bool,
        multi_label: bool,
    ):
        self.items, self.C = items, C
        self.default_threshold, self.objective = default_threshold, objective
        self.flat_ner, self.multi_label = flat_ner, multi_label
        self.support = np.zeros(C, dtype=np.int64)  # gold spans per label
        for item in items:
            for _, _, c in item.gold:
                self.support[c] += 1
        self.texts_with = [[i for i, item in enumerate(items) if (item.labels == c).any()] for c in range(C)]
        self.thresholds = np.full(C, default_threshold)
        self.per_text = [self._counts(i, self.thresholds) for i in range(len(items))]
        self.tp = self._sum([counts[0] for counts in self.per_text])
        self.fp = self._sum([counts[1] for counts in self.per_text])
        self.tried = 1  # threshold settings decoded: the default one so far

    def f1(self) -> np.ndarray:
        return _f1(self.tp, self.fp, self.support)

    def micro_f1(self) -> float:
        return _micro_f1(self.tp, self.fp, self.support)

    def tune(self, c: int, values: Sequence[float]) -> bool:
        """Set label c's threshold to the value of `values` that scores best; True when it changed."""
        affected = self.texts_with[c]
        old_tp = self._sum([self.per_text[i][0] for i in affected])
        old_fp = self._sum([self.per_text[i][1] for i in affected])
        best_key: tuple | None = None
        best: tuple[float, list] = (self.thresholds[c], [])
        for value in values:
            self.tried += 1
            trial = self.thresholds.copy()
            trial[c] = value
            counts = [self._counts(i, trial) for i in affected]
            new_tp = self.tp - old_tp + self._sum([x[0] for x in counts])
            new_fp = self.fp - old_fp + self._sum([x[1] for x in counts])
            scores = _f1(new_tp, new_fp, self.support)
            total = scores.sum() if self.objective == "macro" else _micro_f1(new_tp, new_fp, self.support)
            # ties: the label's own F1, then its current threshold, then the one nearest the default
            key = (
                round(float(total), 9),
                round(float(scores[c]), 9),
                value == self.thresholds[c],
                -abs(value - self.default_threshold),
            )
            if best_key is None or key > best_key:
                best_key, best = key, (value, counts)
        value, counts = best
        if value == self.thresholds[c]:
            return False
        self.thresholds[c] = value
        for i, count in zip(affected, counts, strict=True):
            self.per_text[i] = count
        self.tp = self.tp - old_tp + self._sum([x[0] for x in counts])
        self.fp = self.fp - old_fp + self._sum([x[1] for x in counts])
        return True

    def _counts(self, i: int, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # compare as the model does: probabilities are float32, and so are the thresholds they meet
        limits = thresholds.astype(np.float32).astype(np.float64)
        return self.items[i].counts(limits, self.flat_ner, self.multi_label, self.C)

    def _sum(self, counts: list[np.ndarray]) -> np.ndarray:
        return np.sum(counts, axis=0) if counts else np.zeros(self.C, dtype=np.int64)


def _result(
    search: _Search, names: list[str], tuned: set[int], f1_before: np.ndarray, micro_before: float
) -> CalibrationResult:
    f1_after = search.f1()
    per_label = {
        name: LabelCalibration(
            label=name,
            threshold=float(search.thresholds[c]),
            support=int(search.support[c]),
            f1_before=float(f1_before[c]),
            f1_after=float(f1_after[c]),
            calibrated=c in tuned,
        )
        for c, name in enumerate(names)
    }
    C = len(names)
    return CalibrationResult(
        thresholds={name: float(search.thresholds[c]) for c, name in enumerate(names)},
        default_threshold=float(search.default_threshold),
        per_label=per_label,
        micro_f1_before=micro_before,
        micro_f1_after=search.micro_f1(),
        macro_f1_before=float(f1_before.mean()) if C else 0.0,
        macro_f1_after=float(f1_after.mean()) if C else 0.0,
        settings_tried=search.tried,
    )
