"""Drift of new data against the champion's reference: should the model be retrained?

    profile      the champion's predictions on a sample of documents (≤ `sample_size`):
                 spans per label, a confidence histogram, spans per document
    reference    the profile on a reference sample, kept as JSON beside the checkpoint
                 (`<checkpoint>/drift_reference.json`: it travels with the checkpoint, into MLflow's
                 registered model too when written before the model is logged)
    compare      label mix        Jensen–Shannon distance (base 2: 0 same … 1 disjoint)
                 confidence       population stability index over fixed bins on [threshold, 1],
                                  and the two-sample Kolmogorov–Smirnov statistic (logged, not judged)
                 entity rate      spans per document, new / reference (or its inverse)
    decide       drift when a figure passes its limit (`max_label_js`, `max_score_psi`,
                 `max_rate_ratio`) and, for the label mix and the confidence, a test says it is not
                 sampling noise (chi-square / KS, p < `significance`); those two are judged only on
                 samples with at least `min_spans` spans, the entity rate always

`DriftMonitor` is what the scheduler calls with each new batch of files: it samples documents, runs the
champion, compares, logs the figures to MLflow and returns the decision with its reason. Without a
reference it makes one from that first batch (and reports no drift).
"""

from __future__ import annotations

import gzip
import json
import math
import random
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipelines.config import REFERENCE_FILE, DriftConfig, PipelineConfig

REFERENCE_FORMAT = 1
MAX_KEPT_SCORES = 5000  # scores kept in a profile for the KS test


def load_drift_job(path: str | Path) -> PipelineConfig:
    """The job config for `schedule --drift-config FILE` (deprecated: `--config` names the job's file): a
    job config with a `drift:` section or, without one, a file of drift settings alone. Mistakes raise
    FileNotFoundError / ValueError (one line)."""
    from pydantic import ValidationError

    from synth.config import read_mapping

    try:
        data = read_mapping(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"drift config not found: {path}") from None
    if not isinstance(data.get("drift"), dict):
        data = {"drift": data}
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ValueError(f"{path}: bad drift settings: {problems}") from None


# -- profiles --------------------------------------------------------------------------------------


@dataclass
class Profile:
    """What the model predicts on a sample: the unit both the reference and a new batch are reduced to."""

    labels: dict[str, str]  # label -> prompt, as predicted
    threshold: float
    documents: int
    spans: int
    label_counts: dict[str, int]
    score_histogram: list[int]  # `bins` equal bins on [threshold, 1]
    scores: list[float]  # up to MAX_KEPT_SCORES, for the KS test
    model: str = ""
    created_at: str = ""
    format: int = REFERENCE_FORMAT

    @property
    def spans_per_doc(self) -> float:
        return self.spans / self.documents if self.documents else 0.0

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        data = json.loads(Path(path).read_text())
        if data.get("format") != REFERENCE_FORMAT:
            raise ValueError(
                f"{path}: drift reference format {data.get('format')}, expected {REFERENCE_FORMAT}"
            )
        return cls(**data)


def histogram(scores: Iterable[float], threshold: float, bins: int) -> list[int]:
    counts = [0] * bins
    width = (1.0 - threshold) / bins
    for score in scores:
        counts[min(max(int((score - threshold) / width), 0), bins - 1)] += 1
    return counts


