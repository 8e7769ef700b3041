"""AdamW with decoupled weight decay (none on biases and LayerNorm) and a linear warm-up/decay schedule,
the BERT recipe every stage shares so that comparisons between objectives are fair."""

from __future__ import annotations

import math


def build_optimizer(named_parameters, lr: float, weight_decay: float):
    import torch

    decay, no_decay = [], []
    for name, param in named_parameters:
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or name.endswith(".bias") else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, fused=False)


def linear_schedule(optimizer, total_steps: int, warmup_ratio: float):
    """Linear warm-up over ``warmup_ratio`` of the steps, then linear decay to zero."""
    import torch

    warmup = math.ceil(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def clip_gradients(parameters, max_norm: float) -> None:
    """Scale gradients so that their global L2 norm is at most ``max_norm``, as
    ``torch.nn.utils.clip_grad_norm_`` does, with the global norm summed in float64.

    Why: an objective whose extra term has weight 0 (codir at contrastive weight 0) adds parameters
    whose gradients are exactly 0. They change nothing in the sum, but a float32 reduction over a longer
    list groups its terms differently, so the norm, and every clipped step after it, would differ in the
    last bit; in float64 that regrouping stays far below float32's rounding, and paired objectives stay
    bit-identical. No host sync: the scale stays on the device.
    """
    import torch

    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    norms = torch._foreach_norm(grads)  # per tensor, float32 as in clip_grad_norm_
    total = torch.stack([n.double() for n in norms]).pow(2).sum().sqrt()
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0).float()
    torch._foreach_mul_(grads, scale)
