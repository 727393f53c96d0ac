"""Where a model comes from: a local folder, or a Hugging Face Hub id fetched into the hub cache.

    is_hub_id("urchade/gliner_small-v2.1")   # True: "org/name" and no such local path
    model_source("runs/x/champion")           # "local" | "hub", or ModelNotFoundError: validate early
    resolve_model_dir("urchade/gliner_small-v2.1")   # the snapshot folder in the cache

A hub id is downloaded through `huggingface_hub` into its cache (`HF_HUB_CACHE`,
or `HF_HOME/hub`, read when the call is made). With `HF_HUB_OFFLINE=1` nothing
is downloaded and a cached snapshot is used. Official checkpoints name their
encoder by `model_name` (e.g. microsoft/deberta-v3-small) and may lack its
tokenizer files or config: `resolve_backbone` fetches those the same way.

Anything that fails (an unknown id, offline with no cached copy, a gated
repository, no network) is one `ModelNotFoundError` naming the id and the
fixes, not a huggingface_hub traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from gliner_core.errors import ModelNotFoundError

# files a GLiNER checkpoint or an encoder never needs here: other runtimes' weights
IGNORED_FILES = [
    "*.onnx",
    "onnx/*",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.tflite",
    "*.gguf",
    "openvino/*",
    "coreml/*",
    "*.mlmodel",
]
# an encoder's tokenizer and config, without its weights
BACKBONE_CONFIG_FILES = ["*.json", "*.txt", "*.model", "*.tiktoken", "*/*.json", "*/*.txt", "*/*.model"]

# huggingface_hub's repo id rules: [namespace/]name, letters, digits, "-", "_", ".", at most 96
# characters, no "--" or "..", not starting or ending with "-" or "."
_NAME = r"[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9_])?"
_HUB_ID = re.compile(rf"^(?:{_NAME}/)?{_NAME}$")
_TRUE = {"1", "true", "yes", "on"}


def is_hub_id(ref: str | Path, require_namespace: bool = True) -> bool:
    """True when `ref` reads as a hub repository id rather than a local path.

    An existing path is local. Otherwise `ref` must have the repo id syntax,
    "org/name" (a bare "name" too with `require_namespace=False`, as some
    encoders have, e.g. "bert-base-cased"); "./x", "/x", "~/x", "a/b/c" or
    "x\\y" are paths.
    """
    text = str(ref)
    if not text or Path(text).expanduser().exists():
        return False
    if "--" in text or ".." in text or not _HUB_ID.match(text):
        return False
    return "/" in text or not require_namespace


def model_source(ref: str | Path) -> Literal["local", "hub"]:
    """'local' (an existing folder) or 'hub' (a hub id); `ModelNotFoundError` for anything else.

    For command lines and configs to check a model reference before any work;
    whether a hub id exists is only known when it is fetched.
    """
    path = Path(str(ref)).expanduser()
    if path.is_dir():
        return "local"
    if path.exists():
        raise ModelNotFoundError(f"{ref} is a file: give the folder that holds gliner_config.json")
    if is_hub_id(ref):
        return "hub"
    raise ModelNotFoundError(
        f"model {str(ref)!r} is neither a local folder (no such directory) nor a Hugging Face Hub id "
        "(org/name): give the path of a checkpoint folder or a hub id such as urchade/gliner_small-v2.1"
    )


def hub_cache_dir() -> Path:
    """The hub cache as the environment says now: HF_HUB_CACHE, else HF_HOME/hub, else the default."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """Downloads are off: HF_HUB_OFFLINE set now, or when huggingface_hub was imported."""
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE or bool(constants.HF_HUB_OFFLINE)


def resolve_model_dir(ref: str | Path) -> Path:
    """A GLiNER checkpoint folder: `ref` itself if it is a folder, else the hub snapshot of the id `ref`."""
    if model_source(ref) == "local":
        return Path(str(ref)).expanduser()
    return _snapshot(str(ref), "model", ignore=IGNORED_FILES)


def resolve_backbone(ref: str | Path, weights: bool = False, what: str = "encoder") -> Path:
    """The folder of an encoder (`model_name`, `labels_encoder`): a local folder, or its hub snapshot.

    Without `weights` only its tokenizer and config files are fetched. `what`
    names it in errors (e.g. "encoder of urchade/gliner_small-v2.1").
    """
    path = Path(str(ref)).expanduser()
    if path.is_dir():
        return path
    if not is_hub_id(ref, require_namespace=False):
        raise ModelNotFoundError(
            f"{what} {str(ref)!r} is neither a local folder nor a Hugging Face Hub id; "
            "it is needed for its tokenizer or config: give a checkpoint that includes them"
        )
    if weights:
        return _snapshot(str(ref), what, ignore=IGNORED_FILES)
    return _snapshot(str(ref), what, allow=BACKBONE_CONFIG_FILES, ignore=IGNORED_FILES)


def _snapshot(
    repo_id: str, what: str, allow: list[str] | None = None, ignore: list[str] | None = None
) -> Path:
    from huggingface_hub import snapshot_download

    cache, offline = hub_cache_dir(), hub_offline()
    try:
        return Path(
            snapshot_download(
                repo_id,
                cache_dir=cache,
                local_files_only=offline,
                allow_patterns=allow,
                ignore_patterns=ignore,
            )
        )
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 (every failure becomes one actionable message)
        reason = _reason(error, offline, cache)
    raise ModelNotFoundError(
        f"{what} {repo_id!r} is not a local folder, and {reason}. To fix it: run once with network access "
        f"(HF_HUB_OFFLINE unset) to download it into the cache, pre-fill the cache with "
        f"`hf download {repo_id}` (older huggingface_hub: `huggingface-cli download {repo_id}`, "
        f"same HF_HOME / HF_HUB_CACHE), or pass the path of a local folder instead"
    )


def _reason(error: Exception, offline: bool, cache: Path) -> str:
    from huggingface_hub import errors

    if isinstance(error, errors.GatedRepoError):
        return "the repository is gated: accept its terms on huggingface.co and log in (`hf auth login`)"
    if isinstance(error, errors.RepositoryNotFoundError):
        return "the Hub has no such repository (or it is private and no token is set)"
    if isinstance(error, errors.RevisionNotFoundError):
        return "the Hub has no such revision of it"
    incomplete = getattr(errors, "IncompleteSnapshotError", None)
    if incomplete is not None and isinstance(error, incomplete):
        return f"its copy in the hub cache ({cache}) is incomplete"
    if isinstance(error, errors.HFValidationError):
        return "it is not a valid hub id"
    if offline:
        return f"downloads are off (HF_HUB_OFFLINE=1) and the hub cache ({cache}) has no copy of it"
    if isinstance(error, errors.LocalEntryNotFoundError):
        return f"the Hub could not be reached and the hub cache ({cache}) has no copy of it"
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"fetching it failed ({type(error).__name__}: {first_line})"
