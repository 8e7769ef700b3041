"""Hard negatives (``--negative-sampling hard``): for every bank row, the rows the teacher itself
finds most similar, by cosine of its own layer summaries, among the rows that are negatives of it
(another label, the teacher's argmax for unlabelled rows, or a target beyond the margin).

Uniform label-aware negatives are mostly easy: once the classes sit apart, InfoNCE is solved by one
bit the KD term already teaches. The exact teacher bank can name the negatives that are hardest for
the teacher, which a momentum queue cannot. Near-duplicates of the anchor (cosine above
``DUPLICATE_COSINE``) are left out: the same sentence with another label is noise, not a lesson.

Computed once per run from the bank, deterministically, so every rank and a resumed run get the same
lists: exactly (chunked matrix products, O(N^2 D)) up to ``EXACT_LIMIT`` multiply-adds, beyond that on
a seeded random projection to ``PROJECTED_DIM`` dimensions (approximate, Johnson-Lindenstrauss).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.nn import functional as F

EXACT_LIMIT = 2e11  # N^2 * D multiply-adds above which similarities use a random projection
PROJECTED_DIM = 256
DUPLICATE_COSINE = 0.98
CHUNK = 1024  # anchor rows per matrix product (CHUNK x N similarities in memory)


def _normalised(bank, dim: int | None, seed: int) -> torch.Tensor:
    """(N, D or dim) float32 unit rows of the bank's features, read chunk by chunk (the bank may be a
    file); projected through a seeded Gaussian matrix when ``dim`` is given."""
    n = len(bank)
    projection = None
    if dim is not None:
        generator = torch.Generator().manual_seed(seed)
        projection = torch.randn(bank.features.shape[1], dim, generator=generator) / dim**0.5
    parts = []
    for start in range(0, n, CHUNK):
        rows = bank.rows(bank.features, torch.arange(start, min(start + CHUNK, n), device=bank.device), "cpu")
        parts.append(F.normalize(rows @ projection if projection is not None else rows, dim=-1))
    return torch.cat(parts)


def hard_neighbours(bank, is_negative: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], m: int,
                    seed: int) -> tuple[torch.Tensor, dict]:  # fmt: skip
    """((N, M) int64 bank rows, -1 where a row has fewer than M negatives; what it cost).
    ``is_negative(anchor_targets (B,), targets (N,))`` -> (B, N) bool."""
    started = time.perf_counter()
    n, d = bank.features.shape
    exact = float(n) * n * d <= EXACT_LIMIT
    units = _normalised(bank, None if exact else PROJECTED_DIM, seed)
    targets = bank.targets.to("cpu")
    out = torch.full((n, m), -1, dtype=torch.int64)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        similarity = units[start:stop] @ units.T  # (B, N)
        allowed = is_negative(targets[start:stop], targets) & (similarity < DUPLICATE_COSINE)
        similarity = similarity.masked_fill(~allowed, float("-inf"))
        top = similarity.topk(min(m, n), dim=1)
        out[start:stop, : top.indices.shape[1]] = torch.where(torch.isfinite(top.values), top.indices, -1)
    info = {"method": "exact cosine" if exact else f"cosine on a {PROJECTED_DIM}-d random projection (approximate)",
            "per_row": m, "seconds": round(time.perf_counter() - started, 3)}  # fmt: skip
    return out, info
