"""Where runs and models are tracked (MLflow)."""

from __future__ import annotations

from pydantic import Field

from pipelines.config.base import Section


class TrackingConfig(Section):
    tracking_uri: str | None = Field(
        None, description="MLflow URI; default: env MLFLOW_TRACKING_URI, else SQLite"
    )
    experiment: str = Field("gliner-self-training", description="the experiment a job's runs go to")
    drift_experiment: str = Field(
        "gliner-drift", description="the experiment the scheduler's drift checks go to (one run per check)"
    )
    registered_model: str = "gliner-selftrain"
    champion_alias: str = "champion"
    sample_predictions: int = Field(20, ge=0, description="dev rows shown in the sample-predictions table")
