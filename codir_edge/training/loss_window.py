"""Loss terms between two log lines, and the divergence check that names the term that went first."""

from __future__ import annotations

import math
import time
from pathlib import Path

from codir_edge.core.errors import CheckFailedError


class LossWindow:
    """Loss terms summed on the device between two log lines, with the step at which each first
    stopped being finite, so that a divergence names the term that started it (once the weights are
    NaN, every term follows one step later). ``hints`` add advice for a named term."""

    def __init__(self, hints: dict[str, str] | None = None) -> None:
        self.sums: dict = {}
        self.counts: dict[str, int] = {}  # steps that reported each term (one measured every few steps has fewer)
        self.first_bad: dict = {}
        self.steps = 0
        self.examples = 0
        self.started = time.perf_counter()
        self.hints = hints or {}

    def add(self, terms: dict, step: int, examples: int) -> None:
        import torch

        for name, value in terms.items():
            value = value.float()
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + 1
            never = torch.full_like(value, math.inf)
            bad_at = torch.where(torch.isfinite(value), never, torch.full_like(value, step))
            self.first_bad[name] = torch.minimum(self.first_bad.get(name, never), bad_at)
        self.steps += 1
        self.examples += examples

    def examples_per_s(self) -> float:
        return self.examples / max(time.perf_counter() - self.started, 1e-9)

    def means(self, last_saved: Path | None) -> dict[str, float]:
        """Mean of each term over the window, after checking that none diverged (NaN or infinite)."""
        means = {name: float(total) / max(self.counts[name], 1) for name, total in self.sums.items()}
        bad = {name: float(at) for name, at in self.first_bad.items() if math.isfinite(float(at))}
        if bad:
            first = min(bad.values())
            names = sorted(name for name, at in bad.items() if at == first)
            terms = " and ".join(f"{name} ({means[name]})" for name in names)
            kept = f"the last good checkpoint is {last_saved}" if last_saved else "no checkpoint was saved yet"
            hint = "".join(self.hints[name] for name in names if name in self.hints)
            raise CheckFailedError(
                f"the {terms} loss diverged at step {int(first)}; {kept}: start over with "
                f"--overwrite and a lower --lr{hint}, or use --precision fp32"
            )
        return means
