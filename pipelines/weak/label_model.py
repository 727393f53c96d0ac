"""Label model: the votes of several weak sources on each candidate span -> one probability per label.

Input   documents with a `spans` column holding every source's spans (`origin` = the source's name:
        `gliner:names`, `llm`, `lf:gazetteer:countries`, ...) and, optionally, `covered_by:
        list<string>` naming the sources that ran on the document (absent or null: all of them).
        `pipelines.weak.span_alignment` turns them into candidates and votes (label / none / abstain).
Methods majority_vote  P(class) = weighted share of the non-abstaining votes (`sources.<name>.weight`).
        dawid_skene    EM over per-source confusion matrices P(vote | true class) with classes
                       `none` + labels, learned without gold (the algorithm of
                       `crowdkit.aggregation.DawidSkene`, which the tests hold it to);
                       P(true class | votes) ∝ prior · Π_sources P(vote | class), abstentions skipped.
                       Weights are not used: the confusion matrices are the weights.
Scale   `fit_label_model` sees at most `max_candidates` candidates: the documents with the smallest
        seeded hash of their `doc_id` (a sample that does not depend on the order batches arrive in), so
        the fit is deterministic. `apply_label_model` is a pure batch function with the fitted
        `LabelModel` (a small JSON-able object) for `map_batches`.
Output  `spans` become the label model's soft spans: per candidate and label with P >= `min_probability`
        a span with `score` = P and `origin` = "label_model"; P(none) of a candidate is 1 - the sum of its
        label probabilities. The sources' spans move to `source_spans`.
Report  per source and label: votes, coverage (share of candidates voted with that label), accuracy
        P(vote = label | true = label, not abstaining) and precision P(true = label | vote = label), both
        under the model's posteriors on the fit sample, for MLflow (`LabelModelReport.metrics`).
"""

from __future__ import annotations

import hashlib
import heapq
import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import Literal, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config import LabelModelConfig, Section
from pipelines.data.spans import SPANS_TYPE
from pipelines.weak.span_alignment import ABSTAIN, Aligner, Alignment

log = logging.getLogger(__name__)

NONE_CLASS = "none"
EPS = 1e-10  # probabilities are clipped here before the log (as crowd-kit does)


class LabelModel(Section):
    """Fitted parameters: what `apply_label_model` needs on a worker (JSON-able, a few KB)."""

    method: Literal["majority_vote", "dawid_skene"]
    labels: list[str]  # class k (1..K) is labels[k - 1]; class 0 is "none"
    sources: list[str]
    scopes: dict[str, list[str]]
    weights: list[float]  # (S,)
    prior: list[float]  # (K + 1,) P(true class)
    confusion: list[list[list[float]]]  # (S, K + 1 vote, K + 1 true) P(vote | true); dawid_skene only
    observed: list[list[bool]]  # (S, K + 1): the source cast this vote in the fit; unseen votes are ignored
    min_probability: float

    @property
    def classes(self) -> list[str]:
        return [NONE_CLASS, *self.labels]

    @cached_property
    def aligner(self) -> Aligner:
        return Aligner(self.labels, self.sources, self.scopes)

    @cached_property
    def _log_confusion(self) -> np.ndarray:
        # (S, K + 1, K + 1) log P(vote | true); 0 (no evidence) for votes never seen in the fit
        log_conf = np.log(np.clip(np.asarray(self.confusion, dtype=np.float64), EPS, None))
        return np.where(np.asarray(self.observed)[:, :, None], log_conf, 0.0)

    def predict_proba(self, votes: np.ndarray) -> np.ndarray:
        """(N, S) votes (ABSTAIN / NONE / 1..K) -> (N, K + 1) P(true class), rows sum to 1."""
        n_classes = len(self.labels) + 1
        if votes.shape[0] == 0:
            return np.zeros((0, n_classes))
        if self.method == "majority_vote":
            counts = np.zeros((votes.shape[0], n_classes))  # (N, K + 1) weighted votes
            for s, weight in enumerate(self.weights):
                voted = votes[:, s] != ABSTAIN
                np.add.at(counts, (np.flatnonzero(voted), votes[voted, s]), weight)
            total = counts.sum(axis=1, keepdims=True)
            return np.divide(counts, total, out=np.full_like(counts, 1.0 / n_classes), where=total > 0)
        log_post = np.tile(
            np.log(np.clip(np.asarray(self.prior), EPS, None)), (votes.shape[0], 1)
        )  # (N, K+1)
        log_conf = self._log_confusion
        for s in range(len(self.sources)):
            voted = votes[:, s] != ABSTAIN
            log_post[voted] += log_conf[s, votes[voted, s]]  # (n_voted, K + 1) log P(vote | each class)
        log_post -= log_post.max(axis=1, keepdims=True)
        post = np.exp(log_post)
        return post / post.sum(axis=1, keepdims=True)


