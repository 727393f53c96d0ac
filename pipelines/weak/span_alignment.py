"""Span alignment: one document's spans from several weak sources -> candidate spans and a vote matrix.

Candidates  every distinct `(start, end)` that some source labeled with a known label is one candidate.
            Boundaries are never merged: `New York` and `New York City` are two candidates, and the
            label model decides for each on its own (soft targets may therefore overlap; a span model
            scores every span independently).
Votes       for candidate c and source s the vote is
              a label   s produced exactly `(c.start, c.end)` with that label (the one with the highest
                        score when s gave the span two labels);
              none      s ran on the document, did not produce c with any label, and c was proposed
                        (by any source) with a label in s's scope -- s "could have said it and did not".
                        A source that labeled an overlapping span with other boundaries votes none on c:
                        to it, c's boundaries are wrong;
              abstain   s did not run on the document (not in `covered_by`), or none of c's proposed
                        labels is in s's scope: a `country` gazetteer says nothing about a span that only
                        a `person` source proposed, so it neither supports nor contradicts it.
            A source's scope is the labels it can produce (config, else those it produced in the fit
            sample). Sources with every label in scope (GLiNER, an LLM) therefore never abstain on a
            document they ran on.
Encoding    votes are int16: ABSTAIN (-1), NONE (0), label k (1..K) for `labels[k - 1]`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

ABSTAIN = -1
NONE = 0


@dataclass
class Alignment:
    """Candidates of one or more documents and every source's vote on each."""

    starts: np.ndarray  # (N,) int32
    ends: np.ndarray  # (N,) int32
    votes: np.ndarray  # (N, S) int16: ABSTAIN, NONE or 1..K
    documents: np.ndarray  # (N,) int32: index of the candidate's document in the input order
    skipped: dict[str, int] = field(
        default_factory=dict
    )  # spans not used: unknown label / origin, bad offsets

    @property
    def size(self) -> int:
        return int(self.starts.shape[0])


class Aligner:
    """Aligns documents against a fixed list of sources (with their label scopes) and labels."""

    def __init__(self, labels: Sequence[str], sources: Sequence[str], scopes: Mapping[str, Iterable[str]]):
        self.labels = list(labels)
        self.sources = list(sources)
        self.label_index = {label: k + 1 for k, label in enumerate(self.labels)}
        self.source_index = {source: s for s, source in enumerate(self.sources)}
        # (S, K + 1) bool: scope[s, k] — source s can produce label k (column 0, "none", unused)
        self.scope = np.zeros((len(self.sources), len(self.labels) + 1), dtype=bool)
        for source, labels_in_scope in scopes.items():
            if source in self.source_index:
                for label in labels_in_scope:
                    if label in self.label_index:
                        self.scope[self.source_index[source], self.label_index[label]] = True

    def align(
        self,
        documents: Sequence[Sequence[Mapping] | None],
        covered_by: Sequence[Sequence[str] | None] | None = None,
        text_lengths: Sequence[int | None] | None = None,
    ) -> Alignment:
        """Spans per document (+ the sources that ran on each, None = all; + the text lengths, to drop
        spans that end past the text) -> candidates and votes."""
        n_sources = len(self.sources)
        starts: list[int] = []
        ends: list[int] = []
        rows: list[np.ndarray] = []
        owners: list[int] = []
        skipped = {"unknown_label": 0, "unknown_origin": 0, "bad_offsets": 0}
        for d, spans in enumerate(documents):
            # (start, end) -> {source: (score, label index)}: each source's best label for the span
            best: dict[tuple[int, int], dict[int, tuple[float, int]]] = {}
            length = text_lengths[d] if text_lengths is not None else None
            for span in spans or ():
                s = self.source_index.get(span["origin"])
                k = self.label_index.get(span["label"])
                start, end = span["start"], span["end"]
                if s is None:
                    skipped["unknown_origin"] += 1
                    continue
                if k is None:
                    skipped["unknown_label"] += 1
                    continue
                if (
                    start is None
                    or end is None
                    or not 0 <= start < end
                    or (length is not None and end > length)
                ):
                    skipped["bad_offsets"] += 1
                    continue
                score = float(span["score"] if span.get("score") is not None else 0.0)
                given = best.setdefault((int(start), int(end)), {})
                if s not in given or (score, -k) > (given[s][0], -given[s][1]):
                    given[s] = (score, k)
            if not best:
                continue
            covered = np.ones(n_sources, dtype=bool)
            if covered_by is not None and covered_by[d] is not None:
                covered[:] = False
                for source in covered_by[d] or ():
                    if source in self.source_index:
                        covered[self.source_index[source]] = True
            for (start, end), given in sorted(best.items()):
                proposed = np.zeros(len(self.labels) + 1, dtype=bool)
                for _, k in given.values():
                    proposed[k] = True
                # none where the source ran here and some proposed label is in its scope; else abstain
                row = np.where(covered & (self.scope & proposed).any(axis=1), NONE, ABSTAIN).astype(np.int16)
                for s, (_, k) in given.items():
                    row[s] = k
                starts.append(start)
                ends.append(end)
                rows.append(row)
                owners.append(d)
        return Alignment(
            starts=np.asarray(starts, dtype=np.int32),
            ends=np.asarray(ends, dtype=np.int32),
            votes=np.stack(rows) if rows else np.zeros((0, n_sources), dtype=np.int16),
            documents=np.asarray(owners, dtype=np.int32),
            skipped={key: value for key, value in skipped.items() if value},
        )
