"""The model registry: a checkpoint logged as an MLflow pyfunc (texts in, entities out) and registered,
the champion alias, and each version's promotion decision.

    registry = Registry.open(config)                   # the job's registered model, its tracking URI checked
    version = registry.register(model_dir, labels, threshold, provenance)
    registry.decide(version, promoted, reason, f1)     # tags the decision; moves the alias when promoted
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient
from pydantic import BaseModel

from pipelines.config import PipelineConfig
from pipelines.data.storage import local_copy
from pipelines.registry.lineage import log_datasets, tag_version
from pipelines.registry.provenance import Provenance
from pipelines.registry.tracking import check_tracking, tracking_uri, use_experiment


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

    @classmethod
    def open(cls, config: PipelineConfig) -> Registry:
        """The job's registry at its tracking URI (`tracking_uri`), with the job's experiment active. A
        server is asked once now, so that refused credentials or a wrong address fail before any work."""
        tracking = config.tracking
        uri = tracking_uri(tracking.tracking_uri, config.storage_path)
        check_tracking(uri)
        use_experiment(tracking.experiment, uri, config.storage_path)
        return cls(uri, tracking.registered_model, tracking.champion_alias)

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

    def decide(self, version: str, promoted: bool, reason: str, f1: float) -> None:
        """Tag the version (and the active run) with the decision and its reason; a promoted version
        takes the champion alias."""
        tag_decision(self.client, self.name, version, promoted, reason)
        if promoted:
            self.promote(version, f1)
