"""The preflight of ``profile``: what a device is, answered before anything is uploaded to it.

Piped to the device's own Python (``python - describe WORKDIR`` with this file on stdin), so, like
``runner.py``, it is one file of the standard library only, runs on Python 3.8 or later and imports
nothing of the package. It imports nothing that might be missing either (numpy and onnxruntime are
imported only to report their versions or the error), so it answers on a device that cannot yet
measure anything, and the host turns each gap into one line with its fix. The host's own machine
description (``core/machine.py``) and provenance read the CPU through the same functions.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys

# Instruction sets that decide which int8/fp32 kernels onnxruntime picks.
RELEVANT_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)


def _cpuinfo() -> list:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return handle.read().splitlines()
    except OSError:
        return []


def cpu_model() -> str:
    """x86 says ``model name``; ARM boards say ``Model`` (the board) or only ``CPU part`` numbers."""
    fields = {}
    for line in _cpuinfo():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    for key in ("model name", "Model", "Hardware", "cpu model"):
        if fields.get(key):
            return fields[key]
    if sys.platform == "darwin":
        try:
            return subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list:
    for line in _cpuinfo():
        if line.startswith(("flags", "Features")):
            present = set(line.split(":", 1)[1].split())
            return [flag for flag in RELEVANT_FLAGS if flag in present]
    return []


def usable_cpus() -> list:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return list(range(os.cpu_count() or 1))


def _memory_mb():
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError, AttributeError):
        return None


def _free_mb(workdir: str):
    """Free space where WORKDIR is or would be created (its nearest existing parent)."""
    path = os.path.abspath(os.path.expanduser(workdir))
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        return shutil.disk_usage(path).free / 2**20
    except OSError:
        return None


def _module(name: str) -> dict:
    try:
        module = __import__(name)
    except Exception as exc:  # ImportError, or a broken install raising anything at import
        return {"error": "{}: {}".format(type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc) else "")}
    found = {"version": getattr(module, "__version__", "?")}
    if name == "onnxruntime":
        found["providers"] = list(module.get_available_providers())
    return found


def describe(workdir: str = "~/.cache/codir-edge", modules: bool = True) -> dict:
    """The preflight answer; ``modules=False`` skips importing numpy and onnxruntime."""
    found = {"numpy": _module("numpy"), "onnxruntime": _module("onnxruntime")} if modules else {}
    ort = found.get("onnxruntime", {})
    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "memory_mb": _memory_mb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_path": sys.executable,
        "numpy": found.get("numpy", {}).get("version"),
        "onnxruntime": ort.get("version"),
        "providers": ort.get("providers", []),
        "import_errors": {k: v["error"] for k, v in found.items() if "error" in v},
        "workdir": os.path.abspath(os.path.expanduser(workdir)),
        "free_mb": _free_mb(workdir),
    }


if __name__ == "__main__":
    if sys.argv[1:2] != ["describe"]:
        sys.stderr.write("usage: probe.py describe [WORKDIR]\n")
        sys.exit(2)
    print(json.dumps(describe(*sys.argv[2:3])))
