"""The command line: every command documented, config resolution, and user mistakes as one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.cli import main
from tests.jobs.conftest import REGISTERED_LABELS, REGISTERED_THRESHOLD, ROOT, cli

COMMANDS = [
    "synth",
    "label",
    "train",
    "evaluate",
    "self-train",
    "predict",
    "export",
    "lineage",
    "submit",
    "schedule",
    "status",
    "logs",
    "review",
]


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_command():
    result = cli("--help", timeout=60)
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert f"  {command} " in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_explains_itself(capsys, command):
    code, out, _ = run_main(capsys, command, "--help")
    assert code == 0
    assert "Usage:" in out and len(out.splitlines()) > 4


def test_dry_run_prints_config_with_file_flags_and_overrides(capsys, tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text("name: nightly\ntrain:\n  max_steps: 5\ndata:\n  labels: [person, city]\n")
    code, out, _ = run_main(
        capsys,
        "self-train",
        "--config",
        str(config),
        "-s",
        "train.lr_heads=0.002",
        "--set",
        "weak_label.threshold=0.3",
        "--iterations",
        "7",
        "--storage",
        str(tmp_path / "runs"),
        "--dry-run",
    )
    assert code == 0
    resolved = json.loads(out)
    assert resolved["name"] == "nightly"
    assert resolved["train"]["max_steps"] == 5  # from the file
    assert resolved["train"]["lr_heads"] == 0.002  # --set, typed by YAML
    assert resolved["weak_label"]["threshold"] == 0.3
    assert resolved["loop"]["iterations"] == 7  # flag
    assert resolved["storage_path"] == str(tmp_path / "runs")
    assert resolved["data"]["labels"] == ["person", "city"]
    assert not (tmp_path / "runs").exists()  # a dry run touches nothing


def test_dry_run_hides_credentials_in_uris(capsys):
    uri = "http://alice:hunter2@mlflow.internal:5000"
    code, out, _ = run_main(capsys, "self-train", "--dry-run", "-s", f"tracking.tracking_uri={uri}")
    assert code == 0
    assert "hunter2" not in out
    assert json.loads(out)["tracking"]["tracking_uri"] == "http://***@mlflow.internal:5000"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["self-train", "--dry-run", "-s", "train.epoch=3"], "train.epoch: unknown key"),
        (
            ["self-train", "--dry-run", "-s", "train.max_steps=zero"],
            "train.max_steps: Input should be a valid integer",
        ),
        (["self-train", "--dry-run", "-s", "epochs"], "expected KEY=VALUE"),
        (["self-train", "--config", "/nonexistent/job.yaml"], "config file not found"),
        (["evaluate", "--model", "/nonexistent/model"], "model not found"),
        (["predict", "--labels", " , "], "--labels is empty"),
        (["predict", "--file", "/nonexistent.jsonl"], "input file not found"),
        (["submit", "--dry-run", "--", "schedule"], "cannot submit 'schedule'"),
        (["submit", "--dry-run"], "no command to submit"),
        (
            ["submit", "--dry-run", "--", "self-train", "--config", "/etc/hostname"],
            "outside the working directory",
        ),
        (
            ["submit", "--address", "http://127.0.0.1:9", "--", "self-train", "--storage", "/tmp/runs"],
            "cannot reach the Ray cluster",
        ),
        (["status", "x"], "no cluster address"),
        (["self-train", "-s", "synth.mode=generate", "-s", "synth.config=/no.yml"], "synth config not found"),
        (["synth", "--synth-config", "/etc/hostname", "--dry-run"], "bad synth config"),
        (
            ["schedule", "--address", "http://127.0.0.1:9", "--", "self-train", "--storage", "/tmp/runs"],
            "cannot reach the Ray cluster",
        ),
        (
            ["schedule", "--drift-labels", "a", "--", "self-train", "--storage", "/tmp/runs"],
            "--drift-labels needs --drift-model",
        ),
        (
            [
                "schedule",
                "--watch",
                "/tmp",
                "--drift-model",
                "/nonexistent/champion",
                "--",
                "self-train",
                "--storage",
                "/tmp/r",
            ],
            "drift model not found: /nonexistent/champion",
        ),
        (["predict", "--storage", "/nonexistent/runs"], "no model registry yet"),
        (["predict", "--model", "models:/gliner-selftrain"], "bad model URI"),
        (["label", "--model", "/nonexistent/model"], "model not found: /nonexistent/model (no such folder)"),
        (["train", "--rows", "x", "--model", "/nonexistent/model"], "model not found"),
    ],
)
def test_user_mistakes_are_one_line(capsys, monkeypatch, args, message):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    code, _, err = run_main(capsys, *args)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0]


def test_bad_yaml_is_one_line_in_a_real_process(tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text("train: [epochs: 3\n")
    result = cli("self-train", "--config", str(config), timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {config}: not valid YAML/JSON")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status"], "Missing argument 'submission_id'"),
        (["label", "--model"], "Option '--model' requires an argument"),
        (["predict", "--threshold", "2"], "Invalid value for '--threshold'"),
        (["train", "--bogus"], "No such option: --bogus"),
        (["logs", "x", "--address"], "Option '--address' requires an argument"),
        (["no-such-command"], "No such command 'no-such-command'"),
    ],
)
def test_usage_mistakes_get_the_usage_message_and_no_traceback(args, message):
    """Issue 16.1: Click's usage message, exit code 2, no traceback, in a real process."""
    result = cli(*args, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    program = "gliner-selftrain" if args[0] == "no-such-command" else f"gliner-selftrain {args[0]}"
    assert result.stderr.startswith(f"Usage: {program} [OPTIONS]"), result.stderr
    assert f"Try '{program} --help' for help." in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"Error: {message}"), result.stderr