class SourceLabelStats(Section):
    label: str
    votes: int
    coverage: float  # share of candidates this source voted with this label
    accuracy: float | None  # P(vote = label | true = label, voted); None out of scope or without candidates
    precision: float | None  # P(true = label | vote = label); None without any such vote


class SourceStats(Section):
    source: str
    scope: list[str]
    weight: float
    voted: float  # share of candidates on which the source did not abstain
    labels: list[SourceLabelStats]


class LabelModelReport(Section):
    method: str
    documents: int
    candidates: int
    iterations: int
    converged: bool
    prior: dict[str, float]
    skipped: dict[str, int]  # spans not used in the fit, by reason
    sources: list[SourceStats]

    def metrics(self, prefix: str = "label_model") -> dict[str, float]:
        """Flat `prefix/<source>/<label>/accuracy`-style metrics for `mlflow.log_metrics`."""
        out = {f"{prefix}/candidates": float(self.candidates), f"{prefix}/iterations": float(self.iterations)}
        for source in self.sources:
            out[f"{prefix}/{source.source}/voted"] = source.voted
            for stats in source.labels:
                key = f"{prefix}/{source.source}/{stats.label}"
                out[f"{key}/coverage"] = stats.coverage
                if stats.accuracy is not None:
                    out[f"{key}/accuracy"] = stats.accuracy
                if stats.precision is not None:
                    out[f"{key}/precision"] = stats.precision
        return out


# ---------------------------------------------------------------------------------------------------
# the fit sample


def require_columns(batch: pa.Table, *names: str) -> None:
    missing = [name for name in names if name not in batch.column_names]
    if missing:
        raise ValueError(f"label model: the batch has no column {missing}; it has {batch.column_names}")


def _column(batch: pa.Table, name: str) -> list | None:
    return batch.column(name).to_pylist() if name in batch.column_names else None


def _spans_key(spans: Sequence[Mapping]) -> tuple:
    return tuple(
        sorted((s["start"], s["end"], s["label"], s["origin"], s.get("score") or 0.0) for s in spans)
    )


class SampledDocument(NamedTuple):
    rank: int  # minus the seeded hash of doc_id: the heap root is the document to drop first
    doc_id: str
    key: tuple  # the spans, canonical: breaks ties between documents that share a doc_id
    candidates: int
    spans: list[dict]
    covered_by: list[str] | None
    length: int | None


class DocumentSample:
    """The documents with the smallest seeded hash of `doc_id` whose candidates fit in the budget."""

    def __init__(self, max_candidates: int, seed: int, exclude_origins: Sequence[str]):
        self.max_candidates = max_candidates
        self.seed = seed
        self.exclude = set(exclude_origins)
        self.heap: list[SampledDocument] = []
        self.total = 0
        self.seen_documents = 0

    def add(self, batch: pa.Table, column: str) -> None:
        require_columns(batch, "doc_id", column)
        ids = batch.column("doc_id").to_pylist()
        spans_per_doc = batch.column(column).to_pylist()
        covered = _column(batch, "covered_by") or [None] * len(ids)
        lengths = pc.utf8_length(batch.column("text")).to_pylist() if "text" in batch.column_names else None
        for i, (doc_id, spans) in enumerate(zip(ids, spans_per_doc, strict=True)):
            self.seen_documents += 1
            spans = [s for s in spans or () if s["origin"] not in self.exclude]
            n = len({(s["start"], s["end"]) for s in spans})
            if not n:
                continue
            digest = hashlib.sha1(f"{self.seed}:{doc_id}".encode()).digest()
            rank = -int.from_bytes(digest[:8], "big")
            length = lengths[i] if lengths else None
            heapq.heappush(
                self.heap, SampledDocument(rank, str(doc_id), _spans_key(spans), n, spans, covered[i], length)
            )
            self.total += n
            while self.total > self.max_candidates:  # drop the largest hashes until the budget holds
                self.total -= heapq.heappop(self.heap).candidates

    def documents(self) -> list[SampledDocument]:
        return sorted(self.heap, reverse=True)  # smallest hash first: the same order however data arrived


