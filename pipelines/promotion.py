"""Whether a newly trained model becomes the champion, and why (the reason is printed and tracked)."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.config import LoopConfig
from pipelines.reports import EvalReport


@dataclass
class Decision:
    promote: bool
    reason: str


def decide(candidate: EvalReport, champion: EvalReport, loop: LoopConfig) -> Decision:
    """Promote when dev micro F1 beats the champion's by more than `loop.min_improvement`."""
    gain = candidate.micro_f1 - champion.micro_f1
    if gain > loop.min_improvement:
        return Decision(
            True, f"dev micro F1 {candidate.micro_f1:.4f} beats the champion's {champion.micro_f1:.4f}"
        )
    return Decision(
        False,
        f"dev micro F1 {candidate.micro_f1:.4f} does not beat the champion's {champion.micro_f1:.4f}"
        + (f" by more than {loop.min_improvement}" if loop.min_improvement else ""),
    )
