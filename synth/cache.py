"""Response cache keyed by (model, prompt hash, document hash, generation settings).

One small JSON file per answered request under a local or shared folder, written atomically,
so Ray workers on one machine (or on a shared filesystem) see each other's entries and a
rerun does not pay twice. Only engine answers are cached (engine errors are retried next run);
a cached answer is re-parsed and re-grounded, so grounding settings can change freely.
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
    def __init__(self, root: str | os.PathLike[str], run_id: str = ""):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, before_this_run: bool = False) -> Completion | None:
        """The cached completion, or None. With `before_this_run`, entries this run wrote are
        ignored (so a lazily evaluated split of hits and misses stays a partition)."""
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
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
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "text": completion.text,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "finish_reason": completion.finish_reason,
            "run_id": self.run_id,
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entry, f, ensure_ascii=False)
        os.replace(tmp, path)
