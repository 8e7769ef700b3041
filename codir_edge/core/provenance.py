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


def without_machine_paths(command: str) -> str:
    """``command`` with every absolute path cut to its last part (``/home/me/runs/student`` ->
    ``student``, ``--data=/x/SST-2`` -> ``--data=SST-2``): a shipped artifact keeps the options
    that made it, not the build machine's folders and user name."""
    def portable(word: str) -> str:
        flag, eq, value = word.partition("=") if word.startswith("-") else ("", "", word)
        if os.path.isabs(value) or value.startswith("~"):
            value = os.path.basename(os.path.normpath(value)) or value
        return f"{flag}{eq}{value}"

    return shlex.join(portable(word) for word in shlex.split(command))


def provenance() -> dict:
    return {
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "versions": package_versions(),
    }
