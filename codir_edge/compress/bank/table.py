"""The teacher bank as training reads it: rows gathered per step, from memory or from its file.

A bank that fits the device that trains (a GPU with room to spare, or host memory up to
``IN_MEMORY_BYTES``) is loaded there. A larger one stays in its cache file and each step reads just
the rows it needs (``FileTable``): host memory then stays flat however large the corpus, and the
kernel's page cache keeps the hot part of the file. Rows are read with ``pread`` rather than through
a memory map: on kernels that map whole large folios at a fault, a random-row gather from a map
pulls about 2 MB per row into the process's resident memory.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from codir_edge.models.predict import host_to

IN_MEMORY_BYTES = 256 << 20  # a bank up to this size is loaded into host memory (SST-2's is ~155 MB)


class FileTable:
    """A (rows, width) float16 table inside a file, read row by row where it is indexed.

    Stands in for a tensor wherever the bank is read: ``shape``, ``device``, ``numel``,
    ``element_size``, indexing by a tensor of rows, and ``to(device)`` for a full load.
    """

    dtype = torch.float16
    device = torch.device("cpu")

    def __init__(self, path, offset: int, rows: int, width: int):
        self.path, self.offset, self.shape = str(path), offset, torch.Size((rows, width))
        self.row_bytes = width * 2
        self.fd = os.open(self.path, os.O_RDONLY) if rows and width else None

    def numel(self) -> int:
        return self.shape[0] * self.shape[1]

    def element_size(self) -> int:
        return 2

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        """``table[index]`` for int64 ``index`` of any shape: (*index.shape, width) float16."""
        flat = index.reshape(-1).cpu().numpy()
        rows, inverse = np.unique(flat, return_inverse=True)
        buffer = np.empty((len(rows), self.shape[1]), dtype=np.float16)
        if self.fd is not None:
            view, size = memoryview(buffer).cast("B"), self.row_bytes
            for i, row in enumerate(rows.tolist()):
                if os.preadv(self.fd, [view[i * size : (i + 1) * size]], self.offset + row * size) != size:
                    raise OSError(f"the teacher bank {self.path} is shorter than its header says")
        picked = torch.from_numpy(buffer)[torch.from_numpy(inverse.reshape(-1))]
        return picked.reshape(*index.shape, self.shape[1])

    def to(self, device) -> torch.Tensor:
        """The whole table as a tensor on ``device``, read in one sequential pass."""
        table = np.fromfile(self.path, dtype=np.float16, count=self.numel(), offset=self.offset)
        return torch.from_numpy(table.reshape(tuple(self.shape))).to(device)

    def __del__(self) -> None:
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)


class TeacherBank:
    """Teacher summaries and logits of every training example, computed once (codir.md, memory bank).

    features: (N, L_S * d_T) float16; logits: (N, C) float16 (tensors, or ``FileTable`` when read from
    disk); targets: (N,) int64 labels or float regression targets, always in memory.
    """

    def __init__(self, features, logits, targets: torch.Tensor):
        self.features, self.logits, self.targets = features, logits, targets

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.features, self.logits, self.targets))

    @property
    def device(self) -> torch.device:
        return self.features.device

    @property
    def on_disk(self) -> bool:
        return isinstance(self.features, FileTable)

    def to(self, device) -> TeacherBank:
        """A copy on ``device`` (read from disk in one sequential pass when the bank is in its file)."""
        return TeacherBank(self.features.to(device), self.logits.to(device), self.targets.to(device))

    def rows(self, table, index: torch.Tensor, device: torch.device) -> torch.Tensor:
        """``table[index]`` as float32 on ``device``. index: any shape of int64 on the bank's device."""
        return host_to(table[index], device).float()  # (*index.shape, D)
