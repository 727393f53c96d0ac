from __future__ import annotations

import pytest

from jobs.settings import UserError, apply_override, load_config


def test_override_values_are_yaml_typed_and_create_sections():
    data: dict = {}
    apply_override(data, "train.epochs=3")
    apply_override(data, "data.labels=[person, city]")
    apply_override(data, "tracking.tracking_uri=null")
    apply_override(data, "name=a=b")  # only the first '=' separates
    assert data == {
        "train": {"epochs": 3},
        "data": {"labels": ["person", "city"]},
        "tracking": {"tracking_uri": None},
        "name": "a=b",
    }


@pytest.mark.parametrize("bad", ["epochs", "=3", "train..epochs=3", "train.epochs"])
def test_malformed_overrides(bad):
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        apply_override({}, bad)


def test_override_into_a_value_is_refused():
    with pytest.raises(UserError, match="name is a value"):
        apply_override({"name": "x"}, "name.first=y")


def test_precedence_file_then_set_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("loop:\n  iterations: 1\n  patience: 4\n")
    config = load_config(path, ["loop.iterations=2"], {"loop.iterations": 3, "storage_path": None})
    assert config.loop.iterations == 3 and config.loop.patience == 4
    assert config.storage_path == "runs"  # a None flag leaves the default


def test_validation_errors_name_every_bad_key(tmp_path):
    with pytest.raises(UserError) as error:
        load_config(None, ["train.max_steps=0", "merge.policy=random"])
    message = str(error.value)
    assert "train.max_steps" in message and "merge.policy" in message and "\n" not in message


def test_top_level_must_be_a_mapping(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="must be a mapping"):
        load_config(path)
