"""Layer summaries: the intermediate representations CoDIR contrasts (codir.md, steps 1 and 2)."""

from __future__ import annotations


def layer_summaries(hidden_states, attention_mask, layers: list[int], pooling: str):
    """Concatenated summaries of ``layers`` (indices into ``hidden_states``, where 0 is the embedding
    output and i the output of block i).

    hidden_states: tuple of (B, T, d) tensors; attention_mask: (B, T), 1 for real tokens.
    Returns (B, len(layers) * d) float32, (B, 0) for no layers. Padding never counts (``models/sentence.pool``),
    so a sentence's summary does not depend on how long its batch-mates are; ``cls`` takes the first token,
    as the release does; ``max`` is sentence-transformers' max pooling.
    """
    import torch

    from codir_edge.models.sentence import pool

    if not layers:
        return hidden_states[0].new_zeros((hidden_states[0].shape[0], 0), dtype=torch.float32)
    return torch.cat([pool(hidden_states[j], attention_mask, pooling) for j in layers], dim=-1)  # (B, L * d)
