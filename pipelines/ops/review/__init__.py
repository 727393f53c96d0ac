"""Review queue: the weak-labeled documents most worth a person's time go to Label Studio with the
current spans as pre-annotations; the corrected documents come back as gold rows.

    select   documents -> flags -> priority -> `budget` documents, diverse across labels (pure, seeded)
    push     Parquet labels -> selection -> Label Studio tasks with predictions (label-studio-sdk)
    pull     Label Studio annotations -> gold rows (JSONL, deduplicated by doc_id)

Modules, in the order the data goes:
    selection.py     flags, priorities, `select_for_review`; the review documents read from Parquet labels
    tasks.py         the labeling config and the tasks with their pre-annotations (pure)
    gold.py          a task's annotation -> a gold row (offsets checked); the gold JSONL merge (pure)
    label_studio.py  the server: connect, project, `push_for_review`, `pull_annotations`
"""

from pipelines.ops.review import label_studio
from pipelines.ops.review.gold import gold_doc_ids, merge_gold, region_span
from pipelines.ops.review.label_studio import (
    PullReport,
    PushReport,
    connect_label_studio,
    find_project,
    pull_annotations,
    push_for_review,
)
from pipelines.ops.review.selection import (
    Candidate,
    Flag,
    ReviewDocument,
    document_flags,
    read_review_documents,
    select_for_review,
)
from pipelines.ops.review.tasks import config_labels, labeling_config

__all__ = [
    "Candidate",
    "Flag",
    "PullReport",
    "PushReport",
    "ReviewDocument",
    "config_labels",
    "connect_label_studio",
    "document_flags",
    "find_project",
    "gold_doc_ids",
    "label_studio",
    "labeling_config",
    "merge_gold",
    "pull_annotations",
    "push_for_review",
    "read_review_documents",
    "region_span",
    "select_for_review",
]
