"""A model exported for serving (ONNX, optionally int8) and, for a registered model, logged with it.

    export = export_for_serving(config, resolve_model("champion", config), "serving/champion", "int8")
    export.artifact_uri   # the ONNX folder among the artifacts of the version's run

An int8 export is checked on gold rows (`--gold`, default `data.dev_gold`) against fp32 with the
model's labels and threshold; when it loses more micro F1 than `export.int8_max_f1_drop` it is refused
(`Int8Refused`): the int8 graph is deleted from the folder (fp32 stays), and nothing is logged to the
registry, so the model version never points to a serving artifact that failed its check. An accepted
export of a registered model is logged as artifacts of the run that registered the version
(`serving/onnx/`), and the version is tagged `serving/onnx` (that URI), `serving/precision` and
`serving/int8_f1_drop`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import PipelineConfig
from pipelines.data.storage import is_uri, resolve
from pipelines.registry.model_source import ResolvedModel, registry_uri

FORMATS = ("onnx",)
QUANTIZATIONS = ("int8",)


class Int8Refused(RuntimeError):
    """The int8 graph lost more F1 than allowed; the message says by how much and what was kept."""


class NotLogged(RuntimeError):
    """The export was written but the registry did not take it (refused, or out of reach)."""


@dataclass(frozen=True)
class ServingExport:
    folder: str
    precision: str  # what to serve: "int8" when exported and accepted, else "fp32"
    int8_f1_drop: float | None  # F1 the int8 graph loses against fp32 on the gold rows (negative: gains)
    gold: str | None
    artifact_uri: str | None  # where the registry keeps it (registered models only)
    seconds: float

    def summary(self) -> str:
        line = f"ONNX ({self.precision}) -> {self.folder} in {self.seconds:.1f} s"
        if self.int8_f1_drop is not None:
            line += f"; int8 loses {self.int8_f1_drop:+.4f} micro F1 on {self.gold}"
        return line


def default_folder(config: PipelineConfig) -> str:
    """`<storage_path>/<name>-export-<timestamp>` (a local storage path only)."""
    if is_uri(config.storage_path):
        raise ValueError("export writes a local folder and storage_path is a URI: give --output DIR")
    return f"{resolve(config.storage_path)}/{config.name}-export-{time.strftime('%Y%m%d-%H%M%S')}"


def export_for_serving(
    config: PipelineConfig,
    model: ResolvedModel,
    output: str,
    quantize: str | None = None,
    gold: str | None = None,
    overwrite: bool = False,
) -> ServingExport:
    from gliner_core.onnx_export import export_onnx

    if quantize is None and gold is not None:
        raise ValueError("--gold is for the int8 check: add --quantize int8, or leave --gold out")
    gold = (gold or config.data.dev_gold) if quantize else None
    threshold = model.threshold if model.threshold is not None else config.eval.threshold
    limit = config.export.int8_max_f1_drop
    result = export_onnx(
        model.path,
        output,
        quantize=quantize,
        gold=gold,
        labels=model.labels or config.prompts(),
        max_f1_drop=limit,
        threshold=threshold,
        overwrite=overwrite,
    )
    check = result.int8_check
    drop = -check.delta if check is not None else None
    if check is not None and not check.accepted:
        raise Int8Refused(
            f"int8 refused for serving: micro F1 {check.f1_fp32:.4f} (fp32) -> {check.f1_int8:.4f} (int8) on "
            f"{check.texts} rows of {gold}, a loss of {drop:.4f} > export.int8_max_f1_drop {limit:g}; "
            f"{result.directory} keeps fp32 only and nothing was logged to the registry"
        )
    precision = "int8" if quantize else "fp32"
    uri = None
    if model.version is not None and model.registered_model is not None:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        from pipelines.data.storage import redact_uri
        from pipelines.registry.lineage import log_serving_export
        from pipelines.registry.model_source import first_line

        where = registry_uri(config)
        client = MlflowClient(tracking_uri=where, registry_uri=where)
        try:
            uri = log_serving_export(
                client, model.registered_model, model.version, str(result.directory), precision, drop
            )
        except (MlflowException, OSError) as error:
            raise NotLogged(
                f"{result.directory} was written but not logged with {model.description} in the "
                f"registry at {redact_uri(where)}: {redact_uri(first_line(error))}"
            ) from error
    return ServingExport(str(Path(result.directory)), precision, drop, gold, uri, result.seconds)
