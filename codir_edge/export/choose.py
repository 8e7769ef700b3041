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


def median_latencies(
    candidates: dict[str, Path],
    threads: int,
    vocab: int,
    seq_len: int = 128,
    rounds: int = 5,
    runs: int = 20,
) -> dict[str, float]:
    """Median milliseconds per run, batch 1, for each candidate, on token ids below ``vocab``."""
    from codir_edge.inputs import synthetic_token_ids, to_feed
    from codir_edge.onnx_session import create_session

    sessions = {name: create_session(path, threads) for name, path in candidates.items()}
    rows = synthetic_token_ids(1, seq_len, vocab=vocab)  # the input profile measures with
    feeds = {name: to_feed(rows, [i.name for i in s.get_inputs()]) for name, s in sessions.items()}
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
