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


def build_official(
    minilm: str,
    seed: int = 0,
    head_scale: float = 150.0,
    probe: tuple[list[str], list[str]] | list[tuple[list[str], list[str]]] | None = None,
    **config,
):
    """Any official architecture on MiniLM with random heads: span (default), token_level, bi-encoder.

    `span_mode="token_level"` builds the token-level model, `labels_encoder=minilm`
    a bi-encoder. The layer that makes the final scores is scaled so that they
    spread away from 0.5: the label FFN's last layer for span models, the
    scorer's last layer for token models, whose biases are then set so that on
    `probe` (texts, labels), or a list of them, about 30% of (word, label) pairs
    pass 0.5 as starts and as ends, and 70% as inside.
    """
    import gliner

    torch.manual_seed(seed)
    settings = {"model_name": minilm, "max_width": 12, **config}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = gliner.GLiNER.from_config(settings, backbone_from_pretrained=True, local_files_only=True)
    model.eval()
    if not hasattr(model.model, "scorer"):
        with torch.no_grad():
            model.model.prompt_rep_layer[3].weight.mul_(head_scale)
            model.model.prompt_rep_layer[3].bias.mul_(head_scale)
        return model
    last = model.model.scorer.out_mlp[3]
    with torch.no_grad():
        last.weight.mul_(head_scale)
        last.bias.zero_()
        probe = probe or ([PROBE_TEXT], ["person", "location", "organization", "date"])
        probes = probe if isinstance(probe, list) else [probe]
        logits = torch.cat([official_raw_logits(model, t, labels).reshape(-1, 3) for t, labels in probes])
        quantiles = torch.quantile(logits, torch.tensor([0.7, 0.7, 0.3]), dim=0).diagonal()
        last.bias.copy_(-quantiles)
    return model


PROBE_TEXT = (
    "Marie Curie and Pierre Curie worked in Paris at the University of Paris; in 1903 they shared "
    "the Nobel Prize in Physics with Henri Becquerel, and in 1911 she won the Nobel Prize in Chemistry."
)


@torch.no_grad()
def official_raw_logits(model, texts: list[str], labels: list[str]) -> torch.Tensor:
    """The official model's logits for `texts` in one batch: (B, L, K, C) span or (B, L, C, 3) token."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = model.prepare_batch(texts, labels)
        batch = model.collate_batch(prepared["input_x"], prepared["entity_types"])
        return model.run_batch(batch).logits
