"""Export's candidate timings, kept per graph contents and machine, so that re-exporting an unchanged
model (every CI run of an unchanged student) does not time the same graphs again.

A timing is only worth reusing where it would come out the same: the key is the bytes of every
candidate graph, the settings and rows timed, the rounds and runs, and the machine (CPU model and
flags, the CPUs this process may use, onnxruntime's version). Anything else changed is a miss. The
cache lives in ``$CODIR_EDGE_CACHE``, else ``$XDG_CACHE_HOME/codir-edge``, else ``~/.cache/codir-edge``,
under ``export-timings/``; ``export --no-timing-cache`` neither reads nor writes it. A cache that
cannot be written (a read-only home) costs a re-timing next time, never the export.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

FORMAT = 1  # bump when what a cached entry holds changes


def cache_dir() -> Path:
    if os.environ.get("CODIR_EDGE_CACHE"):
        return Path(os.environ["CODIR_EDGE_CACHE"]).expanduser() / "export-timings"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "codir-edge" / "export-timings"


def file_digest(path: Path) -> str:
    """sha256 of a graph and of its external-data file, when it has one."""
    digest = hashlib.sha256()
    for part in (path, path.with_name(path.name + ".data")):
        if part.is_file():
            with open(part, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def timing_key(candidates: dict[str, Path], what: dict) -> str:
    """One key for the whole timing: each candidate's name and contents, ``what`` was timed (settings,
    rows, rounds, runs) and where."""
    from codir_edge.core.machine import describe_machine

    machine = describe_machine()
    described = {
        "format": FORMAT,
        "graphs": {name: file_digest(path) for name, path in sorted(candidates.items())},
        "what": what,
        "machine": {k: machine[k] for k in ("cpu", "cpu_flags", "usable_cpus", "onnxruntime")},
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def load(key: str) -> dict | None:
    path = cache_dir() / f"{key}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, unreadable or cut short: time afresh
        return None


def save(key: str, measured: dict) -> None:
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{key}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(measured), encoding="utf-8")
        temporary.replace(folder / f"{key}.json")
    except OSError:
        return
