"""Step metrics from a training worker to MLflow, buffered so that training never waits for the server.

    sink = MetricsSink(tracking_uri, run_id, spool="…/unsent_mlflow_metrics.jsonl")
    sink.log({"train_loss": 0.4}, step)     # appends to a buffer; a background thread sends it
    unsent = sink.close()                    # last flush; what could not be sent is in the spool file
    replay_metrics(unsent, tracking_uri)     # later: send the spooled metrics

When the server is unreachable the metrics stay buffered and are retried with backoff (the outage
and the recovery are logged once each); at `close` the thread gets `flush_timeout_s` to send what is
left, and whatever still could not be sent is written to the spool (JSONL, one metric per line) —
a metric is never dropped silently. A worker killed while the server is down loses its unsent
buffer, but Ray Train resumes from the last checkpoint and logs those steps again.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential,
)

from pipelines.data.storage import redact_uri

log = logging.getLogger(__name__)

BATCH = 1000  # MLflow's limit of metrics per log_batch request


class _Unreachable(Exception):
    """The tracking server did not take a batch."""


class MetricsSink:
    RETRY_MAX_S = 5.0

    def __init__(
        self,
        tracking_uri: str | None,
        run_id: str | None,
        spool: str | None = None,
        interval_s: float = 1.0,
        flush_timeout_s: float = 30.0,
    ):
        self.client = None
        self.uri = redact_uri(tracking_uri or "")  # for messages only
        self.run_id = run_id
        self.spool = spool
        self.interval_s = interval_s
        self.flush_timeout_s = flush_timeout_s
        self.pending: list = []
        self.sent = 0
        self.failed = False  # the server is unreachable right now
        self.outages = 0
        self.last_error = ""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        if tracking_uri and run_id:
            from mlflow.tracking import MlflowClient

            # the sink retries on its own schedule: one HTTP attempt per try, with a bounded wait
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
            self.client = MlflowClient(tracking_uri)
            self._thread = threading.Thread(target=self._run, name="mlflow-metrics", daemon=True)
            self._thread.start()

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Buffer metrics for `step` (never blocks on the network)."""
        if self.client is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        with self._lock:
            self.pending += [Metric(k, float(v), now, step) for k, v in metrics.items()]

    def flush(self) -> None:
        """Ask the background thread to send now (it does not wait)."""
        self._wake.set()

    def _send_all(self) -> None:
        """Send the buffer in batches; `_Unreachable` when the server does not take one."""
        assert self.client is not None and self.run_id is not None
        while True:
            with self._lock:
                batch = self.pending[:BATCH]
            if not batch:
                return
            try:
                self.client.log_batch(self.run_id, metrics=batch)
            except Exception as error:  # the tracking server is down: keep the metrics, try again later
                self.last_error = redact_uri(f"{type(error).__name__}: {error}"[:500])
                if not self.failed:
                    self.outages += 1
                    log.warning(
                        "MLflow unreachable at %s (%s); training goes on, metrics are buffered and retried",
                        self.uri,
                        self.last_error,
                    )
                self.failed = True
                raise _Unreachable from error
            with self._lock:
                del self.pending[: len(batch)]
                self.sent += len(batch)
            if self.failed:
                log.warning("MLflow reachable again at %s; sending the buffered metrics", self.uri)
                self.failed = False

    def _retrying(self, stop) -> Retrying:
        return Retrying(
            stop=stop,
            wait=wait_exponential(multiplier=self.interval_s, max=self.RETRY_MAX_S),
            retry=retry_if_exception_type(_Unreachable),
            sleep=self._pause,  # `close` cuts a backoff wait short
            reraise=True,
        )

    def _pause(self, seconds: float) -> None:
        self._closing.wait(seconds)

    def _run(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            try:
                for attempt in self._retrying(stop_when_event_set(self._closing)):
                    with attempt:
                        self._send_all()
            except _Unreachable:
                pass  # closing while the server is down: the final flush below tries once more
        try:  # the last flush: until the server takes everything, or flush_timeout_s
            for attempt in Retrying(
                stop=stop_after_delay(self.flush_timeout_s),
                wait=wait_exponential(max=1.0),
                retry=retry_if_exception_type(_Unreachable),
            ):
                with attempt:
                    self._send_all()
        except Exception:  # noqa: BLE001 (tenacity's RetryError: what is left goes to the spool)
            pass

    def close(self) -> str | None:
        """Stop the thread after a last flush; returns the spool file when metrics were left unsent."""
        if self._thread is None:
            return None
        self._closing.set()
        self._wake.set()
        self._thread.join(
            self.flush_timeout_s + float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")) + 5
        )
        self._thread = None
        with self._lock:
            left, self.pending = self.pending, []
        if not left:
            if self.outages:
                log.warning("MLflow outage(s) during training: %d; no metric was lost", self.outages)
            return None
        path = self.spool or os.path.join(tempfile.gettempdir(), f"unsent-mlflow-metrics-{self.run_id}.jsonl")
        append_jsonl(
            path,
            [
                {
                    "run_id": self.run_id,
                    "key": m.key,
                    "value": m.value,
                    "timestamp": m.timestamp,
                    "step": m.step,
                }
                for m in left
            ],
        )
        log.error(
            "MLflow unreachable at %s at the end of training (%s): %d metrics could not be sent and "
            "are saved in %s; send them with "
            "pipelines.training.metrics_sink.replay_metrics(%r, tracking_uri)",
            self.uri,
            self.last_error,
            len(left),
            path,
            path,
        )
        return path


def append_jsonl(path: str, records: Sequence[Mapping[str, Any]]) -> None:
    """Append records to a JSONL file, local or on any pyarrow filesystem (read back and rewritten)."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    if "://" not in path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
        return
    import pyarrow.fs

    fs, inner = pyarrow.fs.FileSystem.from_uri(path)
    old = b""
    if fs.get_file_info(inner).type == pyarrow.fs.FileType.File:
        with fs.open_input_stream(inner) as f:
            old = f.read()
    with fs.open_output_stream(inner) as f:
        f.write(old + text.encode("utf-8"))


def read_jsonl(path: str) -> list[dict]:
    if "://" not in path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        import pyarrow.fs

        fs, inner = pyarrow.fs.FileSystem.from_uri(path)
        with fs.open_input_stream(inner) as f:
            text = f.read().decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def file_exists(path: str) -> bool:
    if "://" not in path:
        return os.path.isfile(path)
    import pyarrow.fs

    fs, inner = pyarrow.fs.FileSystem.from_uri(path)
    return fs.get_file_info(inner).type == pyarrow.fs.FileType.File


def replay_metrics(path: str, tracking_uri: str) -> int:
    """Send the metrics a training run could not log (its `unsent_metrics` file); returns how many.

    MLflow stores a metric (key, value, timestamp, step) once, so replaying twice does not duplicate.
    The file is removed once everything is sent.
    """
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    records = read_jsonl(path)
    by_run: dict[str, list] = {}
    for r in records:
        by_run.setdefault(r["run_id"], []).append(Metric(r["key"], r["value"], r["timestamp"], r["step"]))
    for run_id, metrics in by_run.items():
        for i in range(0, len(metrics), BATCH):
            client.log_batch(run_id, metrics=metrics[i : i + BATCH])
    if "://" not in path:
        os.remove(path)
    return len(records)
