"""Several processes through ``torchrun``: PyTorch DDP with NCCL on GPUs and gloo on CPUs.

``torchrun`` sets RANK, WORLD_SIZE and LOCAL_RANK; without them everything here is a no-op, so the
trainer reads the same whether it runs alone or as one of many ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from codir_edge.core.errors import InputError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Dist:
    """Join the process group torchrun set up; one process per GPU, each pinned to its LOCAL_RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise InputError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible: "
                "start torchrun with --nproc-per-node at most the GPU count"
            )
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank=rank, world=world, local_rank=local_rank)


def rank_device(device: str, dist_info: Dist) -> str:
    """Each rank trains on its own GPU; ``cuda`` alone means 'the one torchrun gave me'."""
    if dist_info.enabled and device.startswith("cuda"):
        return f"cuda:{dist_info.local_rank}"
    return device


def from_main(value, dist_info: Dist):
    """Rank 0's ``value`` on every rank: a decision that must not differ between ranks (a measured
    shape, a pruning plan) is made once and shared."""
    if not dist_info.enabled:
        return value
    import torch.distributed as dist

    box = [value if dist_info.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(dist_info: Dist) -> None:
    if dist_info.enabled:
        import torch.distributed as dist

        dist.barrier()


def all_gather_rows(tensor, dist_info: Dist):
    """Concatenate every rank's rows (ranks may hold different counts) in rank order.

    tensor: (n_rank, D) on this rank's device. Returns (sum n_rank, D). Rows travel as float32
    because gloo does not reduce or gather every half-precision type.
    """
    if not dist_info.enabled:
        return tensor
    import torch
    import torch.distributed as dist

    counts = [torch.zeros(1, dtype=torch.int64, device=tensor.device) for _ in range(dist_info.world)]
    dist.all_gather(counts, torch.tensor([tensor.shape[0]], dtype=torch.int64, device=tensor.device))
    sizes = [int(c.item()) for c in counts]
    padded = torch.zeros((max(sizes), *tensor.shape[1:]), dtype=torch.float32, device=tensor.device)
    padded[: tensor.shape[0]] = tensor.float()
    parts = [torch.empty_like(padded) for _ in range(dist_info.world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, sizes, strict=True)]).to(tensor.dtype)


def any_rank(flag: bool, dist_info: Dist, device: str) -> bool:
    """True on every rank when it is true on one (a Ctrl-C seen by one rank stops all of them together)."""
    if not dist_info.enabled:
        return flag
    import torch
    import torch.distributed as dist

    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def shutdown(dist_info: Dist) -> None:
    if dist_info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
