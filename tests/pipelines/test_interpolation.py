"""Weight interpolation between an iteration's start model and its trained model (WiSE-FT)."""

from __future__ import annotations

import json

import pytest
import torch

from gliner_core import GLiNER
from pipelines.config import LoopConfig, PipelineConfig
from pipelines.selection import interpolation
from pipelines.selection.interpolation import Selection, interpolate_model, interpolate_state


def test_interpolated_weights_lie_between_the_two_models():
    start = {"w": torch.zeros(3), "steps": torch.tensor([1])}
    trained = {"w": torch.tensor([2.0, 4.0, -2.0]), "steps": torch.tensor([7])}
    assert torch.equal(interpolate_state(start, trained, 1.0)["w"], trained["w"])
    assert torch.allclose(interpolate_state(start, trained, 0.25)["w"], torch.tensor([0.5, 1.0, -0.5]))
    assert interpolate_state(start, trained, 0.5)["steps"].item() == 7  # integers are not averaged
    with pytest.raises(ValueError, match="different parameters"):
        interpolate_state({"w": torch.zeros(3)}, {"v": torch.zeros(3)}, 0.5)
    with pytest.raises(ValueError, match="shape"):
        interpolate_state({"w": torch.zeros(3)}, {"w": torch.zeros(4)}, 0.5)


def test_weights_outside_zero_to_one_are_refused():
    assert LoopConfig(interpolation=[1.0, 0.5, 0.5]).interpolation == [0.5, 1.0]
    for bad in ([0.0], [1.5], [-0.25]):
        with pytest.raises(ValueError, match=r"in \(0, 1\]"):
            LoopConfig(interpolation=bad)


def _two_models(tmp_path, backbone: str) -> tuple[str, str]:
    torch.manual_seed(0)
    start = GLiNER.from_backbone(backbone, hidden_size=16, max_len=48)
    start.save_pretrained(tmp_path / "start")
    with torch.no_grad():
        for p in start.parameters():
            p.add_(torch.randn_like(p))
    start.save_pretrained(tmp_path / "trained")
    return str(tmp_path / "start"), str(tmp_path / "trained")


def _dev(tmp_path) -> str:
    rows = [
        {
            "text": "Ada Lovelace moved to London in 1835.",
            "spans": [{"start": 0, "end": 12, "label": "person"}],
        },
        {"text": "Acme Corp hired Grace Hopper.", "spans": [{"start": 0, "end": 9, "label": "organisation"}]},
    ]
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_the_best_weight_on_the_selection_rows_replaces_the_trained_model(
    tmp_path, tiny_backbone, monkeypatch
):
    start, trained = _two_models(tmp_path, tiny_backbone)
    config = PipelineConfig.model_validate(
        {"data": {"dev_gold": _dev(tmp_path)}, "eval": {"calibrate": False}}
    )
    start_w = GLiNER.from_pretrained(start).state_dict()
    trained_w = GLiNER.from_pretrained(trained).state_dict()
    name = next(n for n, v in trained_w.items() if v.is_floating_point() and not torch.equal(v, start_w[n]))
    midpoint = (start_w[name] + trained_w[name]) / 2

    def closeness_to_midpoint(config, model, rows):  # a score that peaks at lam = 0.5
        assert len(rows) == 2
        return Selection(-float((model.state_dict()[name] - midpoint).abs().max()), {})

    monkeypatch.setattr(interpolation, "selection_score", closeness_to_midpoint)
    report = interpolate_model(config, start, trained, [0.25, 0.5, 1.0])
    assert report.chosen == 0.5 and list(report.scores) == [0.25, 0.5, 1.0]
    saved = GLiNER.from_pretrained(trained).state_dict()
    assert torch.allclose(saved[name], midpoint)
    assert "kept 0.5" in report.summary() and report.tracked().metrics["interpolation_weight"] == 0.5


def _scores_by_weight(start: str, trained: str, table: dict[float, Selection]):
    """A selection score read from `table` by the weight the model's parameters sit at (0: the start)."""
    start_w = GLiNER.from_pretrained(start).state_dict()
    trained_w = GLiNER.from_pretrained(trained).state_dict()
    name = next(n for n, v in trained_w.items() if v.is_floating_point() and not torch.equal(v, start_w[n]))

    def score(config, model, rows):
        for lam, selection in table.items():
            if torch.allclose(model.state_dict()[name], torch.lerp(start_w[name], trained_w[name], lam)):
                return selection
        raise AssertionError("the model is at none of the weights tried")

    return score


def test_a_weight_that_loses_a_watched_label_is_passed_over_for_one_that_does_not(
    tmp_path, tiny_backbone, monkeypatch
):
    start, trained = _two_models(tmp_path, tiny_backbone)
    config = PipelineConfig.model_validate(
        {
            "data": {"dev_gold": _dev(tmp_path)},
            "eval": {"calibrate": False},
            "loop": {"guard_min_support": 10, "guard_max_drop": 0.05},
        }
    )
    table = {
        0.0: Selection(0.30, {"person": (0.40, 20), "date": (0.50, 3)}),
        0.5: Selection(0.34, {"person": (0.37, 20), "date": (0.10, 3)}),  # date is not watched (3 spans)
        1.0: Selection(0.38, {"person": (0.30, 20), "date": (0.60, 3)}),  # person -0.10: beyond the guard
    }
    monkeypatch.setattr(interpolation, "selection_score", _scores_by_weight(start, trained, table))
    report = interpolate_model(config, start, trained, [0.5, 1.0])
    assert report.chosen == 0.5 and report.start_score == 0.30
    assert report.guarded == {1.0: "person -0.100"}
    assert "1: 0.3800 (loses person -0.100)" in report.summary()
    assert "kept 0.5 (the best within the promotion guard)" in report.summary()
    artifact = report.tracked().json_artifacts["interpolation.json"]
    assert artifact["loses_watched_labels"] == {"1": "person -0.100"} and artifact["start"] == 0.30

    # when every weight loses a watched label, the best micro F1 is kept (the promotion check refuses it)
    (tmp_path / "again").mkdir()
    start, trained = _two_models(tmp_path / "again", tiny_backbone)  # the first call rewrote `trained`
    table[0.5] = Selection(0.34, {"person": (0.20, 20)})
    monkeypatch.setattr(interpolation, "selection_score", _scores_by_weight(start, trained, table))
    report = interpolate_model(config, start, trained, [0.5, 1.0])
    assert report.chosen == 1.0 and set(report.guarded) == {0.5, 1.0}
    assert "kept 1 (every weight loses a watched label)" in report.summary()


def test_real_scores_with_calibration_and_the_trained_model_left_alone_when_it_wins(tmp_path, tiny_backbone):
    start, trained = _two_models(tmp_path, tiny_backbone)
    before = (tmp_path / "trained" / "model.safetensors").read_bytes()
    config = PipelineConfig.model_validate(
        {"data": {"dev_gold": _dev(tmp_path)}, "eval": {"calibrate": True, "calibration_min_support": 1}}
    )
    report = interpolate_model(config, start, trained, [0.5, 1.0])
    assert set(report.scores) == {0.5, 1.0} and all(0.0 <= f1 <= 1.0 for f1 in report.scores.values())
    assert report.calibrated and report.rows == 2
    after = (tmp_path / "trained" / "model.safetensors").read_bytes()
    if report.scores[0.5] <= report.scores[1.0]:  # a tie goes to the trained model: nothing rewritten
        assert report.chosen == 1.0 and after == before
    else:
        assert report.chosen == 0.5 and after != before
