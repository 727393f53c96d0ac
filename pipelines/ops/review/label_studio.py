"""The Label Studio server side of the review queue: connect, find or create the project, push the
selected documents as tasks, pull the completed annotations as gold rows.

label-studio-sdk (`LabelStudio`) does the HTTP: its pagers page through projects and tasks
(`PAGE_SIZE` a request), `projects.import_tasks` imports the tasks with their predictions inline (one
request; `projects.import_predictions` would need a second one keyed by the new task ids),
`projects.list_unique_annotators` names the annotators (one request, not one per user). Ours:
- finding a project by title: the SDK's `title` filter matches substrings, so the exact title is
  picked from its answers;
- reading a task: the SDK's task model types `annotations` as a string (its OpenAPI schema says so), so
  they come back as the server's JSON inside a typed task; `task_json` takes the three fields a pull
  reads as plain JSON, and gold.py works on that;
- not the SDK's export (`projects.exports.as_json`): it returns the whole project in one response
  (no paging), is synchronous only on the community edition, and names annotators by id all the same.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.config import LabelStudioConfig, ReviewConfig
from pipelines.ops.review.gold import gold_row
from pipelines.ops.review.selection import (
    document_flags,
    load_texts,
    read_review_documents,
    select_for_review,
)
from pipelines.ops.review.tasks import config_labels, labeling_config, to_task

PAGE_SIZE = 100  # tasks per Label Studio list request


def connect_label_studio(config: LabelStudioConfig, api_key: str | None = None):
    """A `label_studio_sdk.LabelStudio` client (the key from `api_key`, else `$<api_key_env>`)."""
    from label_studio_sdk import LabelStudio

    key = api_key or os.environ.get(config.api_key_env)
    if not key:
        raise PermissionError(
            f"no Label Studio API key: set {config.api_key_env} (Account & Settings → Personal Access Token)"
        )
    return LabelStudio(base_url=config.url.rstrip("/"), api_key=key, timeout=config.timeout)


def find_project(client, title: str) -> int | None:
    """The id of the project titled exactly `title` (the API's filter matches substrings)."""
    for project in client.projects.list(title=title):
        if project.title == title:
            return int(project.id)
    return None


def ensure_project(client, title: str, labels: Sequence[str]) -> int:
    """The project's id; created with the pipeline's labels when missing. A project whose labels lack
    some of the pipeline's is an error (a reviewer could not mark them)."""
    project_id = find_project(client, title)
    if project_id is None:
        created = client.projects.create(
            title=title,
            label_config=labeling_config(labels),
            description="Picked by the gliner-selftrain review queue, pre-annotated with the current spans.",
            sampling="Sequential sampling",  # tasks come in the order pushed: most worth reviewing first
        )
        return int(created.id)
    existing = config_labels(client.projects.get(project_id).label_config or "<View/>")
    missing = [label for label in labels if label not in existing]
    if missing:
        raise ValueError(
            f"Label Studio project {title!r} has no label(s) {missing}: add them in its labeling settings "
            "or push to a new project (--project)"
        )
    return project_id


def task_json(task: Any) -> dict:
    """`id`, `data` and `annotations` of a task from the SDK's pager, as the JSON the server sent."""
    if isinstance(task, dict):
        return task
    return {"id": task.id, "data": task.data or {}, "annotations": list(task.annotations or [])}


def project_tasks(client, project_id: int, fields: str = "all") -> Iterator[dict]:
    """Every task of the project (`fields="all"`: with annotations and predictions), page by page."""
    for task in client.tasks.list(project=project_id, fields=fields, page_size=PAGE_SIZE):
        yield task_json(task)


def project_doc_ids(client, project_id: int) -> set[str]:
    tasks = project_tasks(client, project_id, fields="task_only")  # no annotations needed
    return {str((task.get("data") or {}).get("doc_id")) for task in tasks}


@dataclass
class PushReport:
    project_id: int
    pushed: int
    candidates: int  # documents with a flag (before the budget)
    already_in_project: int
    per_label: dict[str, int] = field(default_factory=dict)
    per_flag: dict[str, int] = field(default_factory=dict)
    doc_ids: list[str] = field(default_factory=list)


def push_for_review(
    client,
    label_paths: Sequence[str],
    labels: Sequence[str],
    config: ReviewConfig,
    model_version: str,
    rows_path: str | None = None,
    exclude: Iterable[str] = (),
    seed: int = 0,
) -> PushReport:
    """Select documents from the labels and create one task each (skipping documents already in the
    project or in `exclude`), pre-annotated with the current spans."""
    documents, text_path = read_review_documents(label_paths, rows_path)
    project_id = ensure_project(client, config.label_studio.project, labels)
    present = project_doc_ids(client, project_id)
    flagged = sum(1 for d in documents if document_flags(d, config))
    chosen = select_for_review(documents, config, exclude=present | set(exclude), seed=seed)
    by_id = {d.doc_id: d for d in documents}
    texts = load_texts([c.doc_id for c in chosen], text_path)
    tasks = []
    for candidate in chosen:
        doc = by_id[candidate.doc_id]
        doc.text = texts[candidate.doc_id]
        tasks.append(to_task(doc, candidate, model_version))
    if tasks:
        client.projects.import_tasks(id=project_id, request=tasks, return_task_ids=True)
    return PushReport(
        project_id,
        len(tasks),
        flagged,
        len(present & set(by_id)),
        dict(Counter(c.turn_label for c in chosen)),
        dict(sum((c.kinds() for c in chosen), Counter())),
        [c.doc_id for c in chosen],
    )


@dataclass
class PullReport:
    rows: list[dict]
    tasks: int  # tasks in the project
    annotated: int  # tasks with a completed (not skipped) annotation
    spans: int
    repaired: int  # regions whose offsets were fixed from their text
    dropped: int  # regions whose text is not in the document


def annotators(client, project_id: int) -> dict[int, str]:
    """user id -> email of the project's annotators; empty where the server cannot say (one older than
    the endpoint, or a key without the right): the rows then name annotators by id."""
    from label_studio_sdk.core.api_error import ApiError

    try:
        users = client.projects.list_unique_annotators(id=project_id)
    except ApiError:
        return {}
    return {int(u.id): u.email or str(u.id) for u in users if u.id is not None}


def pull_annotations(client, project_title: str, labels: Sequence[str] | None = None) -> PullReport:
    """Gold rows of every task with a completed annotation; one row per doc_id (its latest annotation)."""
    project_id = find_project(client, project_title)
    if project_id is None:
        raise ValueError(f"no Label Studio project {project_title!r} (push creates it)")
    tasks = list(project_tasks(client, project_id))
    emails = annotators(client, project_id) if any(task.get("annotations") for task in tasks) else {}
    latest: dict[str, dict] = {}
    annotated = repaired = dropped = 0
    for task in tasks:
        found = gold_row(task, emails, labels)
        if found is None:
            continue
        row, fixed, lost = found
        annotated += 1
        repaired += fixed
        dropped += lost
        known = latest.get(row["doc_id"])
        if known is None or (row["annotated_at"] or "") >= (known["annotated_at"] or ""):
            latest[row["doc_id"]] = row
    rows = sorted(latest.values(), key=lambda r: r["doc_id"])
    return PullReport(rows, len(tasks), annotated, sum(len(r["spans"]) for r in rows), repaired, dropped)
