"""BERT's masking for the masked-LM terms of CoDIR-Pre (Devlin et al. 2019, section 3.1).

Each real, non-special token is chosen with probability p (0.15); a chosen token becomes [MASK]
80% of the time, a random vocabulary token 10%, and stays itself 10%; the model is scored on the
chosen tokens only. The generator is passed in: the engine derives it from the data position, so a
resumed run masks exactly as the uninterrupted one would, with no state to save.
"""

from __future__ import annotations

import numpy as np

IGNORE = -100  # the label of tokens the MLM loss skips (PyTorch's cross-entropy default)


def mask_tokens(
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    special_ids: np.ndarray,
    mask_id: int,
    vocab_size: int,
    probability: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """input_ids, attention_mask: (B, T) int64. Returns (masked input_ids, labels), both (B, T): labels
    hold the original id where a token was chosen and ``IGNORE`` elsewhere."""
    candidates = (attention_mask == 1) & ~np.isin(input_ids, special_ids)  # (B, T)
    chosen = candidates & (rng.random(input_ids.shape) < probability)
    labels = np.where(chosen, input_ids, IGNORE)
    roll = rng.random(input_ids.shape)
    masked = input_ids.copy()
    masked[chosen & (roll < 0.8)] = mask_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    masked[swap] = rng.integers(0, vocab_size, size=int(swap.sum()))
    return masked, labels
