"""The errors a user can act on: a damaged checkpoint, a model that cannot be found.

Both carry one message that names the file or id and says how to fix it; the
underlying library error (safetensors, json, huggingface_hub) is not chained,
so a command line prints one line instead of a traceback.
"""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint file is damaged or inconsistent (truncated weights, config that is not JSON, ...)."""


class ModelNotFoundError(FileNotFoundError):
    """Neither a local checkpoint folder nor a hub id that can be fetched (or found in the cache offline)."""