def _scopes(
    documents: Sequence[SampledDocument], labels: Sequence[str], config: LabelModelConfig
) -> tuple[list[str], dict[str, list[str]]]:
    produced: dict[str, set[str]] = {}
    for document in documents:
        for span in document.spans:
            produced.setdefault(span["origin"], set())
            if span["label"] in labels:
                produced[span["origin"]].add(span["label"])
    scopes: dict[str, list[str]] = {}
    for source in sorted(set(produced) | set(config.sources)):
        given = config.sources[source].labels if source in config.sources else None
        scope = [
            label for label in labels if label in (given if given is not None else produced.get(source, ()))
        ]
        if scope:
            scopes[source] = scope
        else:
            log.warning("label model: source %r has no label of %s in scope; it is left out", source, labels)
    return sorted(scopes), scopes


# ---------------------------------------------------------------------------------------------------
# fit and apply


def dawid_skene(
    votes: np.ndarray, n_classes: int, max_iterations: int, tolerance: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Dawid-Skene EM on an (N, S) vote matrix -> prior (K+1,), confusion (S, K+1 vote, K+1 true)
    P(vote | true) and the number of EM iterations run.

    The same algorithm as `crowdkit.aggregation.DawidSkene` (soft majority-vote start, M-step, then
    E/M steps; probabilities clipped at 1e-10), which the tests hold it to. Ours stops when the
    log-likelihood per vote gains less than `tolerance` (EM never lowers it); crowd-kit 1.4.2 stops
    when its ELBO estimate dips, which on our synthetic corpus happens after 2 iterations, far from
    the optimum, and its pandas steps are ~9x slower.
    """
    task, source = np.nonzero(votes != ABSTAIN)  # one entry per cast vote
    vote = votes[task, source].astype(np.int64)
    n_tasks, n_sources = votes.shape
    cell = source * n_classes + vote  # (M,) flat index of (source, vote)

    def m_step(post: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        counts = np.stack(  # (S * (K+1), K+1): expected count of (source, vote) per true class
            [
                np.bincount(cell, weights=post[task, j], minlength=n_sources * n_classes)
                for j in range(n_classes)
            ],
            axis=1,
        ).reshape(n_sources, n_classes, n_classes)
        counts = np.clip(counts, EPS, None)
        return post.mean(axis=0), counts / counts.sum(axis=1, keepdims=True)

    post = np.zeros((n_tasks, n_classes))  # (N, K+1) start: the share of votes per class
    np.add.at(post, (task, vote), 1.0)
    post /= post.sum(axis=1, keepdims=True)
    prior, confusion = m_step(post)
    previous, iterations = -np.inf, 0
    while iterations < max_iterations:
        iterations += 1
        log_conf = np.log(confusion).reshape(n_sources * n_classes, n_classes)  # (S*(K+1), K+1)
        log_joint = np.log(np.clip(prior, EPS, None))[None, :] + np.stack(
            [np.bincount(task, weights=log_conf[cell, j], minlength=n_tasks) for j in range(n_classes)],
            axis=1,
        )  # (N, K+1) log P(class, votes)
        top = log_joint.max(axis=1, keepdims=True)
        evidence = top[:, 0] + np.log(np.exp(log_joint - top).sum(axis=1))  # (N,) log P(votes)
        post = np.exp(log_joint - evidence[:, None])
        prior, confusion = m_step(post)
        likelihood = float(evidence.sum()) / max(len(task), 1)
        if likelihood - previous < tolerance:
            break
        previous = likelihood
    return prior, confusion, iterations


def fit_label_model(
    batches: Iterable[pa.Table],
    labels: Sequence[str],
    config: LabelModelConfig,
    column: str = "spans",
    seed: int = 0,
) -> tuple[LabelModel, LabelModelReport]:
    """Fit on a sample (seeded by `seed`) of at most `config.max_candidates` candidates from the streamed
    batches (e.g. `ds.iter_batches(batch_format="pyarrow")`); returns the model and its report."""
    sample = DocumentSample(config.max_candidates, seed, config.exclude_origins)
    for batch in batches:
        sample.add(batch, column)
    documents = sample.documents()
    sources, scopes = _scopes(documents, labels, config)
    alignment = Aligner(labels, sources, scopes).align(
        [d.spans for d in documents], [d.covered_by for d in documents], [d.length for d in documents]
    )
    votes, n_classes = alignment.votes, len(labels) + 1
    model = LabelModel(
        method=config.method,
        labels=list(labels),
        sources=sources,
        scopes=scopes,
        weights=[config.sources[s].weight if s in config.sources else 1.0 for s in sources],
        prior=[1.0] + [0.0] * len(labels),
        confusion=np.zeros((len(sources), n_classes, n_classes)).tolist(),
        observed=[[bool((votes[:, s] == k).any()) for k in range(n_classes)] for s in range(len(sources))],
        min_probability=config.min_probability,
    )
    if not alignment.size:
        log.warning(
            "label model: no candidate spans among %d documents: it will label nothing", sample.seen_documents
        )
    iterations = 0
    # the fitted values go into a new object, not model_copy, which would keep cached properties
    if config.method == "dawid_skene" and alignment.size:
        prior, confusion, iterations = dawid_skene(votes, n_classes, config.max_iterations, config.tolerance)
        model = LabelModel(**{**model.model_dump(), "prior": prior.tolist(), "confusion": confusion.tolist()})
    proba = model.predict_proba(votes)  # (N, K + 1) posteriors on the fit sample
    if config.method == "majority_vote" and alignment.size:
        model = LabelModel(**{**model.model_dump(), "prior": proba.mean(axis=0).tolist()})
    report = _report(model, alignment, proba, len(documents), iterations, config)
    log.info(
        "label model (%s): %d candidates in %d documents, %d sources, %d EM iterations",
        config.method,
        alignment.size,
        len(documents),
        len(sources),
        iterations,
    )
    return model, report


def _report(
    model: LabelModel,
    alignment: Alignment,
    proba: np.ndarray,
    n_documents: int,
    iterations: int,
    config: LabelModelConfig,
) -> LabelModelReport:
    votes, n = alignment.votes, max(alignment.size, 1)
    sources = []
    for s, source in enumerate(model.sources):
        voted = votes[:, s] != ABSTAIN
        per_label = []
        for k, label in enumerate(model.labels, start=1):
            hit = votes[:, s] == k
            in_scope = label in model.scopes[source]  # out of scope its none votes say nothing of the label
            true_mass = float(proba[voted, k].sum()) if in_scope else 0.0
            agree = float(proba[hit, k].sum())
            per_label.append(
                SourceLabelStats(
                    label=label,
                    votes=int(hit.sum()),
                    coverage=float(hit.sum()) / n,
                    accuracy=agree / true_mass if true_mass > 0 else None,
                    precision=agree / float(hit.sum()) if hit.any() else None,
                )
            )
        sources.append(
            SourceStats(
                source=source,
                scope=model.scopes[source],
                weight=model.weights[s],
                voted=float(voted.sum()) / n,
                labels=per_label,
            )
        )
    return LabelModelReport(
        method=model.method,
        documents=n_documents,
        candidates=alignment.size,
        iterations=iterations,
        converged=model.method == "majority_vote" or iterations < config.max_iterations,
        prior=dict(zip(model.classes, model.prior, strict=True)),
        skipped=alignment.skipped,
        sources=sources,
    )


def soft_spans(model: LabelModel, alignment: Alignment, n_documents: int) -> list[list[dict]]:
    """Per document: the label model's spans (score = P(label)), by start, end, then descending score."""
    proba = model.predict_proba(alignment.votes)  # (N, K + 1)
    out: list[list[dict]] = [[] for _ in range(n_documents)]
    rows, classes = np.nonzero(proba[:, 1:] >= max(model.min_probability, EPS))
    for c, k in zip(rows.tolist(), classes.tolist(), strict=True):
        out[alignment.documents[c]].append(
            {
                "start": int(alignment.starts[c]),
                "end": int(alignment.ends[c]),
                "label": model.labels[k],
                "score": float(proba[c, k + 1]),
                "origin": "label_model",
            }
        )
    for spans in out:
        spans.sort(key=lambda s: (s["start"], s["end"], -s["score"]))
    return out


def apply_label_model(
    batch: pa.Table, model: LabelModel, column: str = "spans", sources_column: str | None = "source_spans"
) -> pa.Table:
    """Batch function (`map_batches(partial(apply_label_model, model=m), batch_format="pyarrow")`):
    the sources' spans in `column` -> the label model's soft spans in `column`; the sources' spans are
    kept in `sources_column` (None drops them). Pure: the same batch always gives the same output."""
    require_columns(batch, column)
    spans = batch.column(column).to_pylist()
    covered = _column(batch, "covered_by")
    lengths = pc.utf8_length(batch.column("text")).to_pylist() if "text" in batch.column_names else None
    alignment = model.aligner.align(spans, covered, lengths)
    if alignment.skipped.get("bad_offsets"):
        log.warning(
            "label model: %d span(s) with offsets outside the text ignored", alignment.skipped["bad_offsets"]
        )
    result = pa.array(soft_spans(model, alignment, batch.num_rows), type=SPANS_TYPE)
    index = batch.column_names.index(column)
    out = batch.set_column(index, column, result)
    if sources_column is not None:
        out = out.append_column(sources_column, batch.column(column).cast(SPANS_TYPE))
    return out
