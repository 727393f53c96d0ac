"""Multi-task prompting: tasks beyond NER by putting the task in the prompt.

The multi-task GLiNER (a token-level model, e.g. knowledgator/gliner-multitask-*)
is trained to read an instruction in front of the text and mark the spans that
answer it. These helpers build the prompts exactly as the official package's
`gliner.multitask` pipelines do (0.2.29), run the model, and return typed results
with character offsets into the *original* text:

  task                          text given to the model              labels
  open NER                      text                                 free-text descriptions
  question answering            "Answer the following question: {q} \\n {text}"   ["answer"]
  open information extraction   "{instruction} \\n {text}"             ["match"] (or yours)
  summarisation                 "Summarize the following text highlighting the most important
                                information: \\n {text}"                 ["summary"]
  relation extraction           1) NER on the text ("named entity"), then
                                "Extract relationships between entities from the text:  \\n {text}"
                                with labels "{head entity} <> {relation}"; the spans are the tails.

Spans that the model marks inside the instruction rather than the text are
dropped (the official pipelines return them too, as text without offsets).
Works with any architecture and either backend (a `Predictor`); only a multi-task checkpoint
gives useful answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gliner_core.predictor import Predictor

QA_PROMPT = "Answer the following question: {}"
SUMMARY_PROMPT = "Summarize the following text highlighting the most important information:"
RELATION_PROMPT = "Extract relationships between entities from the text: "
PROMPT_SEPARATOR = " \n "  # between the instruction and the text, as the official pipelines


@dataclass(frozen=True)
class Span:
    """A piece of the input text: characters [start, end), with the model's score."""

    start: int
    end: int
    text: str
    score: float


@dataclass(frozen=True)
class Entity(Span):
    label: str


@dataclass(frozen=True)
class Answer(Span):
    question: str


@dataclass(frozen=True)
class Summary:
    text: str  # the selected spans joined by spaces, in text order
    spans: list[Span]


@dataclass(frozen=True)
class Relation:
    head: str  # the head entity's text (as found by the NER step, or as given)
    relation: str
    tail: Span  # where the tail is in the text
    score: float


def prompted(instruction: str, text: str) -> str:
    """The model input for an instruction: `f"{instruction} \\n {text}"` (the official format)."""
    return f"{instruction}{PROMPT_SEPARATOR}{text}"


def open_ner(
    model: Predictor,
    texts: Sequence[str],
    labels: Mapping[str, str] | Sequence[str],
    threshold: float = 0.5,
    flat_ner: bool = True,
    multi_label: bool = False,
    batch_size: int = 8,
) -> list[list[Entity]]:
    """Entities described in free text: `{"drug": "a medication or active substance"}` or plain names."""
    results = model.batch_predict_entities(
        texts, labels, batch_size=batch_size, threshold=threshold, flat_ner=flat_ner, multi_label=multi_label
    )
    return [[Entity(e["start"], e["end"], e["text"], e["score"], e["label"]) for e in r] for r in results]


def extract_answers(
    model: Predictor,
    texts: Sequence[str],
    questions: str | Sequence[str],
    threshold: float = 0.5,
    batch_size: int = 8,
    prompt: str = QA_PROMPT,
    label: str = "answer",
) -> list[list[Answer]]:
    """Extractive QA: answer spans per text, best first.

    `questions` is one question for every text, or one per text (the official
    pipeline uses the first question of a list for every text).
    """
    texts = _texts(texts)
    if isinstance(questions, str):
        questions = [questions] * len(texts)
    if len(questions) != len(texts):
        raise ValueError(f"got {len(questions)} questions for {len(texts)} texts: give one, or one per text")
    instructions = [prompt.format(q) for q in questions]
    found = _run_prompted(model, instructions, texts, [label], threshold, batch_size)
    return [
        sorted((Answer(s.start, s.end, s.text, s.score, q) for s, _ in spans), key=lambda a: -a.score)
        for spans, q in zip(found, questions, strict=True)
    ]


def open_extract(
    model: Predictor,
    texts: Sequence[str],
    instruction: str,
    labels: Sequence[str] = ("match",),
    threshold: float = 0.5,
    batch_size: int = 8,
) -> list[list[Entity]]:
    """Open information extraction: spans that match an instruction ("Find all positive aspects ...")."""
    found = _run_prompted(model, [instruction] * len(_texts(texts)), texts, labels, threshold, batch_size)
    return [[Entity(s.start, s.end, s.text, s.score, lab) for s, lab in spans] for spans in found]


