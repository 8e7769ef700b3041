"""Measure one configuration in a fresh process: ``python -m codir_edge.profile.worker < spec.json``.

A fresh process per configuration gives an honest peak-memory figure and no cross-talk (thread
pools, allocator state, caches warmed by another model). The spec and the result are JSON on
stdin/stdout. Cold start is session creation plus the first run, timed after imports.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def _pin(cpus: list[int] | None) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)


def _proc_status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        return None
    return None


def _peak_rss_mb() -> float:
    """Peak resident memory of this process only. Linux keeps ``ru_maxrss`` across fork and exec, so a
    worker would report its parent's peak; VmHWM belongs to the new address space made by exec."""
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024.0 * 1024.0) if sys.platform == "darwin" else maxrss / 1024.0


def _timed_loop(run, feeds: list, runs: int, duration_s: float | None, warmup: int) -> list[float]:
    for i in range(warmup):
        run(feeds[i % len(feeds)])
    samples: list[float] = []
    clock = time.perf_counter_ns
    deadline = clock() + int(duration_s * 1e9) if duration_s else None
    i = 0
    while (len(samples) < runs) if deadline is None else (clock() < deadline or len(samples) < 3):
        feed = feeds[i % len(feeds)]
        start = clock()
        run(feed)
        samples.append((clock() - start) / 1e6)
        i += 1
    return samples


def _onnx(spec: dict) -> dict:
    import numpy as np

    from codir_edge.inputs import to_feed
    from codir_edge.onnx_session import create_session

    start = time.perf_counter_ns()
    session = create_session(spec["path"], spec["threads"], spec["provider"])
    inputs = session.get_inputs()
    names = [i.name for i in inputs]
    dtype = np.int32 if any(i.type == "tensor(int32)" for i in inputs) else np.int64
    feeds = [to_feed(rows, names, dtype, spec.get("pad_id", 0)) for rows in spec["batches"]]
    session.run(None, feeds[0])
    cold_ms = (time.perf_counter_ns() - start) / 1e6
    samples = _timed_loop(lambda f: session.run(None, f), feeds, spec["runs"], spec.get("duration_s"), spec["warmup"])
    return {
        "cold_start_ms": cold_ms,
        "samples_ms": samples,
        "providers": session.get_providers(),
    }


def _torch(spec: dict) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification

    from codir_edge.inputs import to_feed
    from codir_edge.models.families import input_names

    torch.set_num_threads(spec["threads"])
    start = time.perf_counter_ns()
    model = AutoModelForSequenceClassification.from_pretrained(spec["path"]).eval()
    names = list(input_names(model.config))
    feeds = [
        {k: torch.from_numpy(v) for k, v in to_feed(rows, names, pad_id=spec.get("pad_id", 0)).items()}
        for rows in spec["batches"]
    ]

    def run(feed):
        with torch.inference_mode():
            model(**feed)

    run(feeds[0])
    cold_ms = (time.perf_counter_ns() - start) / 1e6
    samples = _timed_loop(run, feeds, spec["runs"], spec.get("duration_s"), spec["warmup"])
    return {
        "cold_start_ms": cold_ms,
        "samples_ms": samples,
        "providers": ["pytorch"],
    }


def measure(spec: dict) -> dict:
    _pin(spec.get("cpus"))
    result = _torch(spec) if spec["kind"] == "torch" else _onnx(spec)
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def main() -> None:
    spec = json.loads(sys.stdin.read())
    try:
        result = measure(spec)
    except Exception as exc:  # reported to the parent, which turns it into a one-line error
        result = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"}
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main()
