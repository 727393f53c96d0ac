"""Whether a newly trained model becomes the champion, and why (the reason is printed and tracked).

A candidate is promoted when its dev micro F1 beats the champion's by more than `loop.min_improvement`
and no label the champion is scored on with at least `loop.guard_min_support` dev spans loses more
than `loop.guard_max_drop` F1: a better average bought by forgetting a label is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pipelines.config import LoopConfig
from pipelines.reports import EvalReport

LabelScores = Mapping[str, tuple[float, int]]  # label -> (F1, gold spans it is scored on)


@dataclass
class Decision:
    promote: bool
    reason: str


def guard_losses(candidate: LabelScores, champion: LabelScores, loop: LoopConfig) -> dict[str, float]:
    """Watched labels (at least `loop.guard_min_support` gold spans) whose F1 falls by more than
    `loop.guard_max_drop` from `champion` to `candidate` -> the F1 lost."""
    lost = {}
    for label, (before, support) in champion.items():
        if support >= loop.guard_min_support and label in candidate:
            drop = before - candidate[label][0]
            if drop > loop.guard_max_drop:
                lost[label] = drop
    return lost


def describe_losses(lost: Mapping[str, float]) -> str:
    """'person -0.055, location -0.060', the worst first."""
    return ", ".join(f"{label} -{drop:.3f}" for label, drop in sorted(lost.items(), key=lambda kv: -kv[1]))


def label_scores(report: EvalReport) -> dict[str, tuple[float, int]]:
    """An evaluation's per-label F1 and gold spans, as the guard reads them."""
    return {label: (s.f1, s.support) for label, s in report.scores.per_label.items()}


def decide(candidate: EvalReport, champion: EvalReport, loop: LoopConfig) -> Decision:
    """Promote `candidate` over `champion`? Never when the candidate has not converged (its per-label F1
    depends on the order of the labels); else by `decide_on_scores`."""
    if not candidate.converged:
        return Decision(False, candidate.order_note())
    return decide_on_scores(
        candidate.micro_f1, label_scores(candidate), champion.micro_f1, label_scores(champion), loop
    )


def decide_on_scores(
    candidate_f1: float,
    candidate_labels: LabelScores,
    champion_f1: float,
    champion_labels: LabelScores,
    loop: LoopConfig,
) -> Decision:
    """`decide` on scores already computed (micro F1 and per-label F1 with support)."""
    scores = f"dev micro F1 {candidate_f1:.4f} vs the champion's {champion_f1:.4f}"
    gain = candidate_f1 - champion_f1
    if gain <= loop.min_improvement:
        margin = f" (needs more than +{loop.min_improvement})" if loop.min_improvement else ""
        return Decision(False, f"{scores}: no gain{margin}")
    lost = guard_losses(candidate_labels, champion_labels, loop)
    if lost:
        worst = describe_losses(lost)
        return Decision(
            False, f"{scores}, but F1 drops by more than {loop.guard_max_drop} on {worst} (promotion guard)"
        )
    return Decision(True, f"{scores}: +{gain:.4f}, no watched label drops more than {loop.guard_max_drop}")