def test_shared_options_are_the_same_on_every_pipeline_command(capsys):
    shared = ["--config", "--set", "--storage", "--dry-run"]
    no_ray = ("evaluate", "predict", "export", "lineage")
    for command in ("self-train", "synth", "label", "train", *no_ray):
        code, out, _ = run_main(capsys, command, "--help")
        assert code == 0 and all(option in out for option in shared), command
        assert ("--ray-address" in out) == (command not in no_ray), command


def test_bad_cron_is_refused_before_anything_is_created(capsys, tmp_path):
    from jobs import schedule

    state = tmp_path / "state.db"
    args = ["schedule", "--cron", "every night", "--state", str(state), "--address", "http://127.0.0.1:9"]
    code, _, err = run_main(capsys, *args, "--", "self-train", "--storage", str(tmp_path))
    assert code == 2 and "not a valid cron expression" in err
    assert not state.exists()
    assert schedule.check_cron("0 3 * * *") == "0 3 * * *"


def test_predict_without_a_model_uses_the_registry_champion_and_its_labels(registry, monkeypatch):
    """Issue 16.2: after `make run`, `predict --text …` labels with the champion (and the labels and
    threshold it was registered with), in a real process."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = cli("predict", "--storage", registry.storage, "--text", "Ada Lovelace met Charles Babbage.")
    assert result.returncode == 0, result.stderr
    assert "model: gliner-selftrain version 1 (champion)" in result.stderr
    assert f"labels: {', '.join(REGISTERED_LABELS)}  threshold: {REGISTERED_THRESHOLD}" in result.stdout
    assert "meaningless" not in result.stdout + result.stderr


def test_predict_labels_come_from_the_config_for_a_folder(capsys, tmp_path, fresh_model):
    code, out, err = run_main(
        capsys, "predict", "--model", fresh_model, "--text", "Ada", "-s", "data.labels=[drug, city]"
    )
    assert code == 0, err
    assert "labels: drug, city  threshold: 0.5" in out  # data.labels, eval.threshold


def test_predict_uses_the_checkpoints_calibrated_thresholds(capsys, tmp_path, fresh_model):
    from gliner_core import GLiNER

    model = GLiNER.from_pretrained(fresh_model)
    model.set_thresholds({"drug": 0.3, "city": 0.7})
    model.save_pretrained(tmp_path / "calibrated")
    folder = str(tmp_path / "calibrated")
    args = ("predict", "--model", folder, "--text", "Ada", "-s", "data.labels=[drug, city]")
    code, out, err = run_main(capsys, *args)
    assert code == 0, err
    assert "threshold: calibrated (city 0.70, drug 0.30)" in out
    code, out, err = run_main(capsys, *args, "--threshold", "0.4")  # a given threshold wins
    assert code == 0 and "threshold: 0.4" in out, err


@pytest.mark.parametrize("command", ["predict", "evaluate", "label"])
def test_a_corrupt_checkpoint_is_one_error_line(capsys, tmp_path, fresh_model, command):
    """Issue 16.5: a truncated model.safetensors names the file, before any work starts."""
    broken = tmp_path / "broken"
    shutil.copytree(fresh_model, broken)
    weights = broken / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.truncate(weights.stat().st_size - 100)
    code, _, err = run_main(capsys, command, "--model", str(broken), "--storage", str(tmp_path / "runs"))
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: corrupt checkpoint: {weights} cannot be read")
    assert lines[0].endswith("save or download the checkpoint again")


def test_predict_a_file_writes_one_row_per_text(capsys, tmp_path, fresh_model):
    texts = tmp_path / "texts.jsonl"
    rows = [{"body": f"Ada Lovelace met Charles Babbage in London in 18{30 + i}."} for i in range(5)]
    texts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    output = tmp_path / "out.jsonl"
    code, _, err = run_main(
        capsys,
        "predict",
        "--model",
        fresh_model,
        "--file",
        str(texts),
        "--text-field",
        "body",
        "--labels",
        "person, city",
        "--threshold",
        "0.0001",
        "--batch-size",
        "2",
        "--output",
        str(output),
    )
    assert code == 0, err
    written = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["index"] for r in written] == list(range(5))
    assert [r["text"] for r in written] == [r["body"] for r in rows]
    for row in written:  # every entity points into its own text
        for entity in row["entities"]:
            assert row["text"][entity["start"] : entity["end"]] == entity["text"]
    assert "5 texts" in err


@pytest.mark.slow
def test_label_train_evaluate_by_hand(capfd, tmp_path, tiny_model, ray_local):
    """The loop's stages as separate commands, each reading the previous one's files; the console
    writes to the process's stdout (file descriptor 1), so this reads that."""
    capsys = capfd
    common = ["-s", f"storage_path={tmp_path}", "-s", "data.max_documents=24", "-s", "train.max_steps=3"]
    code, out, err = run_main(
        capsys, "label", "--model", tiny_model, "--output", str(tmp_path / "lab"), *common
    )
    assert code == 0, err
    assert "24 documents" in out and "@@gliner-progress" not in out and "RayTrainWorker" not in out
    assert (tmp_path / "lab.log").is_file()  # Ray's output went to the command's log
    assert list((tmp_path / "lab" / "train_rows").glob("*.parquet"))

    code, out, err = run_main(
        capsys, "train", "--rows", str(tmp_path / "lab" / "train_rows"), "--model", tiny_model,
        "--output", str(tmp_path / "tr"), *common,
    )  # fmt: skip
    assert code == 0, err
    checkpoint = out.strip().splitlines()[-1].split("-> ")[-1]
    assert Path(checkpoint, "gliner_config.json").is_file()

    code, out, err = run_main(capsys, "evaluate", "--model", checkpoint, "--json", *common)
    assert code == 0, err
    metrics = json.loads(out)
    assert 0.0 <= metrics["micro_f1"] <= 1.0


