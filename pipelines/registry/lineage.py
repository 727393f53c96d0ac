"""What a registered version depends on and where it is served from: the datasets as MLflow inputs of
the registering run, tags on the version, `lineage` (read back, for `gliner-selftrain lineage`) and the
serving export logged beside the version.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from pipelines.registry.provenance import DatasetRecord

DATASET_CONTEXT = "mlflow.data.context"  # the input tag MLflow's UI shows as the dataset's context
MAX_TAG_LENGTH = 5000


def _dataset_source(location: str):
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    with warnings.catch_warnings():  # "can be interpreted in multiple ways" for every local path
        warnings.simplefilter("ignore")
        try:
            return resolve_dataset_source(location)
        except mlflow.exceptions.MlflowException:
            return HTTPDatasetSource(location)


def log_datasets(
    datasets: Sequence[DatasetRecord], run_id: str | None = None, uri: str | None = None
) -> None:
    """The datasets as MLflow dataset inputs (name, digest, source, context, rows) of the active run, or of
    run `run_id` (at tracking URI `uri`): the job's parent run lists what its nested runs used."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    if not datasets:
        return
    found = [
        MetaDataset(_dataset_source(d.source), name=d.name, digest=d.digest)  # type: ignore[abstract]
        for d in datasets
    ]
    contexts = [d.context for d in datasets]
    tags = [{"rows": str(d.rows)} if d.rows is not None else None for d in datasets]
    if run_id is None:
        # log_inputs takes lists of optional items (invariant): typed so
        given: list[Any] = list(found)
        optional: list[str | None] = list(contexts)
        mlflow.log_inputs(datasets=given, contexts=optional, tags_list=tags)
        return
    inputs = [
        DatasetInput(
            dataset._to_mlflow_entity(),
            [InputTag(DATASET_CONTEXT, context), *(InputTag(k, v) for k, v in (tag or {}).items())],
        )
        for dataset, context, tag in zip(found, contexts, tags, strict=True)
    ]
    MlflowClient(uri).log_inputs(run_id, datasets=inputs)


def tag_version(client: MlflowClient, registered_model: str, version: str, tags: Mapping[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(registered_model, version, key, str(value)[:MAX_TAG_LENGTH])


def find_version(client: MlflowClient, registered_model: str, version_or_alias: str):
    """The model version for a number (`3`) or an alias (`champion`)."""
    if version_or_alias.isdigit():
        return client.get_model_version(registered_model, version_or_alias)
    return client.get_model_version_by_alias(registered_model, version_or_alias)


def lineage(client: MlflowClient, registered_model: str, version_or_alias: str) -> dict[str, Any]:
    """Everything recorded about one model version: the dataset inputs of the run that registered it
    and the version's tags."""
    found = find_version(client, registered_model, version_or_alias)
    datasets = []
    if found.run_id:
        inputs = client.get_run(found.run_id).inputs
        for entry in inputs.dataset_inputs if inputs is not None else []:
            tags: dict[str, Any] = {tag.key: tag.value for tag in entry.tags}
            if str(tags.get("rows", "")).isdigit():
                tags["rows"] = int(tags["rows"])
            source = entry.dataset.source
            with contextlib.suppress(json.JSONDecodeError, AttributeError):
                source = json.loads(source).get("uri", source)
            datasets.append(
                {
                    "context": tags.pop(DATASET_CONTEXT, ""),
                    "name": entry.dataset.name,
                    "digest": entry.dataset.digest,
                    "source": source,
                    **tags,
                }
            )
    return {
        "model": registered_model,
        "version": str(found.version),
        "aliases": list(getattr(found, "aliases", []) or []),
        "run_id": found.run_id,
        "created": found.creation_timestamp,
        "datasets": datasets,
        "tags": dict(sorted(found.tags.items())),
    }


TAG_GROUPS = (  # heading, tag prefix (or exact key); the first that matches takes the tag
    ("teacher (LLM labels)", ("teacher/", "synth/")),
    ("label model", ("label_model/",)),
    ("thresholds", ("threshold/",)),
    ("code and config", ("git_commit", "config_fingerprint")),
    ("promotion", ("promotion", "dev_micro_f1")),
    ("serving", ("serving/",)),
)


def format_lineage(data: Mapping[str, Any]) -> str:
    """`lineage` for a person: the version, its datasets with digests, its tags grouped."""
    aliases = f" ({', '.join(data['aliases'])})" if data["aliases"] else ""
    lines = [f"{data['model']} version {data['version']}{aliases}", f"run: {data['run_id'] or '-'}", ""]
    lines.append("datasets:")
    for d in data["datasets"] or []:
        rows = f", {d['rows']} rows" if d.get("rows") else ""
        lines.append(f"  {d['context']:<10} {d['name']}  digest {d['digest']}{rows}  ({d['source']})")
    if not data["datasets"]:
        lines.append("  (none recorded)")
    tags = dict(data["tags"])
    for heading, prefixes in (*TAG_GROUPS, ("other", ("",))):
        group = {k: v for k, v in tags.items() if k.startswith(prefixes)}
        if group:
            lines += ["", f"{heading}:"]
            lines += [f"  {key}: {value}" for key, value in group.items()]
            tags = {k: v for k, v in tags.items() if k not in group}
    return "\n".join(lines)


SERVING_PATH = "serving/onnx"


def log_serving_export(
    client: MlflowClient,
    registered_model: str,
    version: str,
    folder: str,
    precision: str,
    int8_f1_drop: float | None,
) -> str:
    """The ONNX export as artifacts of the run that registered the version (`serving/onnx/`), and tags
    on the version that point to it; returns the artifacts' URI."""
    found = client.get_model_version(registered_model, version)
    run_id = found.run_id
    if not run_id:  # registered from outside a run: a run of its own, linked by a tag
        run_id = client.create_run(
            "0", tags={"serving_for": f"{registered_model}/{version}", "mlflow.runName": "serving-export"}
        ).info.run_id
    client.log_artifacts(run_id, folder, artifact_path=SERVING_PATH)
    uri = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{SERVING_PATH}"
    tags = {"serving/onnx": uri, "serving/precision": precision, "serving/run_id": run_id}
    if int8_f1_drop is not None:
        tags["serving/int8_f1_drop"] = f"{int8_f1_drop:.4f}"
    else:  # an earlier int8 export's figure does not describe this one
        with contextlib.suppress(mlflow.exceptions.MlflowException):
            client.delete_model_version_tag(registered_model, version, "serving/int8_f1_drop")
    tag_version(client, registered_model, version, tags)
    return uri
