"""What a user calls a model, resolved into a local GLiNER checkpoint folder.

    resolve_model("runs/self-training-…/champion", config)     # a checkpoint folder
    resolve_model("champion", config)                           # the registry's champion
    resolve_model("models:/gliner-selftrain@champion", config)  # an alias in the MLflow registry
    resolve_model("models:/gliner-selftrain/3", config)         # a version in the MLflow registry
    resolve_model("urchade/gliner_small-v2.1", config)          # a Hugging Face hub id
    resolve_model("s3://bucket/runs/…/champion", config)        # a checkpoint folder in object storage

The registry is the config's (`tracking.tracking_uri`, else $MLFLOW_TRACKING_URI, else the SQLite file
under `storage_path`, see `tracking.tracking_uri`). A registered model comes back with the labels
(label -> prompt) and threshold it was registered with (`settings.json` beside the checkpoint, see
`models.log_model`). With a local artifact store (the default) the checkpoint is read in place;
from a remote one it is downloaded once per version into `<storage_path>/models/`. A hub id is
fetched through the Hugging Face cache (which `HF_HUB_OFFLINE=1` limits to what is already there).
A folder at a URI (`s3://…`, any pyarrow filesystem) is downloaded once into the local cache
(`pipelines.data.storage.local_copy`), so every node of a cluster reads it without a shared disk.

Every failure is a `ModelSourceError` with one line that names the reference and says what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipelines.config import PipelineConfig
from pipelines.data.storage import is_uri, local_copy, redact_uri, resolve

CHAMPION = "champion"
CONFIG_FILE = "gliner_config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
FORMS = (
    "a checkpoint folder (local or s3://…), `champion`, models:/NAME@ALIAS, models:/NAME/VERSION "
    "or a hub id (OWNER/NAME)"
)
FIRST_RUN = "run `make run` or `gliner-selftrain self-train` first, or pass --model FOLDER"

_REGISTRY = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>[^/@]+))$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


class ModelSourceError(ValueError):
    """A model reference that cannot be resolved; the message is one line that says what to do."""


@dataclass(frozen=True)
class Reference:
    """A parsed model reference (no I/O beyond looking at the local filesystem)."""

    kind: Literal["folder", "uri", "registry", "hub"]
    text: str  # as the user wrote it
    name: str | None = None  # registry: registered model (None: the config's)
    alias: str | None = None  # registry: alias (None with version None: the config's champion alias)
    version: str | None = None  # registry: version number


@dataclass(frozen=True)
class ResolvedModel:
    path: str  # local checkpoint folder (gliner_config.json + weights + tokenizer)
    reference: str  # what the user wrote
    description: str  # for messages, e.g. "gliner-selftrain version 3 (champion)"
    labels: dict[str, str] | None = None  # label -> prompt the model was registered with
    threshold: float | None = None  # its registered threshold
    version: str | None = None  # registry version
    registered_model: str | None = None  # registry: the registered model's name


def parse_reference(reference: str, base: str | Path = ".") -> Reference:
    """Classify `reference`; relative folders are looked up under `base`. A string of the hub-id shape
    (`owner/name`) is a folder when its first part is a local folder (e.g. `runs/ft`)."""
    text = reference.strip()
    if not text:
        raise ModelSourceError(f"empty model reference: give {FORMS}")
    if text == CHAMPION:
        return Reference("registry", text)
    if text.startswith("models:"):
        match = _REGISTRY.match(text)
        if not match:
            raise ModelSourceError(
                f"bad model URI {text!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION"
            )
        version = match["version"]
        if version is not None and not version.isdigit():
            raise ModelSourceError(
                f"bad model URI {text!r}: the version must be a number, e.g. models:/NAME/3"
            )
        return Reference("registry", text, match["name"], match["alias"], version)
    if is_uri(text):
        if text.startswith(("http://", "https://")):
            raise ModelSourceError(f"unsupported model reference {text!r}: give {FORMS}")
        return Reference("uri", text)
    local = Path(text).expanduser()
    local = local if local.is_absolute() else Path(base) / local
    looks_local = (
        text.startswith((".", "/", "~")) or local.exists() or (Path(base) / text.split("/")[0]).is_dir()
    )
    if _HUB_ID.match(text) and not looks_local:
        return Reference("hub", text)
    return Reference("folder", text)


def check_checkpoint(path: str | Path, reference: str | None = None) -> None:
    """Fail with one line unless `path` is a loadable-looking GLiNER checkpoint folder: its config is
    JSON and its safetensors file is complete (header and size; the tensors are not read)."""
    folder = Path(path)
    shown = reference or str(path)
    if not folder.is_dir():
        what = "not a folder" if folder.exists() else "no such folder"
        raise ModelSourceError(f"model not found: {shown} ({what}); give {FORMS}")
    config = folder / CONFIG_FILE
    if not config.is_file():
        raise ModelSourceError(f"{shown} is not a GLiNER checkpoint: no {CONFIG_FILE} in {folder}")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelSourceError(f"corrupt checkpoint: {config} is not valid JSON ({error})") from error
    weights = [folder / name for name in WEIGHT_FILES if (folder / name).is_file()]
    if not weights:
        raise ModelSourceError(
            f"{shown} is not a GLiNER checkpoint: no {' or '.join(WEIGHT_FILES)} in {folder}"
        )
    if weights[0].suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(weights[0]), framework="pt") as handle:
                handle.keys()
        except (SafetensorError, OSError) as error:
            raise ModelSourceError(
                f"corrupt checkpoint: {weights[0]} cannot be read ({first_line(error)}); "
                "save or download the checkpoint again"
            ) from error


def resolve_model(reference: str, config: PipelineConfig) -> ResolvedModel:
    """A local checkpoint folder for `reference` (see the module docstring), checked."""
    parsed = parse_reference(reference)
    if parsed.kind == "folder":
        check_checkpoint(Path(parsed.text).expanduser(), parsed.text)
        return ResolvedModel(str(Path(parsed.text).expanduser().resolve()), reference, parsed.text)
    if parsed.kind == "uri":
        return _from_uri(parsed)
    if parsed.kind == "hub":
        return _from_hub(parsed)
    return _from_registry(parsed, config)


def _from_uri(ref: Reference) -> ResolvedModel:
    """A checkpoint folder in object storage, downloaded once into the local cache and checked."""
    shown = redact_uri(ref.text)
    try:
        local = local_copy(ref.text)
    except FileNotFoundError as error:
        raise ModelSourceError(f"model not found: {shown} (nothing there); give {FORMS}") from error
    except OSError as error:
        raise ModelSourceError(f"cannot read the model at {shown}: {first_line(error)}") from error
    check_checkpoint(local, shown)
    return ResolvedModel(local, ref.text, shown)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# -- the MLflow registry ---------------------------------------------------------------------------


def registry_uri(config: PipelineConfig) -> str:
    """The config's tracking URI; fails (without creating anything) when the default SQLite store
    does not exist yet."""
    from pipelines.registry.tracking import tracking_uri

    uri = tracking_uri(config.tracking.tracking_uri, config.storage_path, create=False)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ModelSourceError(f"no model registry yet (no {uri.removeprefix('sqlite:///')}): {FIRST_RUN}")
    return uri


def _from_registry(ref: Reference, config: PipelineConfig) -> ResolvedModel:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = registry_uri(config)
    shown_uri = redact_uri(uri)
    name = ref.name or config.tracking.registered_model
    alias = ref.alias if ref.name else config.tracking.champion_alias
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        try:
            client.get_registered_model(name)
        except MlflowException as error:
            if _not_found(error):
                raise ModelSourceError(
                    f"no registered model {name!r} in the registry at {shown_uri}: {FIRST_RUN}"
                ) from error
            raise
        if ref.version is not None:
            try:
                found = client.get_model_version(name, ref.version)
            except MlflowException as error:
                if _not_found(error):
                    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
                    raise ModelSourceError(
                        f"{name} has no version {ref.version} in the registry at {shown_uri} "
                        f"(versions: {', '.join(map(str, versions)) or 'none'})"
                    ) from error
                raise
            description = f"{name} version {found.version}"
        else:
            assert alias is not None
            try:
                found = client.get_model_version_by_alias(name, alias)
            except MlflowException as error:
                if _not_found(error):
                    what = (
                        "no champion"
                        if alias == config.tracking.champion_alias
                        else f"no version with alias {alias!r}"
                    )
                    raise ModelSourceError(
                        f"{name} has {what} in the registry at {shown_uri} yet: {FIRST_RUN}"
                    ) from error
                raise
            description = f"{name} version {found.version} ({alias})"
        root = _model_files(client, name, str(found.version), str(found.source), config, uri)
    except MlflowException as error:
        raise ModelSourceError(
            f"cannot read the model registry at {shown_uri}: {first_line(error)}"
        ) from error
    except OSError as error:  # an unreachable server surfaces as a connection error
        raise ModelSourceError(
            f"cannot reach the model registry at {shown_uri}: {first_line(error)}"
        ) from error
    path, settings = _pyfunc_layout(root, description)
    check_checkpoint(path, f"{ref.text} ({description})")
    return ResolvedModel(
        str(path),
        ref.text,
        description,
        labels=dict(settings["labels"]) if isinstance(settings.get("labels"), dict) else None,
        threshold=float(settings["threshold"]) if "threshold" in settings else None,
        version=str(found.version),
        registered_model=name,
    )


def _not_found(error: Exception) -> bool:
    code = getattr(error, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(error).lower()


def _model_files(client, name: str, version: str, source: str, config: PipelineConfig, uri: str) -> Path:
    """The logged model's folder (MLmodel, artifacts/): in place for a local artifact store, else a
    download cached per version under `<storage_path>/models/` (a new registry with the same
    version numbers gets new folders: the key includes the version's source)."""
    import mlflow.artifacts
    from mlflow.utils.file_utils import local_file_uri_to_path

    location = client.get_model_version_download_uri(name, version)
    if location.startswith("file:"):
        return Path(local_file_uri_to_path(location))
    key = hashlib.sha256(f"{uri}|{source}".encode()).hexdigest()[:10]
    base = Path(resolve(config.storage_path)) if not is_uri(config.storage_path) else _user_cache()
    target = base / "models" / re.sub(r"[^\w.-]", "_", name) / f"v{version}-{key}"
    if (target / "MLmodel").is_file():
        return target
    staging = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        downloaded = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=str(staging), tracking_uri=uri
            )
        )
        downloaded.rename(target)  # atomic: a concurrent reader sees all of it or none
    except OSError:
        if not (target / "MLmodel").is_file():  # not another process that won the race
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gliner-selftrain"


