"""Decide between graph variants by measuring them, on this machine, as the bundle will be run.

Offline fusion is not faster than onnxruntime's own load-time fusion everywhere (it was not for
all-MiniLM-L6 at one thread here), and a quantized fused graph can be slower than a quantized plain
one: so candidates are timed side by side, in alternating rounds so that machine noise hits all of
them, and the median decides.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np


def synthetic_feed(input_names: list[str], seq_len: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 30000, size=(1, seq_len), dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return {name: feed[name] for name in input_names}


def median_latencies(
    candidates: dict[str, Path], threads: int, seq_len: int = 128, rounds: int = 5, runs: int = 20
) -> dict[str, float]:
    """Median milliseconds per run, batch 1, for each candidate."""
    from codir_edge.onnx_session import create_session

    sessions = {name: create_session(path, threads) for name, path in candidates.items()}
    feeds = {name: synthetic_feed([i.name for i in s.get_inputs()], seq_len) for name, s in sessions.items()}
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for name, session in sessions.items():  # warm-up: kernels, pre-packed weights, thread pool
        for _ in range(3):
            session.run(None, feeds[name])
    for round_no in range(rounds):
        order = list(sessions) if round_no % 2 == 0 else list(reversed(sessions))
        for name in order:
            for _ in range(runs):
                start = time.perf_counter_ns()
                sessions[name].run(None, feeds[name])
                samples[name].append((time.perf_counter_ns() - start) / 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}
