"""What produced an artifact: versions, machine and command line, written next to every result."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import sys

from codir_edge.core.probe import cpu_model


def package_versions(
    names: tuple[str, ...] = ("codir-edge", "torch", "transformers", "onnx", "onnxruntime", "optimum-onnx", "numpy"),
) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def provenance() -> dict:
    return {
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "versions": package_versions(),
    }
