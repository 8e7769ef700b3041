"""Measure a PyTorch folder in a fresh process: ``python -m codir_edge.profile.torch_worker < spec.json``.

The PyTorch baseline runs only on this machine, but with the device runner's loop, inputs and
memory figure, so its numbers sit beside the ONNX ones on equal terms. Cold start is model loading
plus the first run, timed after imports.
"""

from __future__ import annotations

import json
import sys
import time

from codir_edge.core.runner import feeds, peak_rss_mb, pin, timed_loop
from codir_edge.devices.measurement import Measurement
from codir_edge.models.hf_imports import prepare_transformers


def measure(spec: Measurement) -> dict:
    import numpy as np
    import torch

    prepare_transformers()
    from transformers import AutoModelForSequenceClassification

    from codir_edge.models.families import input_names

    pin(spec.cpus)
    torch.set_num_threads(spec.threads)
    ids, lengths = np.load(spec.ids), np.load(spec.lengths)
    start = time.perf_counter_ns()
    model = AutoModelForSequenceClassification.from_pretrained(spec.model).eval()
    batches = [
        {k: torch.from_numpy(v) for k, v in feed.items()}
        for feed in feeds(ids, lengths, list(input_names(model.config)), np.int64)
    ]

    def run(feed):
        with torch.inference_mode():
            model(**feed)

    run(batches[0])
    cold_ms = (time.perf_counter_ns() - start) / 1e6
    samples = timed_loop(run, batches, spec.runs, spec.duration_s, spec.warmup)
    return {"cold_start_ms": cold_ms, "samples_ms": samples, "providers": ["pytorch"], "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    spec = Measurement.from_json(sys.stdin.read())
    try:
        result = measure(spec)
    except Exception as exc:  # reported to the parent, which turns it into a one-line error
        result = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"}
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main()
