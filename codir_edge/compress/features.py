"""Layer summaries: the intermediate representations CoDIR contrasts (codir.md, steps 1 and 2)."""

from __future__ import annotations


def layer_summaries(hidden_states, attention_mask, layers: list[int], pooling: str):
    """Concatenated summaries of ``layers`` (indices into ``hidden_states``, where 0 is the embedding
    output and i the output of block i).

    hidden_states: tuple of (B, T, d) tensors; attention_mask: (B, T), 1 for real tokens.
    Returns (B, len(layers) * d) float32. Mean pooling excludes padding, so a sentence's summary does
    not depend on how long its batch-mates are; ``cls`` takes the first token, as the release does.
    """
    import torch

    if pooling == "cls":
        parts = [hidden_states[j][:, 0].float() for j in layers]  # each (B, d)
    else:
        mask = attention_mask.unsqueeze(-1).float()  # (B, T, 1)
        count = mask.sum(dim=1).clamp_min(1.0)  # (B, 1)
        parts = [(hidden_states[j].float() * mask).sum(dim=1) / count for j in layers]  # each (B, d)
    return torch.cat(parts, dim=-1)  # (B, L * d)
