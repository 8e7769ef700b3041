"""The message that asks for one timed configuration, typed on the host side.

``profile`` and ``compress --latency-budget`` both build it; the device runner
(``codir_edge/core/runner.py``) and the torch worker read it as one JSON line. The runner reads
plain keys because it runs alone on a board with only the standard library, so the fields are
declared here, once, and a misspelt or missing one fails on the host before anything is uploaded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Measurement:
    """One timed configuration: which model, which inputs, how many threads and runs."""

    model: str  # an ONNX file as the device sees its path (a PyTorch folder for the torch worker)
    ids: str  # the token-id batches (.npy) and their lengths, prepared on the host
    lengths: str
    threads: int
    runs: int  # timed runs; 0 with duration_s times for that long instead
    warmup: int
    duration_s: float | None = None
    provider: str = "CPUExecutionProvider"
    cpus: tuple[int, ...] | None = None  # pin the process to these CPUs
    timeout_s: float = 300.0  # the runner kills the run past this

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "cpus": list(self.cpus) if self.cpus else None})

    @classmethod
    def from_json(cls, text: str) -> Measurement:
        fields = json.loads(text)
        cpus = fields.pop("cpus", None)
        return cls(**fields, cpus=tuple(cpus) if cpus else None)