def _pyfunc_layout(root: Path, description: str) -> tuple[Path, dict]:
    """(checkpoint folder, settings) of a model logged by `models.log_model`: the `gliner` and
    `settings` artifacts named in its MLmodel file."""
    import yaml

    try:
        mlmodel = yaml.safe_load((root / "MLmodel").read_text(encoding="utf-8"))
        artifacts = mlmodel["flavors"]["python_function"]["artifacts"]
        checkpoint = root / artifacts["gliner"]["path"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise ModelSourceError(
            f"{description} is not a gliner-selftrain model (no `gliner` artifact in {root / 'MLmodel'})"
        ) from error
    settings: dict = {}
    if "settings" in artifacts:
        try:
            settings = json.loads((root / artifacts["settings"]["path"]).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            settings = {}
    return checkpoint, settings if isinstance(settings, dict) else {}


# -- the Hugging Face hub --------------------------------------------------------------------------


def _from_hub(ref: Reference) -> ResolvedModel:
    """The hub model's snapshot in the local Hugging Face cache (downloaded unless HF_HUB_OFFLINE=1),
    through gliner_core's loader, which also fetches an official checkpoint's encoder files."""
    from gliner_core.errors import ModelNotFoundError
    from gliner_core.hub import resolve_model_dir

    try:
        path = str(resolve_model_dir(ref.text))
    except ModelNotFoundError as error:
        raise ModelSourceError(first_line(error)) from error
    check_checkpoint(path, f"hub model {ref.text}")
    return ResolvedModel(path, ref.text, f"hub model {ref.text}")
