"""Content digests of files and folders: what decides whether a stage's inputs or output changed.

Contents, not timestamps: a `touch`, a fresh clone or a copy must not force hours of retraining,
while a one-byte edit of the data must. A folder's digest covers every file's relative path and
bytes, except hidden entries (staging folders, pipeline state) and a top-level ``cache/`` (the
compress teacher bank, which can be rebuilt and does not change the model).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from codir_edge.core.file_digest import file_digest

__all__ = ["file_digest", "path_digest"]


def _folder_files(root: Path) -> list[Path]:
    files = []
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (here == root and d == "cache"))
        files += [here / name for name in sorted(names) if not name.startswith(".")]
    return files


def path_digest(path: Path) -> str | None:
    """sha256 over a file's bytes or a folder's files; None when the path does not exist."""
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for file in _folder_files(path):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0" + file_digest(file).encode() + b"\n")
    return digest.hexdigest()
