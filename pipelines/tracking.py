"""MLflow: runs, params, the model as a pyfunc in the registry, and the champion alias."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient
from pydantic import BaseModel

from pipelines.reports import Tracked
from pipelines.storage import redact_uri, resolve

MAX_PARAM_LENGTH = 6000


def tracking_uri(configured: str | None, storage_path: str) -> str:
    """Configured URI, else $MLFLOW_TRACKING_URI, else a SQLite file beside the run data (absolute path)."""
    if configured:
        return configured
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    folder = Path(resolve(storage_path))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def use_experiment(name: str, uri: str, storage_path: str) -> None:
    """Activate the experiment; with a local SQLite store its artifacts go beside it, not into ./mlruns.

    A URI with credentials (`https://user:password@host`) switches off MLflow's own "View run at <uri>"
    lines, which would print the password."""
    if redact_uri(uri) != uri:
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:") and mlflow.get_experiment_by_name(name) is None:
        artifacts = Path(resolve(storage_path)) / "mlartifacts"
        mlflow.create_experiment(name, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(name)


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
            artifacts={"gliner": model_dir, "settings": str(settings)},
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
    config = json.loads((Path(model_dir) / "gliner_config.json").read_text())
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

    def register(self, model_dir: str, labels: Mapping[str, str], threshold: float) -> str:
        return log_model(model_dir, labels, threshold, self.name)

    def promote(self, version: str, f1: float) -> None:
        promote(self.client, self.name, version, self.alias, f1)

    def record_decision(self, version: str, promoted: bool, reason: str) -> None:
        tag_decision(self.client, self.name, version, promoted, reason)
