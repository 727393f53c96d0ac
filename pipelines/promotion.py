"""Whether a newly trained model becomes the champion, and why (the reason is printed and tracked).

A candidate is promoted when its dev micro F1 beats the champion's by more than `loop.min_improvement`
and no label the champion is scored on with at least `loop.guard_min_support` dev spans loses more
than `loop.guard_max_drop` F1: a better average bought by forgetting a label is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.config import LoopConfig
from pipelines.reports import EvalReport


@dataclass
class Decision:
    promote: bool
    reason: str


def label_drops(candidate: EvalReport, champion: EvalReport, min_support: int) -> dict[str, float]:
    """Labels with at least `min_support` dev spans -> F1 lost against the champion (positive: a loss)."""
    drops = {}
    for label, before in champion.scores.per_label.items():
        after = candidate.scores.per_label.get(label)
        if before.support >= min_support and after is not None:
            drops[label] = before.f1 - after.f1
    return drops


def decide(candidate: EvalReport, champion: EvalReport, loop: LoopConfig) -> Decision:
    scores = f"dev micro F1 {candidate.micro_f1:.4f} vs the champion's {champion.micro_f1:.4f}"
    gain = candidate.micro_f1 - champion.micro_f1
    if gain <= loop.min_improvement:
        margin = f" (needs more than +{loop.min_improvement})" if loop.min_improvement else ""
        return Decision(False, f"{scores}: no gain{margin}")
    lost = {
        label: drop
        for label, drop in label_drops(candidate, champion, loop.guard_min_support).items()
        if drop > loop.guard_max_drop
    }
    if lost:
        worst = ", ".join(
            f"{label} -{drop:.3f}" for label, drop in sorted(lost.items(), key=lambda kv: -kv[1])
        )
        return Decision(
            False, f"{scores}, but F1 drops by more than {loop.guard_max_drop} on {worst} (promotion guard)"
        )
    return Decision(True, f"{scores}: +{gain:.4f}, no watched label drops more than {loop.guard_max_drop}")
