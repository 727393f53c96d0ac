"""Security: checkpoints load without running code, the sources never opt into code execution, and
secrets from the environment (or a tracking URI's password) never reach MLflow or the logs."""

from __future__ import annotations

import ast
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from gliner_core import GLiNER

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ["gliner_core", "pipelines", "synth", "jobs"]


class Payload:
    """Unpickling this runs `Path(marker).write_text("pwned")`: what a hostile checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_a_pickled_checkpoint_with_code_is_refused(tiny_model, tmp_path):
    checkpoint = tmp_path / "hostile"
    shutil.copytree(tiny_model, checkpoint)
    weights = GLiNER.from_pretrained(tiny_model).model.state_dict()
    (checkpoint / "model.safetensors").unlink()
    marker = tmp_path / "pwned.txt"
    torch.save({**weights, "trap": Payload(marker)}, checkpoint / "pytorch_model.bin")

    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        GLiNER.from_pretrained(checkpoint)
    assert not marker.exists()

    # the same file without the trap loads: the official pytorch_model.bin format is still read
    torch.save(weights, checkpoint / "pytorch_model.bin")
    assert GLiNER.from_pretrained(checkpoint).predict_entities("Ada Lovelace", ["person"], threshold=0.0)

    # control: the payload is live, an unsafe load would have run it
    control = tmp_path / "control.txt"
    pickle.loads(pickle.dumps(Payload(control)))  # noqa: S301
    assert control.read_text() == "pwned"


def calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


FORBIDDEN_CALLS = {
    "pickle.load",
    "pickle.loads",
    "cloudpickle.load",
    "cloudpickle.loads",
    "yaml.load",
    "yaml.unsafe_load",
    "eval",
    "exec",
    "marshal.loads",
}


def scan(root: Path, packages: list[str]) -> tuple[int, list[str]]:
    """(files scanned, problems): `trust_remote_code` other than a literal False, `torch.load` without
    `weights_only=True`, and calls that unpickle or evaluate data."""
    problems = []
    files = [f for package in packages for f in sorted((root / package).rglob("*.py"))]
    for file in files:
        source = file.read_text(encoding="utf-8")
        where = file.relative_to(root)
        if "trust_remote_code=True" in source.replace(" ", ""):
            problems.append(f"{where}: trust_remote_code=True")
        for call in calls(ast.parse(source)):
            name = dotted(call.func)
            keywords = {k.arg: k.value for k in call.keywords}
            remote = keywords.get("trust_remote_code")
            if remote is not None and not (isinstance(remote, ast.Constant) and remote.value is False):
                problems.append(f"{where}:{call.lineno}: {name}(trust_remote_code=...)")
            weights_only = keywords.get("weights_only")
            if name.endswith("torch.load") and not (
                isinstance(weights_only, ast.Constant) and weights_only.value is True
            ):
                problems.append(f"{where}:{call.lineno}: torch.load without weights_only=True")
            if name in FORBIDDEN_CALLS:
                problems.append(f"{where}:{call.lineno}: {name}")
    return len(files), problems


def test_sources_never_opt_into_code_execution():
    """No `trust_remote_code` but a literal False, every `torch.load` with `weights_only=True`,
    no pickle / unsafe YAML / eval of data, in any package source."""
    scanned, problems = scan(REPO, PACKAGES)
    assert scanned > 20 and problems == []


def test_the_source_scan_catches_what_it_looks_for(tmp_path):
    """The scan is not vacuous: a module with each forbidden call is flagged."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "bad.py").write_text(
        "import torch, pickle\n"
        "AutoModel.from_pretrained('x', trust_remote_code=True)\n"
        "torch.load('a.bin')\n"
        "torch.load('a.bin', weights_only=False)\n"
        "torch.load('a.bin', weights_only=True)\n"
        "pickle.loads(b'')\n"
    )
    _, problems = scan(tmp_path, ["pkg"])
    assert problems == [
        "pkg/bad.py: trust_remote_code=True",
        "pkg/bad.py:2: AutoModel.from_pretrained(trust_remote_code=...)",
        "pkg/bad.py:3: torch.load without weights_only=True",
        "pkg/bad.py:4: torch.load without weights_only=True",
        "pkg/bad.py:6: pickle.loads",
    ]


# --------------------------------------------------------------------------- secrets


@pytest.mark.slow
@pytest.mark.integration
def test_secrets_never_reach_mlflow_or_the_logs(loop_run):
    """The session's self-training job (tests/loop_run.py) ran with unique secret values in the
    environment (HF_TOKEN, MLFLOW_TRACKING_PASSWORD, AWS_SECRET_ACCESS_KEY, RAY_AUTH_TOKEN) and a
    password in its tracking URI: no MLflow param, tag, metric name, artifact, server file or log line
    holds any of them."""
    from mlflow.tracking import MlflowClient

    from tests.loop_run import JOB, SECRET_VARIABLES

    secrets = loop_run.secrets
    assert set(secrets) == {*SECRET_VARIABLES, "uri"}
    assert len(loop_run.summary.iterations) == 1
    found: list[str] = []

    def check(where: str, text: str) -> None:
        for name, value in secrets.items():
            if value in text:
                line = next(x for x in text.splitlines() if value in x)
                found.append(f"{name} in {where}: {line[:300]}")

    server = loop_run.server
    client = MlflowClient(server.url)
    parent = client.get_run(loop_run.summary.run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    runs = [parent, *children]
    assert {r.info.run_name for r in children} == {"seed", "start-model", "synth", "iteration-1"}
    for r in runs:
        check(f"run {r.info.run_name} params", json.dumps(r.data.params))
        check(f"run {r.info.run_name} tags", json.dumps(r.data.tags))
        check(f"run {r.info.run_name} metric names", json.dumps(sorted(r.data.metrics)))
    assert parent.data.params["tracking.tracking_uri"] == server.url.replace("http://", "http://***@")
    # every file the server stored (its database and every artifact, the registered models included),
    # and everything the job wrote under its storage path (checkpoints, Parquet, Ray Train results)
    files = [p for root in (server.root, loop_run.storage) for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "config.json" for p in files) and any(p.suffix == ".db" for p in files)
    for path in files:
        check(str(path), path.read_bytes().decode("utf-8", errors="replace"))
    check("stdout and stderr", loop_run.output)
    check("log records", "\n".join(loop_run.log_messages))
    assert JOB in loop_run.output  # the job's own progress lines were captured
    assert found == []
