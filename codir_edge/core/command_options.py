"""Command inputs that several commands share: where results go and how the command reports.

Declared once here (``core/settings.py``'s way) and taken by each command's own inputs class, by
inheritance or with :func:`~codir_edge.core.settings.like` where a command words one differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.settings import CHECKPOINTS, setting


@dataclass(frozen=True, kw_only=True)
class OutputOptions:
    out: Path = setting(
        help="Output folder; written atomically (nothing appears there unless the command succeeds).",
        flags=("--out", "-o"),
    )
    overwrite: bool = setting(False, help="Replace an existing --out folder once the new one is complete.")
    json_path: Path | None = setting(None, help="Also write the result as JSON to this file.", flags=("--json",))
    quiet: bool = setting(False, help="No progress bars.", flags=("--quiet", "-q"))


@dataclass(frozen=True, kw_only=True)
class ResumeOption:
    resume: bool = setting(
        False,
        help="Continue an interrupted run from its last checkpoint (same command otherwise).",
        panel=CHECKPOINTS,
    )
