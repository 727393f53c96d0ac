"""Prompt ensemble: several ways to name each label, each run through GLiNER as its own weak source.

A view maps label -> the prompt text GLiNER is given for it. `prompt_views` builds
  <prefix>:names           every label by its own name;
  <prefix>:descriptions    the labels that have a description (`data.label_descriptions`), by it;
  <prefix>:synonyms:<i>    the labels with at least i synonyms (`label_synonyms`), by their i-th.
A view holds only the labels it has a prompt for; the label model reads that as the source's scope, so
a synonym view that names only `person` abstains on other labels instead of voting none on them.
A synonym equal to its label's name (case aside) is skipped: it would repeat the names view, and the
label model assumes sources err independently.

Each view's spans carry `origin` = the view's name. `label_for_prompt` maps predicted prompt text
back to the label (the GLiNER labeler given a {label: prompt} mapping already reports labels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipelines.config import PromptViewsConfig

MAIN_VIEW = "gliner"


def configured_views(
    config: PromptViewsConfig, prompts: Mapping[str, str], synonyms: Mapping[str, Sequence[str]] | None = None
) -> dict[str, dict[str, str]]:
    """View name -> {label: prompt}: the main view first."""
    views = {MAIN_VIEW: dict(prompts)}
    if config.names and any(label != prompt for label, prompt in prompts.items()):
        views[f"{MAIN_VIEW}:names"] = {label: label for label in prompts}
    if config.synonyms and synonyms:
        extra = prompt_views(list(prompts), synonyms=synonyms, names=False, prefix=MAIN_VIEW)
        views.update(extra)
    for name, view in views.items():
        _check_view(name, view)
    return views


def _unknown(given: Mapping[str, object], labels: Sequence[str], what: str) -> None:
    unknown = sorted(set(given) - set(labels))
    if unknown:
        raise ValueError(f"{what} name labels that are not in the label set {list(labels)}: {unknown}")


def _check_view(name: str, view: Mapping[str, str]) -> None:
    seen: dict[str, str] = {}
    for label, prompt in view.items():
        if not prompt.strip():
            raise ValueError(f"view {name!r}: label {label!r} has a blank prompt")
        key = prompt.strip().casefold()
        if key in seen:
            raise ValueError(
                f"view {name!r}: labels {seen[key]!r} and {label!r} share the prompt {prompt!r}; "
                "a predicted span could not be mapped back to one label"
            )
        seen[key] = label


def prompt_views(
    labels: Sequence[str],
    descriptions: Mapping[str, str] | None = None,
    synonyms: Mapping[str, Sequence[str]] | None = None,
    *,
    names: bool = True,
    prefix: str = "gliner",
) -> dict[str, dict[str, str]]:
    """View name -> {label: prompt}, in the order names, descriptions, synonyms 1..n."""
    descriptions = descriptions or {}
    synonyms = synonyms or {}
    _unknown(descriptions, labels, "label_descriptions")
    _unknown(synonyms, labels, "label_synonyms")
    views: dict[str, dict[str, str]] = {}
    if names:
        views[f"{prefix}:names"] = {label: label for label in labels}
    described = {
        label: descriptions[label].strip() for label in labels if descriptions.get(label, "").strip()
    }
    if described:
        views[f"{prefix}:descriptions"] = described
    others = {
        label: [
            s.strip()
            for s in synonyms.get(label, ())
            if s.strip() and s.strip().casefold() != label.casefold()
        ]
        for label in labels
    }
    for i in range(max((len(s) for s in others.values()), default=0)):
        views[f"{prefix}:synonyms:{i + 1}"] = {label: s[i] for label, s in others.items() if len(s) > i}
    if not views:
        raise ValueError("no prompt views: turn on `names` or give descriptions or synonyms")
    for name, view in views.items():
        _check_view(name, view)
    return views


def label_for_prompt(view: Mapping[str, str], prompt: str) -> str:
    """The label a view asked for with `prompt` (case and surrounding spaces aside)."""
    key = prompt.strip().casefold()
    for label, text in view.items():
        if text.strip().casefold() == key:
            return label
    raise ValueError(f"prompt {prompt!r} is not one of this view's prompts {sorted(view.values())}")


def view_scopes(views: Mapping[str, Mapping[str, str]]) -> dict[str, list[str]]:
    """View name -> the labels it can produce (for `label_model.SourceConfig.labels`)."""
    return {name: list(view) for name, view in views.items()}
