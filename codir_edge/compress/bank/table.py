"""The teacher bank as training reads it: rows gathered per step, from the device or from disk.

On a GPU with room to spare the bank is copied there. Otherwise it stays a memory-mapped file
(``cache.open_bank``) and each step gathers only the rows it needs, so host memory stays flat however
large the corpus: the kernel's page cache keeps the hot part of the file, and the pages a gather
mapped into this process are handed back (``MappedFile.release``) once a few tens of megabytes have
been read, so they never pile up in the process's resident memory.
"""

from __future__ import annotations

import mmap

import torch

from codir_edge.models.predict import host_to

RELEASE_EVERY_BYTES = 64 << 20  # mapped pages handed back after this much has been gathered


class MappedFile:
    """A file mapped copy-on-write (never written through), whose resident pages can be dropped."""

    def __init__(self, path) -> None:
        with open(path, "rb") as handle:
            self.map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
        self.path = str(path)
        self.unreleased = 0

    def touched(self, rows: int, row_bytes: int) -> None:
        """``rows`` rows of ``row_bytes`` were read: at most this many pages were mapped in."""
        pages = -(-row_bytes // mmap.PAGESIZE) + 1  # a row may straddle a page boundary
        self.unreleased += rows * pages * mmap.PAGESIZE
        if self.unreleased >= RELEASE_EVERY_BYTES:
            self.release()

    def release(self) -> None:
        """Unmap the pages read so far from this process; the page cache keeps them for the next read."""
        self.unreleased = 0
        if hasattr(mmap, "MADV_DONTNEED"):
            self.map.madvise(mmap.MADV_DONTNEED)


class TeacherBank:
    """Teacher summaries and logits of every training example, computed once (codir.md, memory bank).

    features: (N, L_S * d_T) float16; logits: (N, C) float16; targets: (N,) int64 labels or float
    regression targets. ``mapped`` is the file the features and logits are views of, when they are
    read from disk rather than held in memory.
    """

    def __init__(
        self,
        features: torch.Tensor,
        logits: torch.Tensor,
        targets: torch.Tensor,
        mapped: MappedFile | None = None,
    ):
        self.features, self.logits, self.targets = features, logits, targets
        self.mapped = mapped

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.features, self.logits, self.targets))

    @property
    def device(self) -> torch.device:
        return self.features.device

    def to(self, device) -> TeacherBank:
        """A copy on ``device`` (read from disk in one sequential pass when the bank is mapped)."""
        moved = TeacherBank(self.features.to(device), self.logits.to(device), self.targets.to(device))
        if self.mapped is not None:
            self.mapped.release()
        return moved

    def rows(self, table: torch.Tensor, index: torch.Tensor, device: torch.device) -> torch.Tensor:
        """``table[index]`` as float32 on ``device``. index: any shape of int64 on the bank's device."""
        picked = table[index]  # (*index.shape, D)
        if self.mapped is not None:
            self.mapped.touched(index.numel(), table.shape[1] * table.element_size())
        return host_to(picked, device).float()
