"""Describe the machine a measurement was taken on: a latency figure means nothing without it."""

from __future__ import annotations

import os
import platform

from codir_edge.core.probe import RELEVANT_FLAGS, cpu_flags, cpu_model, usable_cpus

__all__ = ["RELEVANT_FLAGS", "cpu_flags", "describe_machine", "usable_cpus"]


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
