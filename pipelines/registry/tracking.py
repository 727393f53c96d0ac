"""MLflow: runs, params, the model as a pyfunc in the registry, the champion alias, each version's
provenance (dataset inputs and tags, `lineage` reads them back) and its serving export.

The tracking URI is a server (`http://mlflow:5000`, credentials from MLFLOW_TRACKING_USERNAME /
MLFLOW_TRACKING_PASSWORD), a database URI, or by default a SQLite file beside a local
`storage_path`. `check_tracking` asks a server once before any work, so that refused credentials or
a wrong address end the job at its start, not after training.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient
from pydantic import BaseModel

from pipelines.data.storage import is_uri, local_copy, redact_uri, resolve
from pipelines.registry.provenance import DatasetRecord, Provenance
from pipelines.reports import Tracked

MAX_PARAM_LENGTH = 6000


def tracking_uri(configured: str | None, storage_path: str) -> str:
    """Configured URI, else $MLFLOW_TRACKING_URI, else a SQLite file beside the run data (absolute path)."""
    if configured:
        return configured
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if is_uri(storage_path):
        raise ValueError(
            f"storage_path {redact_uri(storage_path)} is not a local folder, so MLflow cannot keep its "
            "SQLite file beside it: set tracking.tracking_uri (or MLFLOW_TRACKING_URI) to an MLflow server"
        )
    folder = Path(resolve(storage_path))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


@contextlib.contextmanager
def restored_env(*names: str):
    """The environment variables `names` put back as they were (set or unset) when the block ends."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def own_tracking_env() -> contextlib.AbstractContextManager:
    """Leave $MLFLOW_TRACKING_URI as it was: `mlflow.set_tracking_uri` exports it, so without this a second
    job in the same process (a notebook, a test) would resolve its default store to the first job's."""
    return restored_env("MLFLOW_TRACKING_URI")


def use_experiment(name: str, uri: str, storage_path: str) -> None:
    """Activate the experiment; with a local SQLite store its artifacts go beside it, not into ./mlruns.

    A URI with credentials (`https://user:password@host`) switches off MLflow's own "View run at <uri>"
    lines, which would print the password."""
    if redact_uri(uri) != uri:
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:") and mlflow.get_experiment_by_name(name) is None:
        artifacts = (
            f"{storage_path.rstrip('/')}/mlartifacts"
            if is_uri(storage_path)
            else (Path(resolve(storage_path)) / "mlartifacts").as_uri()
        )
        mlflow.create_experiment(name, artifact_location=artifacts)
    mlflow.set_experiment(name)


@contextlib.contextmanager
def _one_attempt(timeout_s: int = 15):
    """MLflow's HTTP client with one attempt and a short timeout (its default retries for minutes)."""
    names = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")
    with restored_env(*names):
        os.environ.update({names[0]: "0", names[1]: str(timeout_s)})
        yield


