"""A synthetic corpus with known truth and weak sources of known, label-dependent quality.

Each document is random words; some word runs are true entities (person / organisation / location),
others are distractors (true class none). Every source draws its vote on each of them from its own
confusion row P(vote | true class) (vote none = no span), independently given the truth, and with
`boundary_error` probability it puts the span one word too long (a candidate whose truth is none).

Sources (the test and `bench/label_model_synthetic.py` use these):
  person_expert  good at person, confuses organisations with locations and persons
  org_expert     the reverse: good at organisation, confuses persons
  noisy_a/b/c    right 40% of the time; otherwise another label, often the same wrong one (location)
  loc_gazetteer  only location in scope: high precision, recall 0.6
"""

from __future__ import annotations

import random
from dataclasses import dataclass

LABELS = ["person", "organisation", "location"]
CLASSES = ["none", *LABELS]

# P(vote | true class): rows true none / person / organisation / location, columns the vote in that order
SOURCES: dict[str, list[list[float]]] = {
    "person_expert": [
        [0.95, 0.03, 0.01, 0.01],
        [0.05, 0.90, 0.03, 0.02],
        [0.20, 0.35, 0.10, 0.35],
        [0.20, 0.10, 0.10, 0.60],
    ],
    "org_expert": [
        [0.95, 0.01, 0.03, 0.01],
        [0.20, 0.10, 0.35, 0.35],
        [0.05, 0.03, 0.90, 0.02],
        [0.20, 0.10, 0.10, 0.60],
    ],
    **{
        f"noisy_{name}": [
            [0.70, 0.05, 0.05, 0.20],
            [0.15, 0.40, 0.10, 0.35],
            [0.15, 0.10, 0.40, 0.35],
            [0.15, 0.10, 0.10, 0.65],
        ]
        for name in "abc"
    },
    "loc_gazetteer": [
        [0.98, 0.0, 0.0, 0.02],
        [0.97, 0.0, 0.0, 0.03],
        [0.95, 0.0, 0.0, 0.05],
        [0.40, 0.0, 0.0, 0.60],
    ],
}
SCOPES = {"loc_gazetteer": ["location"]}
TRUE_PRIOR = [0.25, 0.30, 0.30, 0.15]  # none (distractors), person, organisation, location


@dataclass
class Corpus:
    documents: list[dict]  # doc_id, text, source, spans (every source's), covered_by
    truth: dict[
        tuple[str, int, int], str
    ]  # (doc_id, start, end) -> class, for every true span and distractor


def make_corpus(n_documents: int, seed: int, boundary_error: float = 0.05, words: int = 40) -> Corpus:
    rng = random.Random(seed)
    documents = []
    truth: dict[tuple[str, int, int], str] = {}
    for d in range(n_documents):
        doc_id = f"doc{d:06d}"
        tokens = ["".join(rng.choices("abcdefghij", k=rng.randint(3, 8))) for _ in range(words)]
        offsets = []
        position = 0
        for token in tokens:
            offsets.append((position, position + len(token)))
            position += len(token) + 1
        spans = []
        # entities of 1-2 words at every 4th word, so a one-word-too-long span never meets the next one
        for w in range(0, words - 3, 4):
            cls = rng.choices(range(len(CLASSES)), TRUE_PRIOR)[0]
            width = rng.randint(1, 2)
            start, end = offsets[w][0], offsets[w + width - 1][1]
            truth[(doc_id, start, end)] = CLASSES[cls]
            for source, confusion in SOURCES.items():
                vote = rng.choices(range(len(CLASSES)), confusion[cls])[0]
                if vote == 0:
                    continue
                span_end = offsets[w + width][1] if rng.random() < boundary_error else end
                truth.setdefault((doc_id, start, span_end), "none")
                score = round(rng.uniform(0.5, 1.0), 3)
                spans.append(
                    {
                        "start": start,
                        "end": span_end,
                        "label": CLASSES[vote],
                        "score": score,
                        "origin": source,
                    }
                )
        rng.shuffle(spans)
        documents.append(
            {
                "doc_id": doc_id,
                "text": " ".join(tokens),
                "source": "synthetic",
                "spans": spans,
                "covered_by": None,
            }
        )
    return Corpus(documents, truth)
