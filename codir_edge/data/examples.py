"""The in-memory form of a data split, shared by every stage (plain Python, no heavy imports)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Examples:
    """One split: texts, optional second texts, and targets (label indices, or floats for regression)."""

    texts: list[str]
    text_pairs: list[str] | None
    targets: list[float] | list[int]
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    def subsample(self, n: int | None, seed: int) -> Examples:
        """A seeded random ``n`` of the examples, in file order: GLUE files are often grouped by
        label or source, so taking the first ``n`` would skew a small run."""
        if n is None or n >= len(self):
            return self
        keep = sorted(random.Random(seed).sample(range(len(self)), n))
        pairs = [self.text_pairs[i] for i in keep] if self.text_pairs is not None else None
        return Examples([self.texts[i] for i in keep], pairs, [self.targets[i] for i in keep], self.source)
