"""Helpers that drive the official `gliner` package, our parity oracle."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch


def build_official_span_model(minilm: str, seed: int = 0, head_scale: float = 150.0, **config):
    """An official span model on MiniLM with random heads (fixed seed).

    Random heads score every span near 0.5; scaling the label FFN's last layer
    spreads the logits so that thresholds and greedy decoding have real work
    to do and near-ties (which would make the comparison fragile) are rare.
    """
    import gliner

    torch.manual_seed(seed)
    settings = {"model_name": minilm, "span_mode": "markerV0", "max_width": 12, **config}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = gliner.GLiNER.from_config(settings, backbone_from_pretrained=True, local_files_only=True)
    with torch.no_grad():
        model.model.prompt_rep_layer[3].weight.mul_(head_scale)
        model.model.prompt_rep_layer[3].bias.mul_(head_scale)
    model.eval()
    return model


def load_official(path: str | Path):
    import gliner

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gliner.GLiNER.from_pretrained(str(path), local_files_only=True)


def official_predict(model, texts: list[str], labels: list[str], **kwargs) -> list[list[dict]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.inference(texts, labels, **kwargs)


@torch.no_grad()
def official_logits(model, texts: list[str], labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The official span logits (B, L, K, C) and span validity (B, L, K) for `texts` in one batch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = model.prepare_batch(texts, labels)
        batch = model.collate_batch(prepared["input_x"], prepared["entity_types"])
        output = model.run_batch(batch)
    logits = output.logits
    B, L, K, _ = logits.shape
    return logits, batch["span_mask"].view(B, L, K)
