"""Latency statistics from raw samples, in milliseconds."""

from __future__ import annotations

import numpy as np

PERCENTILES = (50, 90, 95, 99)


def summarize(samples_ms: list[float], batch_size: int) -> dict[str, float]:
    """p50/p90/p95/p99 (linear interpolation), mean, std, min, max and sequences per second."""
    values = np.asarray(samples_ms, dtype=np.float64)
    figures = {f"p{p}_ms": float(np.percentile(values, p)) for p in PERCENTILES}
    figures.update(
        mean_ms=float(values.mean()),
        std_ms=float(values.std()),
        min_ms=float(values.min()),
        max_ms=float(values.max()),
        runs=int(len(values)),
    )
    figures["throughput_seq_per_s"] = float(batch_size * 1000.0 / values.mean()) if values.mean() > 0 else 0.0
    return figures