RAY_DATA_SNAPSHOT = """
import logging, sys
import ray, ray.data
from ray.util.debug import reset_log_once

ray.init(num_cpus=1, include_dashboard=False, logging_level=logging.WARNING)


@ray.remote(num_cpus=1)
class Busy:
    def ready(self):
        return True


busy = Busy.remote()
ray.get(busy.ready.remote())  # the only CPU is taken, as by a stage's actor pool that just finished
ray.data.from_items([1]).materialize()  # already materialized: runs nothing, but checks for CPUs
sys.stderr.write("--- quiet from here ---\\n")
sys.stderr.flush()
reset_log_once("cpu_warning")
from jobs.cli import quiet_known_noise

quiet_known_noise()
ray.data.from_items([1]).materialize()
ray.shutdown()
"""


def test_ray_datas_no_cpu_snapshot_warning_is_dropped(tmp_path):
    """Issue 16.4: Ray Data warns "…does not have any available CPUs. The Dataset job will hang…" when
    it checks right after a stage, before the stage's CPUs are counted free; the CLI drops it."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-c", RAY_DATA_SNAPSHOT],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**env, "RAY_AUTH_MODE": "disabled"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    before, after = done.stderr.split("--- quiet from here ---")
    assert "does not have any available CPUs" in before  # Ray Data's own check fired (the control)
    assert "does not have any available CPUs" not in after
