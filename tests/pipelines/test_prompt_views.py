"""Prompt views: one GLiNER source per way of naming the labels, and prompts mapped back to labels."""

from __future__ import annotations

import pytest

from pipelines.config import PromptViewsConfig
from pipelines.weak.prompt_views import configured_views, label_for_prompt, prompt_views, view_scopes

LABELS = ["person", "organisation", "drug"]


def test_views_names_descriptions_synonyms():
    views = prompt_views(
        LABELS,
        {"drug": "a medicine or drug name ", "person": ""},
        {"person": ["human", "Person", "individual"], "drug": ["medication"]},
    )
    assert views == {
        "gliner:names": {"person": "person", "organisation": "organisation", "drug": "drug"},
        "gliner:descriptions": {"drug": "a medicine or drug name"},
        "gliner:synonyms:1": {"person": "human", "drug": "medication"},
        "gliner:synonyms:2": {"person": "individual"},  # "Person" repeats the names view: skipped
    }
    assert view_scopes(views)["gliner:synonyms:2"] == ["person"]
    assert label_for_prompt(views["gliner:synonyms:1"], " Medication") == "drug"
    with pytest.raises(ValueError, match="prompt 'nurse' is not one of this view's prompts"):
        label_for_prompt(views["gliner:synonyms:1"], "nurse")


def test_config_and_errors():
    prompts = {label: label for label in LABELS} | {"drug": "a medication"}
    assert configured_views(PromptViewsConfig(), prompts, {"drug": ["medication"]}) == {"gliner": prompts}
    assert configured_views(
        PromptViewsConfig(names=True, synonyms=True), prompts, {"drug": ["medication"]}
    ) == {
        "gliner": prompts,
        "gliner:names": {label: label for label in LABELS},
        "gliner:synonyms:1": {"drug": "medication"},
    }
    plain = {label: label for label in LABELS}  # no description: a names view would repeat the main one
    assert configured_views(PromptViewsConfig(names=True), plain) == {"gliner": plain}
    with pytest.raises(
        ValueError, match=r"label_synonyms name labels that are not in the label set .*\['dose'\]"
    ):
        prompt_views(LABELS, synonyms={"dose": ["amount"]})
    with pytest.raises(ValueError, match="labels 'person' and 'organisation' share the prompt 'Company'"):
        prompt_views(LABELS, synonyms={"person": ["company"], "organisation": ["Company"]})
    with pytest.raises(ValueError, match="no prompt views"):
        prompt_views(LABELS, names=False)


def test_each_view_runs_through_gliner_and_reports_labels(minilm_path):
    from gliner_core import GLiNER
    from pipelines.data.spans import entity_to_span

    model = GLiNER.from_backbone(minilm_path, max_len=48, hidden_size=64)  # random heads: any spans will do
    views = prompt_views(LABELS, {"drug": "a medicine"}, {"person": ["human"], "drug": ["medication"]})
    texts = ["Dr. Alice Smith of Acme Corp prescribed aspirin.", "Bob took ibuprofen."]
    for origin, view in views.items():
        found = model.batch_predict_entities(texts, view, threshold=0.0)
        spans = [entity_to_span(entity, origin) for entities in found for entity in entities]
        assert spans, origin
        assert {s["label"] for s in spans} <= set(view), origin  # labels come back, never prompt texts


def test_the_stage_refuses_labels_given_where_views_belong():
    """A bare {label: prompt} where views are expected failed inside every labeling actor, as a
    `normalize_labels` error far from the cause (two benches did it); now the stage says so at once."""
    from pipelines.config import WeakLabelConfig
    from pipelines.weak.weak_label import weak_label

    with pytest.raises(TypeError, match="views must map a view name to"):
        weak_label(None, "model", {"person": "person"}, WeakLabelConfig())  # type: ignore[arg-type, dict-item]
    with pytest.raises(TypeError, match="views must map"):
        weak_label(None, "model", {}, WeakLabelConfig())  # type: ignore[arg-type]
