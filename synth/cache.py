"""Response cache keyed by (model, prompt hash, document hash, generation settings).

One small JSON file per answered request under a local or shared folder or an object-store URI,
written atomically, so Ray workers on one machine (or on a shared filesystem, or on any node for a
URI) see each other's entries and a rerun does not pay twice. Only engine answers are cached
(engine errors are retried next run); a cached answer is re-parsed and re-grounded, so grounding
settings can change freely.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from synth.engines.base import Completion


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_key(model: str, prompt_hash: str, doc_hash: str, max_tokens: int, temperature: float) -> str:
    blob = json.dumps([model, prompt_hash, doc_hash, max_tokens, temperature])
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """Entries under a local folder or a pyarrow filesystem URI (`s3://bucket/synth-cache`, credentials
    and endpoint from the usual AWS variables): one JSON object per key, written whole (a local file
    is renamed into place; an object store PUT is atomic), so readers never see half an entry."""

    def __init__(self, root: str | os.PathLike[str], run_id: str = ""):
        self.uri = "://" in str(root)
        self.run_id = run_id
        if self.uri:
            import pyarrow.fs

            self.fs, self.base = pyarrow.fs.FileSystem.from_uri(str(root))
            self.base = self.base.rstrip("/")
        else:
            self.root = Path(root)
            self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def _read(self, key: str) -> str:
        if not self.uri:
            return self._path(key).read_text(encoding="utf-8")
        with self.fs.open_input_stream(f"{self.base}/{key[:2]}/{key}.json") as f:
            return f.read().decode("utf-8")

    def get(self, key: str, before_this_run: bool = False) -> Completion | None:
        """The cached completion, or None. With `before_this_run`, entries this run wrote are
        ignored (so a lazily evaluated split of hits and misses stays a partition)."""
        try:
            entry = json.loads(self._read(key))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if before_this_run and self.run_id and entry.get("run_id") == self.run_id:
            return None
        return Completion(
            text=entry["text"],
            prompt_tokens=int(entry.get("prompt_tokens", 0)),
            completion_tokens=int(entry.get("completion_tokens", 0)),
            finish_reason=entry.get("finish_reason"),
        )

    def put(self, key: str, completion: Completion) -> None:
        if not completion.ok:
            return
        entry = {
            "text": completion.text,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "finish_reason": completion.finish_reason,
            "run_id": self.run_id,
        }
        if self.uri:
            with self.fs.open_output_stream(f"{self.base}/{key[:2]}/{key}.json") as out:
                out.write(json.dumps(entry, ensure_ascii=False).encode("utf-8"))
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entry, f, ensure_ascii=False)
        os.replace(tmp, path)
