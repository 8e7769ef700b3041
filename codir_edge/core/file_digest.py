"""sha256 of a file's bytes, read once per process while the file stays the same.

Shared by the pipeline (whether a stage's inputs changed) and export (the timing and scoring caches'
keys), which both hash the same large graphs more than once in a run. The memo is keyed on the
resolved path, size, modification time and inode, so a rewritten file is read again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20
_memo: dict[tuple, str] = {}  # (path, size, mtime, inode) -> sha256


def file_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _memo:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        _memo[key] = digest.hexdigest()
    return _memo[key]