def check_tracking(uri: str) -> None:
    """For a tracking server: one request, so that bad credentials or a wrong address fail now.

    Refused credentials raise `PermissionError`, an unreachable server `ConnectionError`, each with a
    one-line message (the URI's password redacted)."""
    if not uri.startswith(("http://", "https://")):
        return
    where = redact_uri(uri)
    try:
        with _one_attempt():
            MlflowClient(uri).search_experiments(max_results=1)
    except mlflow.exceptions.MlflowException as error:
        text = str(error)
        if error.error_code in ("UNAUTHENTICATED", "PERMISSION_DENIED") or any(
            f"error code {code}" in text for code in (401, 403)
        ):
            raise PermissionError(
                f"MLflow at {where} refused the credentials: set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) to a user of that server"
            ) from None
        first = redact_uri(text.strip().splitlines()[0] if text.strip() else type(error).__name__)
        raise ConnectionError(f"cannot use MLflow at {where}: {first[:300]}") from None


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> `section.key: value` params (long values cut to MLflow's limit)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            text = json.dumps(value) if not isinstance(value, str) else value
            out[name] = text[:MAX_PARAM_LENGTH]
    return out


def log_report(report: Any) -> None:
    """Everything a stage's report asks MLflow to keep (`report.tracked()`), in the active run."""
    tracked: Tracked = report.tracked()
    if tracked.metrics:
        mlflow.log_metrics({k: float(v) for k, v in tracked.metrics.items()})
    if tracked.params:
        mlflow.log_params(tracked.params)
    for name, data in tracked.json_artifacts.items():
        log_json(data, name)
    for name, text in tracked.text_artifacts.items():
        log_text(text, name)


def log_json(data: Any, name: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / name
        path.write_text(json.dumps(data, indent=2, default=str))
        mlflow.log_artifact(str(path))


def log_text(text: str, name: str) -> None:
    mlflow.log_text(text, name)


class TextRow(BaseModel):
    text: str  # other fields (a DataFrame's other columns, e.g. an id) are ignored


class PredictedEntity(BaseModel):
    start: int  # character offsets into the text, end exclusive
    end: int
    text: str
    label: str
    score: float


class Prediction(BaseModel):
    text: str
    entities: list[PredictedEntity]


class GLiNERPyfunc(PythonModel):
    """Texts in, entities out: `predict(DataFrame with a "text" column)` (or `[{"text": …}, …]`) ->
    one `Prediction` per row. The type hints give the registered model its signature; `params`
    may override `labels` (default: the registered ones, with their prompts) and `threshold`."""

    def load_context(self, context) -> None:
        from gliner_core import GLiNER

        self.model = GLiNER.from_pretrained(context.artifacts["gliner"])
        self.settings = json.loads(Path(context.artifacts["settings"]).read_text())

    def predict(
        self, context, model_input: list[TextRow], params: dict[str, Any] | None = None
    ) -> list[Prediction]:
        params = params or {}
        known: dict[str, str] = self.settings["labels"]  # label -> prompt
        asked = params.get("labels") or list(known)
        labels = {str(label): known.get(str(label), str(label)) for label in asked}
        threshold: float | None = float(params.get("threshold", self.settings["threshold"]))
        if self.settings.get("calibrated") and threshold == self.settings["threshold"]:
            threshold = None  # not asked for another: the checkpoint's calibrated per-label thresholds
        texts = [row.text for row in model_input]
        found = self.model.batch_predict_entities(texts, labels, threshold=threshold)
        return [
            Prediction(text=text, entities=[PredictedEntity(**e) for e in entities])
            for text, entities in zip(texts, found, strict=True)
        ]


def log_model(model_dir: str, labels: Mapping[str, str], threshold: float, registered_model: str) -> str:
    """Log the checkpoint as a pyfunc model in the active run and register it; returns the version."""
    with tempfile.TemporaryDirectory() as directory:
        settings = Path(directory) / "settings.json"
        calibrated = _calibrated_thresholds(model_dir)
        settings.write_text(
            json.dumps({"labels": dict(labels), "threshold": threshold, "calibrated": bool(calibrated)})
        )
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=GLiNERPyfunc(),
            artifacts={"gliner": local_copy(model_dir), "settings": str(settings)},
            registered_model_name=registered_model,
            # the example's params become the signature's params, their defaults the registered ones
            input_example=(
                [{"text": "Ada Lovelace met Charles Babbage in London."}],
                {"labels": list(labels), "threshold": float(threshold)},
            ),
            pip_requirements=["gliner-selftrain", "torch", "transformers", "safetensors", "pandas"],
        )
    version = str(info.registered_model_version)
    if calibrated:  # the thresholds it predicts with, on the model version
        client = MlflowClient()
        for label, value in calibrated.items():
            client.set_model_version_tag(registered_model, version, f"threshold/{label}", f"{value:.3f}")
    return version


def _calibrated_thresholds(model_dir: str) -> dict[str, float]:
    config = json.loads((Path(local_copy(model_dir)) / "gliner_config.json").read_text())
    return dict(config.get("label_thresholds") or {})


def champion(client: MlflowClient, registered_model: str, alias: str) -> tuple[str, str] | None:
    """(version, local checkpoint path) of the model under `alias`, or None when there is none."""
    try:
        version = client.get_model_version_by_alias(registered_model, alias)
    except mlflow.exceptions.MlflowException:
        return None
    root = mlflow.artifacts.download_artifacts(f"models:/{registered_model}@{alias}")
    return version.version, str(Path(root) / "artifacts" / Path(_artifact_name(root)).name)


def _artifact_name(root: str) -> str:
    artifacts = Path(root) / "artifacts"
    folders = [p for p in artifacts.iterdir() if p.is_dir()]
    if len(folders) != 1:
        raise RuntimeError(f"unexpected artifact layout under {artifacts}: {folders}")
    return str(folders[0])


def promote(client: MlflowClient, registered_model: str, version: str, alias: str, f1: float) -> None:
    client.set_registered_model_alias(registered_model, alias, version)
    client.set_model_version_tag(registered_model, version, "dev_micro_f1", f"{f1:.6f}")


def tag_decision(
    client: MlflowClient, registered_model: str, version: str, promoted: bool, reason: str
) -> None:
    """The promotion decision on the model version (and the active run), with its reason."""
    client.set_model_version_tag(
        registered_model, version, "promotion", "promoted" if promoted else "kept out"
    )
    client.set_model_version_tag(registered_model, version, "promotion_reason", reason)
    mlflow.set_tags({"promotion": "promoted" if promoted else "kept out", "promotion_reason": reason})


class Registry:
    """The job's registered model: register versions, find and move the champion alias, record decisions."""

    def __init__(self, uri: str, registered_model: str, alias: str):
        self.uri, self.name, self.alias = uri, registered_model, alias
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:  # created on first use: constructing it may create the SQLite tables
            self._client = MlflowClient(self.uri)
        return self._client

    def champion(self) -> tuple[str, str] | None:
        """(version, local checkpoint path) of the champion, or None when there is none."""
        return champion(self.client, self.name, self.alias)

    def register(
        self,
        model_dir: str,
        labels: Mapping[str, str],
        threshold: float,
        provenance: Provenance | None = None,
    ) -> str:
        """Log and register the checkpoint in the active run; its provenance goes with it: the datasets
        as inputs of that run, the tags on the new version."""
        if provenance is not None:
            log_datasets(provenance.datasets)
        version = log_model(model_dir, labels, threshold, self.name)
        if provenance is not None:
            tag_version(self.client, self.name, version, provenance.tags)
        return version

    def promote(self, version: str, f1: float) -> None:
        promote(self.client, self.name, version, self.alias, f1)

    def record_decision(self, version: str, promoted: bool, reason: str) -> None:
        tag_decision(self.client, self.name, version, promoted, reason)


# -- provenance ------------------------------------------------------------------------------------

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


def log_datasets(datasets: Sequence[DatasetRecord]) -> None:
    """The datasets as MLflow dataset inputs of the active run (name, digest, source, context, rows)."""
    from mlflow.data.meta_dataset import MetaDataset

    if not datasets:
        return
    mlflow.log_inputs(
        datasets=[
            MetaDataset(_dataset_source(d.source), name=d.name, digest=d.digest)  # type: ignore[abstract]
            for d in datasets
        ],
        contexts=[d.context for d in datasets],
        tags_list=[{"rows": str(d.rows)} if d.rows is not None else None for d in datasets],
    )


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


# -- serving ---------------------------------------------------------------------------------------

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
