"""The operations around the loop: serving exports, drift checks and the review queue."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from pipelines.config.base import Section

REFERENCE_FILE = "drift_reference.json"  # a champion's drift reference, beside its checkpoint


class ExportConfig(Section):
    """Serving exports (`gliner-selftrain export`)."""

    int8_max_f1_drop: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="an int8 ONNX export may lose at most this much micro F1 against fp32 on the gold "
        "set (`--gold`, default data.dev_gold); above it the export is refused for serving",
    )


class DriftConfig(Section):
    """The scheduler's drift trigger (`schedule --config job.yaml --drift-model …`). It samples with the
    job's `seed`, reads `data.text_field` and predicts `weak_label.batch_size` documents per call."""

    sample_size: int = Field(200, ge=1, description="documents of a new batch the champion labels")
    threshold: float = Field(
        0.3, ge=0.0, lt=1.0, description="prediction threshold (below weak labeling's: sees unsure spans)"
    )
    max_label_js: float = Field(0.2, gt=0.0, le=1.0, description="label-mix Jensen–Shannon distance limit")
    max_score_psi: float = Field(0.25, gt=0.0, description="confidence population stability index limit")
    max_rate_ratio: float = Field(2.0, gt=1.0, description="entities-per-document change limit (either way)")
    min_spans: int = Field(30, ge=1, description="fewer spans in a sample: label mix/confidence not judged")
    significance: float = Field(
        0.01, gt=0.0, lt=1.0, description="p-value under which a label-mix/confidence difference is not noise"
    )
    score_bins: int = Field(10, ge=2, le=100)
    reference: str | None = Field(None, description=f"reference JSON (default: <model>/{REFERENCE_FILE})")


class LabelStudioConfig(Section):
    url: str = Field("http://127.0.0.1:8080", description="the Label Studio server")
    project: str = Field("gliner-selftrain review", description="project title (created when missing)")
    api_key_env: str = Field(
        "LABEL_STUDIO_API_KEY",
        description="environment variable holding the API key (a personal access token, or a legacy token)",
    )
    timeout: float = Field(60.0, gt=0.0, description="seconds per HTTP request")


class ReviewConfig(Section):
    """The review queue (`review push|pull`); its selection is seeded by the job's `seed`."""

    budget: int = Field(50, ge=1, description="documents sent for review per push")
    uncertain_band: tuple[float, float] = Field(
        (0.3, 0.7), description="aggregated span probability [low, high] counted as uncertain"
    )
    low_score: float = Field(0.6, ge=0.0, le=1.0, description="model spans scoring under this are flagged")
    model_origins: list[str] = Field(
        default_factory=lambda: ["gliner"],
        description="origins whose scores are model confidences ('gliner' also covers 'gliner:…')",
    )
    sources: list[str] = Field(
        default_factory=list,
        description="sources that labeled every document (default: those whose table has the document)",
    )
    disagreement_weight: float = Field(1.0, ge=0.0)
    uncertainty_weight: float = Field(1.0, ge=0.0)
    gold: str | None = Field(None, description="JSONL gold file `review pull` merges the annotations into")
    label_studio: LabelStudioConfig = Field(default_factory=LabelStudioConfig)

    @field_validator("uncertain_band")
    @classmethod
    def _band(cls, band: tuple[float, float]) -> tuple[float, float]:
        low, high = band
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(
                f"uncertain_band must be [low, high] with 0 <= low <= high <= 1, got {list(band)}"
            )
        return band

    @model_validator(mode="after")
    def _weights(self) -> ReviewConfig:
        if self.disagreement_weight == 0 and self.uncertainty_weight == 0:
            raise ValueError(
                "disagreement_weight and uncertainty_weight are both 0: nothing would be selected"
            )
        return self
