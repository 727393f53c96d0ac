"""`gliner-selftrain review push|pull`: the review queue in Label Studio (see pipelines/ops/review/).

    review push --labels RUN/iter_01/weak_labels [--labels SYNTH_ROWS] [--rows RUN/iter_01/train_rows]
    review pull --output data/review_gold.jsonl

The API key comes from `$LABEL_STUDIO_API_KEY` (a personal access token from Label Studio's Account &
Settings page; the variable's name is `review.label_studio.api_key_env`), never from a flag or a file.
Settings: the pipeline config's `review` section when it has one, then the flags here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from jobs.settings import UserError, load_config

review_app = typer.Typer(
    name="review",
    help="Review queue in Label Studio: push the documents most worth a person's time, pull gold rows back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML/JSON pipeline config (labels, review section)")
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="override a config key, e.g. -s data.labels='[a, b]'")
]
UrlOpt = Annotated[str | None, typer.Option(help="Label Studio URL (review.label_studio.url)")]
ProjectOpt = Annotated[str | None, typer.Option(help="project title (review.label_studio.project)")]


def review_settings(
    config: Path | None,
    overrides: list[str] | None,
    seed: int | None = None,
    flags: Mapping[str, Any] | None = None,
):
    """(pipeline config, review config): the pipeline config's `review` section, then the `flags` that
    were given (`{"label_studio.url": …}`; None is not given); `--seed` sets the job's one `seed`."""
    from pydantic import ValidationError

    from jobs.settings import describe_validation_error
    from pipelines import ReviewConfig

    cfg = load_config(config, list(overrides or []), {"seed": seed})
    data = cfg.review.model_dump()
    for key, value in (flags or {}).items():
        if value is None:
            continue
        section = data
        *parents, leaf = key.split(".")
        for parent in parents:
            section = section[parent]
        section[leaf] = value
    try:
        return cfg, ReviewConfig.model_validate(data)
    except ValidationError as error:
        raise UserError(f"bad review settings: {describe_validation_error(error)}") from error


@contextmanager
def label_studio_errors(url: str) -> Iterator[None]:
    """Connection and API failures as one-line user errors."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        yield
    except httpx.TransportError as error:
        raise UserError(f"cannot reach Label Studio at {url} ({type(error).__name__}: {error})") from error
    except ApiError as error:
        if error.status_code in (401, 403):
            raise UserError(
                f"Label Studio at {url} refused the API key (HTTP {error.status_code}): "
                "give a valid personal access token"
            ) from error
        body = json.dumps(error.body)[:300] if error.body is not None else ""
        raise UserError(f"Label Studio at {url} answered HTTP {error.status_code} {body}") from error
    except (ValueError, PermissionError) as error:
        raise UserError(str(error).splitlines()[0]) from error


@review_app.command("push")
def push_command(
    labels: Annotated[
        list[str],
        typer.Option(
            "--labels", help="Parquet labels with source spans: weak labels, synth rows (repeatable)"
        ),
    ],
    rows: Annotated[
        str | None,
        typer.Option(help="training rows (Parquet): their span scores are aggregated probabilities"),
    ] = None,
    model_version: Annotated[
        str, typer.Option(help="the model version shown on the pre-annotations")
    ] = "gliner-selftrain",
    budget: Annotated[int | None, typer.Option(help="documents to send (review.budget)")] = None,
    seed: Annotated[int | None, typer.Option(help="selection seed (the job's seed)")] = None,
    url: UrlOpt = None,
    project: ProjectOpt = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the selection, send nothing")] = False,
) -> None:
    """Send the documents most worth a person's time to Label Studio, pre-annotated with the current spans.

    Picks documents where the sources disagree (another label or boundary, or a span one source missed),
    where the aggregated probability is uncertain, or where the model is unsure; within --budget, the
    flagged labels take turns. Documents already in the project or in review.gold are skipped.
    """
    from pipelines import (
        connect_label_studio,
        gold_doc_ids,
        push_for_review,
        read_review_documents,
        select_for_review,
    )

    cfg, settings = review_settings(
        config,
        overrides,
        seed,
        {"budget": budget, "label_studio.url": url, "label_studio.project": project},
    )
    names = cfg.data.labels
    for path in [*labels, *([rows] if rows else [])]:
        if "://" not in path and not Path(path).exists():
            raise UserError(f"labels not found: {path} (Parquet file or folder)")
    if dry_run:
        with label_studio_errors(settings.label_studio.url):
            documents, _ = read_review_documents(labels, rows)
        chosen = select_for_review(documents, settings, exclude=gold_doc_ids(settings.gold), seed=cfg.seed)
        typer.echo(f"{len(chosen)} of {len(documents)} documents selected (budget {settings.budget}):")
        for c in chosen:
            typer.echo(f"  {c.doc_id}\t{c.priority:.2f}\t{c.turn_label}\t{dict(c.kinds())}")
        return
    lsc = settings.label_studio
    with label_studio_errors(lsc.url):
        client = connect_label_studio(lsc)
        report = push_for_review(
            client,
            labels,
            names,
            settings,
            model_version,
            rows,
            exclude=gold_doc_ids(settings.gold),
            seed=cfg.seed,
        )
    typer.echo(
        f"pushed {report.pushed} task(s) to project {lsc.project!r} (id {report.project_id}) at {lsc.url}; "
        f"{report.candidates} flagged documents, {report.already_in_project} already in the project"
    )
    typer.echo(f"per label: {report.per_label}; flags: {report.per_flag}")


@review_app.command("pull")
def pull_command(
    output: Annotated[
        Path | None, typer.Option(help="gold JSONL to merge the annotations into (review.gold)")
    ] = None,
    url: UrlOpt = None,
    project: ProjectOpt = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Fetch completed annotations as gold rows ({"doc_id", "text", "spans", "annotator", "annotated_at"}),
    merged into --output by doc_id (the latest annotation of a document wins)."""
    from pipelines import connect_label_studio, merge_gold, pull_annotations

    cfg, settings = review_settings(
        config, overrides, flags={"label_studio.url": url, "label_studio.project": project}
    )
    target = output or (Path(settings.gold) if settings.gold else None)
    if target is None:
        raise UserError("no output: give --output FILE.jsonl (or review.gold in the config)")
    lsc = settings.label_studio
    with label_studio_errors(lsc.url):
        client = connect_label_studio(lsc)
        report = pull_annotations(client, lsc.project, cfg.data.labels)
        added, replaced = merge_gold(target, report.rows)
    typer.echo(
        f"{report.annotated} of {report.tasks} task(s) annotated -> {len(report.rows)} gold row(s), "
        f"{report.spans} span(s); {added} added, {replaced} updated in {target}"
    )
    if report.repaired or report.dropped:
        typer.echo(f"regions: {report.repaired} offset(s) repaired from their text, {report.dropped} dropped")
