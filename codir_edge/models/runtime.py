"""Device, precision and seeding: one place decides where and how training runs.

``auto`` means CUDA with bf16 autocast when a GPU is there (fp16 with loss scaling on GPUs without
bf16), else CPU in fp32: the fastest setting that does not need tuning by the user.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass

from codir_edge.core.errors import InputError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Runtime:
    device: str  # "cpu" or "cuda[:N]"
    precision: str  # "fp32", "bf16" or "fp16"

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def needs_grad_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
        return self.precision == "fp16"

    def autocast(self):
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type="cuda" if self.is_cuda else "cpu", dtype=dtype)


def resolve_runtime(device: str = "auto", precision: str = "auto") -> Runtime:
    import torch

    if device not in DEVICES and not device.startswith("cuda:"):
        raise InputError(f"unknown --device '{device}': use one of {', '.join(DEVICES)}")
    if precision not in PRECISIONS:
        raise InputError(f"unknown --precision '{precision}': use one of {', '.join(PRECISIONS)}")
    has_cuda = torch.cuda.is_available()
    if device.startswith("cuda") and not has_cuda:
        raise InputError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu or auto")
    resolved = ("cuda" if has_cuda else "cpu") if device == "auto" else device
    if precision == "auto":
        if resolved.startswith("cuda"):
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    if precision == "fp16" and not resolved.startswith("cuda"):
        raise InputError("--precision fp16 needs a CUDA GPU: use bf16 or fp32 on the CPU")
    return Runtime(resolved, precision)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
