"""Describe the machine a measurement was taken on: a latency figure means nothing without it."""

from __future__ import annotations

import os
import platform

from codir_edge.core.probe import RELEVANT_FLAGS, cpu_flags, cpu_model, usable_cpus

__all__ = ["RELEVANT_FLAGS", "cpu_flags", "describe_machine", "machine_key", "usable_cpus"]


def describe_machine() -> dict:
    import onnxruntime

    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cores": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "providers": onnxruntime.get_available_providers(),
    }


def machine_key(*, with_cpus: bool) -> dict:
    """What a cached measurement on this machine depends on: the CPU model, its instruction sets and
    onnxruntime's version (INT8 kernels differ by all three), and, for timings, the CPUs this process
    may use."""
    import onnxruntime

    key = {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "onnxruntime": onnxruntime.__version__}
    return {**key, "usable_cpus": usable_cpus()} if with_cpus else key
