"""The bank on disk: its key, its file, written row by row and read where it is indexed.

The file is a safetensors file (``features`` (N, D) and ``logits`` (N, C), float16, the key in its
metadata), so older caches and ``safetensors.safe_open`` read it as before; but it is written by
streaming rows straight into place and read row by row (``table.FileTable``), so neither building nor
training needs the whole bank in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from codir_edge.data.encode import Encoded, update_digest
from codir_edge.training.run_folder import CACHE_FOLDER

BANK_FORMAT = 1
_DTYPE = np.float16
_HEADER_ALIGN = 8


def bank_key(
    teacher_digest: str, encoded: Encoded, layers: list[int], pooling: str, max_length: int, with_logits: bool = True
) -> str:
    """Hash of what the bank's contents depend on."""
    digest = hashlib.sha256()
    meta = {"format": BANK_FORMAT, "teacher": teacher_digest, "layers": layers, "pooling": pooling, "max": max_length}
    if not with_logits:  # a backbone's bank (CoDIR-Pre); fine-stage keys stay as they were
        meta["logits"] = False
    digest.update(json.dumps(meta, sort_keys=True).encode())
    update_digest(digest, encoded)
    return digest.hexdigest()[:20]


def bank_file(folder: Path, key: str) -> Path:
    return Path(folder) / CACHE_FOLDER / f"teacher-bank-{key}.safetensors"


class BankWriter:
    """Writes a bank of ``rows`` x (``width`` features, ``classes`` logits) in any row order, straight
    to a temporary file beside ``path``; ``commit`` renames it into place, so a killed build never
    leaves a truncated bank under the cache name. Use as a context manager."""

    def __init__(self, path: Path, key: str, rows: int, width: int, classes: int):
        self.path, self.rows, self.width, self.classes = Path(path), rows, width, classes
        item = np.dtype(_DTYPE).itemsize
        features_end = rows * width * item
        header = {
            "__metadata__": {"key": key},
            "features": {"dtype": "F16", "shape": [rows, width], "data_offsets": [0, features_end]},
            "logits": {
                "dtype": "F16",
                "shape": [rows, classes],
                "data_offsets": [features_end, features_end + rows * classes * item],
            },  # noqa: E501
        }
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-(len(text) + 8) % _HEADER_ALIGN)
        self.features_at = 8 + len(text)
        self.logits_at = self.features_at + features_end
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.tmp-", dir=self.path.parent)
        self.fd = fd
        os.write(fd, struct.pack("<Q", len(text)) + text)
        os.ftruncate(fd, self.logits_at + rows * classes * item)  # sparse until written

    def write(self, rows: np.ndarray, features: np.ndarray, logits: np.ndarray) -> None:
        """rows: (B,) bank rows; features: (B, width); logits: (B, classes). Consecutive rows go out in one write."""
        features = np.ascontiguousarray(features, dtype=_DTYPE)
        logits = np.ascontiguousarray(logits, dtype=_DTYPE)
        order = np.argsort(rows, kind="stable")
        rows, features, logits = rows[order], features[order], logits[order]
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(rows)], strict=True):
            first = int(rows[start])
            os.pwrite(self.fd, features[start:stop].tobytes(), self.features_at + first * features.shape[1] * 2)
            if self.classes:
                os.pwrite(self.fd, logits[start:stop].tobytes(), self.logits_at + first * self.classes * 2)

    def commit(self) -> Path:
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None
        os.replace(self.tmp, self.path)
        return self.path

    def __enter__(self) -> BankWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if self.fd is not None:  # not committed: an error or an interrupt
            os.close(self.fd)
            self.fd = None
            Path(self.tmp).unlink(missing_ok=True)


def read_header(path: Path) -> dict | None:
    """The safetensors header of ``path``, or None when it is not a readable safetensors file."""
    try:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            if size > 100 << 20:
                return None
            header = json.loads(handle.read(size))
    except (OSError, struct.error, ValueError):
        return None
    header["__data_start__"] = 8 + size
    return header


def open_bank(path: Path, key: str, examples: int):
    """(features, logits) as ``FileTable`` views of the cached bank when it exists, holds ``key``, has
    one row per example and is complete; else None (a damaged cache is rebuilt, never trusted)."""
    from codir_edge.compress.bank.table import FileTable

    header = read_header(path) if Path(path).is_file() else None
    if header is None or (header.get("__metadata__") or {}).get("key") != key:
        return None
    start = header["__data_start__"]
    try:
        entries = [header[name] for name in ("features", "logits")]
        if any(e["dtype"] != "F16" or len(e["shape"]) != 2 or e["shape"][0] != examples for e in entries):
            return None
        if any(e["data_offsets"][1] - e["data_offsets"][0] != e["shape"][0] * e["shape"][1] * 2 for e in entries):
            return None
        if start + max(e["data_offsets"][1] for e in entries) != Path(path).stat().st_size:
            return None
        return tuple(FileTable(path, start + e["data_offsets"][0], *e["shape"]) for e in entries)
    except (KeyError, TypeError, ValueError, OSError):
        return None