def summarize(
    model: Predictor,
    texts: Sequence[str],
    threshold: float = 0.25,
    batch_size: int = 8,
    prompt: str = SUMMARY_PROMPT,
    label: str = "summary",
) -> list[Summary]:
    """Extractive summary: the spans the model selects, joined in text order (official default threshold)."""
    found = _run_prompted(model, [prompt] * len(_texts(texts)), texts, [label], threshold, batch_size)
    summaries = []
    for spans in found:
        ordered = sorted((s for s, _ in spans), key=lambda s: s.start)
        summaries.append(Summary(" ".join(s.text for s in ordered), ordered))
    return summaries


def extract_relations(
    model: Predictor,
    texts: Sequence[str],
    relations: Sequence[str],
    entity_labels: Sequence[str] = ("named entity",),
    heads: Sequence[Sequence[str]] | None = None,
    ner_threshold: float = 0.5,
    rel_threshold: float = 0.5,
    batch_size: int = 8,
    prompt: str = RELATION_PROMPT,
) -> list[list[Relation]]:
    """Relations as (head, relation, tail span): the tail is what the model marks for "{head} <> {relation}".

    Heads are the distinct entity texts that NER finds with `entity_labels`
    (in order of appearance; the official pipeline uses a set, whose order, and
    so its scores, vary between runs), or `heads` given per text.
    """
    texts = _texts(texts)
    if isinstance(relations, str) or not relations:
        raise ValueError("relations must be a non-empty list of relation names")
    if heads is None:
        entities = model.batch_predict_entities(
            texts, entity_labels, batch_size=batch_size, threshold=ner_threshold
        )
        heads = [list(dict.fromkeys(e["text"] for e in found)) for found in entities]
    elif len(heads) != len(texts):
        raise ValueError(f"got heads for {len(heads)} texts, expected {len(texts)}")
    label_sets: list[dict[str, tuple[str, str]]] = [
        {f"{head} <> {relation}": (head, relation) for relation in relations for head in text_heads}
        for text_heads in heads
    ]
    found = _run_prompted(
        model, [prompt] * len(texts), texts, [list(ls) for ls in label_sets], rel_threshold, batch_size
    )
    return [
        [Relation(*pairs[lab], tail=span, score=span.score) for span, lab in spans]
        for spans, pairs in zip(found, label_sets, strict=True)
    ]


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError(f"texts must be a list of strings, got {type(texts).__name__}")
    return list(texts)


def _run_prompted(
    model: Predictor,
    instructions: Sequence[str],
    texts: Sequence[str],
    labels: Sequence[str] | Sequence[list[str]],
    threshold: float,
    batch_size: int,
) -> list[list[tuple[Span, str]]]:
    """Run `instruction \\n text` per text; (span, label) pairs with offsets into the text itself.

    `labels` is one label list for all texts, or (a list of lists) one per text;
    texts with the same labels are predicted together.
    """
    texts = _texts(texts)
    per_text = [list(labels)] * len(texts) if all(isinstance(x, str) for x in labels) else labels
    if len(per_text) != len(texts):
        raise ValueError(f"got {len(per_text)} label lists for {len(texts)} texts")
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, text_labels in enumerate(per_text):
        if text_labels:
            groups.setdefault(tuple(text_labels), []).append(i)  # type: ignore[arg-type]
    out: list[list[tuple[Span, str]]] = [[] for _ in texts]
    for group_labels, indices in groups.items():
        inputs = [prompted(instructions[i], texts[i]) for i in indices]
        results = model.batch_predict_entities(
            inputs, list(group_labels), batch_size=batch_size, threshold=threshold
        )
        for i, found in zip(indices, results, strict=True):
            shift = len(instructions[i]) + len(PROMPT_SEPARATOR)
            out[i] = [
                (Span(e["start"] - shift, e["end"] - shift, e["text"], e["score"]), e["label"])
                for e in found
                if e["start"] >= shift  # spans inside the instruction are not part of the text
            ]
    return out