def profile_of(
    entities: Sequence[Sequence[Mapping[str, Any]]],
    labels: Mapping[str, str],
    threshold: float,
    bins: int,
    model: str = "",
    seed: int = 0,
) -> Profile:
    """A profile from `batch_predict_entities` output (one list of entities per document)."""
    scores = [float(e["score"]) for doc in entities for e in doc]
    counts = Counter(str(e["label"]) for doc in entities for e in doc)
    kept = scores if len(scores) <= MAX_KEPT_SCORES else random.Random(seed).sample(scores, MAX_KEPT_SCORES)
    return Profile(
        labels=dict(labels),
        threshold=threshold,
        documents=len(entities),
        spans=len(scores),
        label_counts={label: counts.get(label, 0) for label in labels},
        score_histogram=histogram(scores, threshold, bins),
        scores=[round(s, 5) for s in kept],
        model=model,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def predict_profile(
    model, texts: Sequence[str], labels: Mapping[str, str], job: PipelineConfig, name: str = ""
) -> Profile:
    """Run `model` (a gliner_core.GLiNER) on `texts` and reduce its predictions to a profile (the job's
    `drift` settings, `weak_label.batch_size` documents per call, its `seed`)."""
    config = job.drift
    found = model.batch_predict_entities(
        list(texts), dict(labels), batch_size=job.weak_label.batch_size, threshold=config.threshold
    )
    return profile_of(found, labels, config.threshold, config.score_bins, name, job.seed)


# -- comparison ------------------------------------------------------------------------------------


def label_js(reference: Profile, new: Profile) -> float:
    """Jensen–Shannon distance (base 2) between the label distributions of two profiles."""
    from scipy.spatial.distance import jensenshannon

    labels = sorted(set(reference.label_counts) | set(new.label_counts))
    p = [reference.label_counts.get(label, 0) for label in labels]
    q = [new.label_counts.get(label, 0) for label in labels]
    if not sum(p) and not sum(q):
        return 0.0
    if not sum(p) or not sum(q):
        return 1.0
    return float(jensenshannon(p, q, base=2))


def psi(expected: Sequence[int], actual: Sequence[int], floor: float = 1e-4) -> float:
    """Population stability index: sum over bins of (a - e) * ln(a / e), proportions floored."""
    e_total, a_total = sum(expected), sum(actual)
    if not e_total or not a_total:
        return 0.0
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        pe, pa = max(e / e_total, floor), max(a / a_total, floor)
        total += (pa - pe) * math.log(pa / pe)
    return total


@dataclass
class DriftReport:
    drifted: bool
    reason: str
    figures: dict[str, float]
    documents: int = 0
    files: int = 0
    reference: str = ""
    seconds: float = 0.0
    judged: list[str] = field(default_factory=list)  # which figures were judged


def label_pvalue(reference: Profile, new: Profile) -> float:
    """p-value of the chi-square test that both samples draw their labels from one distribution."""
    from scipy.stats import chi2_contingency

    labels = [
        label
        for label in sorted(set(reference.label_counts) | set(new.label_counts))
        if reference.label_counts.get(label, 0) + new.label_counts.get(label, 0) > 0
    ]
    if len(labels) < 2 or not reference.spans or not new.spans:
        return 1.0 if reference.spans and new.spans else 0.0
    table = [[profile.label_counts.get(label, 0) for label in labels] for profile in (reference, new)]
    return float(chi2_contingency(table).pvalue)


def compare(reference: Profile, new: Profile, config: DriftConfig) -> DriftReport:
    """The drift figures of `new` against `reference` and the decision.

    The label mix drifts when its Jensen–Shannon distance passes `max_label_js` and a chi-square test
    says the difference is not sampling noise (p < `significance`); the confidence, when its PSI passes
    `max_score_psi` and the Kolmogorov–Smirnov test agrees. (PSI alone is noisy on small samples: two
    samples of 300 and 100 spans from one distribution reach PSI 0.19 one time in ten.)"""
    from scipy.stats import ks_2samp

    if reference.score_histogram and len(reference.score_histogram) != len(new.score_histogram):
        raise ValueError("profiles with different histogram bins: recompute the reference")
    rate_ref, rate_new = reference.spans_per_doc, new.spans_per_doc
    eps = 1.0 / max(reference.documents, new.documents, 1)  # a rate of 0 counts as one span in the sample
    figures = {
        "label_js": label_js(reference, new),
        "label_pvalue": label_pvalue(reference, new),
        "score_psi": psi(reference.score_histogram, new.score_histogram),
        "score_ks": 0.0,
        "score_ks_pvalue": 1.0,
        "spans_per_doc": rate_new,
        "reference_spans_per_doc": rate_ref,
        "rate_ratio": max(rate_new + eps, rate_ref + eps) / min(rate_new + eps, rate_ref + eps),
        "documents": float(new.documents),
        "spans": float(new.spans),
    }
    if reference.scores and new.scores:
        ks = ks_2samp(reference.scores, new.scores)
        figures["score_ks"], figures["score_ks_pvalue"] = float(ks.statistic), float(ks.pvalue)
    # figure -> (limit, the p-value that must also be significant, if any)
    checks: dict[str, tuple[float, str | None]] = {"rate_ratio": (config.max_rate_ratio, None)}
    enough = min(reference.spans, new.spans) >= config.min_spans
    if enough:
        checks = {
            "label_js": (config.max_label_js, "label_pvalue"),
            "score_psi": (config.max_score_psi, "score_ks_pvalue"),
            **checks,
        }
    over, within = [], []
    for name, (limit, test) in checks.items():
        value = figures[name]
        significant = test is None or figures[test] < config.significance
        text = f"{name} {value:.3f}" + (f" (p={figures[test]:.2g})" if test else "")
        if value > limit and significant:
            over.append(f"{text} > {limit:g}")
        else:
            within.append(f"{text} {'≤' if value <= limit else 'not significant, >'} {limit:g}")
    reason = ("drift: " + ", ".join(over)) if over else ("no drift: " + ", ".join(within))
    if not enough:
        fewest = min(reference.spans, new.spans)
        reason += f" (label mix and confidence not judged: {fewest} spans < {config.min_spans})"
    return DriftReport(bool(over), reason, figures, new.documents, judged=list(checks))


# -- documents from new files ----------------------------------------------------------------------


def iter_texts(path: Path, text_field: str) -> Iterator[str]:
    """Texts of one corpus file: JSONL (.jsonl, .ndjson, .jsonl.gz), Parquet, or plain text (one per line).
    Bad lines are skipped (the pipeline's reader counts them; here they only make the sample smaller)."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        file = pq.ParquetFile(path)
        if text_field not in file.schema_arrow.names:
            return
        for batch in file.iter_batches(columns=[text_field]):
            yield from (t for t in batch.column(0).to_pylist() if isinstance(t, str) and t.strip())
        return
    opener = gzip.open if name.endswith(".gz") else open
    jsonl = name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".json"))
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            if not jsonl:
                yield line.rstrip("\n")
                continue
            try:
                row = json.loads(line)
            except ValueError:
                continue
            text = row.get(text_field) if isinstance(row, dict) else None
            if isinstance(text, str) and text.strip():
                yield text


def sample_texts(files: Sequence[Path], text_field: str, size: int, seed: int) -> tuple[list[str], int]:
    """(up to `size` texts drawn uniformly from the files, texts seen): reservoir sampling, one pass."""
    rng = random.Random(seed)
    sample: list[str] = []
    seen = 0
    for path in sorted(files):
        for text in iter_texts(path, text_field):
            seen += 1
            if len(sample) < size:
                sample.append(text)
            else:
                j = rng.randrange(seen)
                if j < size:
                    sample[j] = text
    return sample, seen


# -- the monitor the scheduler calls ---------------------------------------------------------------


def reference_path(model_path: str | Path, config: DriftConfig) -> Path:
    return Path(config.reference) if config.reference else Path(model_path) / REFERENCE_FILE


def write_reference(
    model_path: str | Path, texts: Sequence[str], labels: Mapping[str, str], job: PipelineConfig | None = None
) -> Path:
    """The champion's reference: its profile on `texts` (held-out documents of the domain it serves),
    saved as `<model>/drift_reference.json` (or `drift.reference`). Call it when a model is promoted."""
    from gliner_core import GLiNER

    job = job or PipelineConfig()
    model = GLiNER.from_pretrained(model_path)
    profile = predict_profile(model, texts, labels, job, str(model_path))
    return profile.save(reference_path(model_path, job.drift))


class DriftMonitor:
    """`monitor(new_files) -> DriftReport`: sample the batch, run the champion, compare, log to MLflow."""

    def __init__(
        self,
        model_path: str | Path,
        job: PipelineConfig | None = None,
        labels: Mapping[str, str] | None = None,
        tracking: tuple[str, str] | None = None,  # (MLflow tracking URI, experiment)
    ):
        self.model_path = str(model_path)
        self.job = job or PipelineConfig()  # its `drift` section, `seed`, `data.text_field`
        self.config = self.job.drift
        self.labels = dict(labels) if labels else None  # default: the reference's labels
        self.tracking = tracking
        self._model: Any = None
        self._model_stamp: float | None = None
        if not Path(self.model_path).is_dir():
            raise FileNotFoundError(f"drift model not found: {self.model_path} (a GLiNER checkpoint folder)")

    @property
    def reference_path(self) -> Path:
        return reference_path(self.model_path, self.config)

    def model(self):
        """The checkpoint, reloaded when it was replaced (a new champion copied over it)."""
        from gliner_core import GLiNER

        files = [p for p in Path(self.model_path).iterdir() if p.is_file() and p.name != REFERENCE_FILE]
        stamp = max((p.stat().st_mtime for p in files), default=0.0)
        if self._model is None or stamp != self._model_stamp:
            self._model, self._model_stamp = GLiNER.from_pretrained(self.model_path), stamp
        return self._model

    def __call__(self, files: Sequence[str | Path]) -> DriftReport:
        started = time.perf_counter()
        config = self.config
        texts, seen = sample_texts(
            [Path(f) for f in files], self.job.data.text_field, config.sample_size, self.job.seed
        )
        if not texts:
            report = DriftReport(False, f"no documents in the {len(files)} new file(s)", {}, 0, len(files))
        elif not self.reference_path.is_file():
            labels = self.labels or {}
            if not labels:
                raise ValueError(
                    f"no drift reference at {self.reference_path} and no labels to make one: give the labels"
                )
            made = predict_profile(self.model(), texts, labels, self.job, self.model_path)
            made.save(self.reference_path)
            report = DriftReport(
                False,
                f"no reference yet: this batch ({made.documents} documents, {made.spans} spans) is the "
                f"reference, saved at {self.reference_path}",
                {"documents": float(made.documents), "spans": float(made.spans)},
            )
        else:
            reference = Profile.load(self.reference_path)
            if reference.threshold != config.threshold or len(reference.score_histogram) != config.score_bins:
                raise ValueError(
                    f"{self.reference_path} was made with threshold {reference.threshold} and "
                    f"{len(reference.score_histogram)} bins; the drift config says {config.threshold} and "
                    f"{config.score_bins}: recompute it or match the config"
                )
            new = predict_profile(self.model(), texts, reference.labels, self.job, self.model_path)
            report = compare(reference, new, config)
        report.files = len(files)
        report.reference = str(self.reference_path)
        report.seconds = time.perf_counter() - started
        report.figures["documents_in_batch"] = float(seen)
        if self.tracking:
            log_drift(report, *self.tracking, model=self.model_path)
        return report


def log_drift(report: DriftReport, tracking_uri: str, experiment: str, model: str = "") -> str:
    """One MLflow run per check (`drift-check`): the figures as metrics, the decision and reason as tags."""
    import mlflow

    from pipelines.registry.tracking import use_experiment

    # a SQLite store keeps its artifacts beside the database file, as the pipeline's runs do
    storage = (
        str(Path(tracking_uri.removeprefix("sqlite:///")).parent)
        if tracking_uri.startswith("sqlite:")
        else "."
    )
    use_experiment(experiment, tracking_uri, storage)
    with mlflow.start_run(run_name="drift-check") as run:
        mlflow.log_metrics(
            {**report.figures, "drifted": float(report.drifted), "check_seconds": report.seconds}
        )
        mlflow.log_params({"model": model, "reference": report.reference, "files": report.files})
        mlflow.set_tags(
            {"drift.decision": "retrain" if report.drifted else "keep", "drift.reason": report.reason[:5000]}
        )
    return run.info.run_id
