"""MLflow runs: where MLflow is (the one tracking-URI rule), the experiment, and what a job and its
stages log into their runs (the job's config and datasets, each stage report's metrics and artifacts).

The tracking URI is a server (`http://mlflow:5000`, credentials from MLFLOW_TRACKING_USERNAME /
MLFLOW_TRACKING_PASSWORD), a database URI, or by default a SQLite file beside a local
`storage_path`. `check_tracking` asks a server once before any work, so that refused credentials or
a wrong address end the job at its start, not after training. The registered models and their
lineage are `pipelines.registry.models` and `pipelines.registry.lineage`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import mlflow
from mlflow.tracking import MlflowClient

from pipelines.config import PipelineConfig
from pipelines.data.storage import is_uri, redact_config, redact_uri, resolve
from pipelines.registry.lineage import log_datasets
from pipelines.registry.provenance import Provenance, job_provenance

MAX_PARAM_LENGTH = 6000


def tracking_uri(configured: str | None, storage_path: str, create: bool = True) -> str:
    """The one rule for where MLflow is: the configured URI, else $MLFLOW_TRACKING_URI, else a SQLite file
    beside the run data (absolute path). With `create=False` a missing storage folder is not made (the
    caller checks whether the store exists)."""
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
    if create:
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


# MLflow 3 keeps an experiment's type in this tag ("custom_model_development": training runs, models,
# datasets; the alternative is "genai_development": traces). The UI of 3.17 does not open an experiment by
# it, though: it follows its own "GenAI | Model training" switch, kept per browser and GenAI until a person
# flips it, so a fresh browser opens any experiment on the GenAI "Overview" of traces ("0 traces"). The
# links the job prints (`ui_link`) therefore name the runs page and the switch's position themselves.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
UI_WORKFLOW = "workflowType=machine_learning"  # the switch on "Model training", for this page and its links
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default


def use_experiment(name: str, uri: str, storage_path: str) -> None:
    """Activate the experiment; with a local SQLite store its artifacts go beside it, not into ./mlruns.
    The experiment is marked as one of training runs (`EXPERIMENT_KIND`) when it has no kind yet.

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
        mlflow.create_experiment(
            name, artifact_location=artifacts, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        )
    experiment = mlflow.set_experiment(name)
    if EXPERIMENT_KIND_TAG not in experiment.tags:  # created just now by set_experiment, or before this tag
        MlflowClient(uri).set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)


def ui_link(uri: str, experiment_id: str, run_id: str | None = None) -> str:
    """The MLflow UI page of a run, or of the experiment's runs, with the UI switched to training runs.

    For a tracking server the page is on the server (its credentials left out of the link); for a database
    the page is where `mlflow ui --backend-store-uri <uri>` serves it."""
    base = LOCAL_UI
    if uri.startswith(("http://", "https://")):
        parts = urlsplit(uri)
        base = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path.rstrip("/"), "", ""))
    page = f"runs/{run_id}" if run_id else "runs"
    return f"{base}/#/experiments/{experiment_id}/{page}?{UI_WORKFLOW}"


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


def log_job(config: PipelineConfig, labels: Sequence[str], dev_rows: int) -> Provenance:
    """The job's resolved config (credentials redacted), labels and fingerprint on its (active) parent
    run, and what every model of the job depends on (`datasets.json`, and its dataset inputs: corpus,
    gold sets, given LLM rows); returns that provenance."""
    dump = config.model_dump(mode="json")
    params = flatten(dump)
    mlflow.log_params(redact_config(params))  # type: ignore[arg-type]
    mlflow.log_params(
        {"labels": json.dumps(list(labels)), "dev_rows": dev_rows, "config_fingerprint": config.fingerprint()}
    )
    mlflow.log_text(json.dumps(redact_config(dump), indent=2), "config.json")
    provenance = job_provenance(config)
    mlflow.log_text(json.dumps([d.to_dict() for d in provenance.datasets], indent=2), "datasets.json")
    log_datasets(provenance.datasets)  # the parent run's Dataset column: what a person looks at first
    return provenance
