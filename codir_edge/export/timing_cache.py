"""Export's candidate timings, kept per graph contents and machine (``core/disk_cache.py``, under
``export-timings/``), so that re-exporting an unchanged model (every CI run of an unchanged student)
does not time the same graphs again.

A timing is only worth reusing where it would come out the same: the key is the bytes of every
candidate graph, the settings and rows timed, the rounds and runs, and the machine (CPU model and
flags, the CPUs this process may use, onnxruntime's version). Anything else changed is a miss.
``export --no-timing-cache`` neither reads nor writes it.
"""

from __future__ import annotations

from pathlib import Path

from codir_edge.core import disk_cache
from codir_edge.core.file_digest import file_digest

KIND = "export-timings"
FORMAT = 1  # bump when what a cached entry holds changes


def graph_digest(path: Path) -> str:
    """sha256 of a graph, and of its external-data file when it has one."""
    data = path.with_name(path.name + ".data")
    return file_digest(path) if not data.is_file() else disk_cache.key_of([file_digest(path), file_digest(data)])


def timing_key(candidates: dict[str, Path], what: dict) -> str:
    """One key for the whole timing: each candidate's name and contents, ``what`` was timed (settings,
    rows, rounds, runs) and where."""
    from codir_edge.core.machine import machine_key

    return disk_cache.key_of({
        "format": FORMAT,
        "graphs": {name: graph_digest(path) for name, path in sorted(candidates.items())},
        "what": what,
        "machine": machine_key(with_cpus=True),
    })  # fmt: skip


def load(key: str) -> dict | None:
    return disk_cache.load(KIND, key)


def save(key: str, measured: dict) -> None:
    disk_cache.save(KIND, key, measured)
