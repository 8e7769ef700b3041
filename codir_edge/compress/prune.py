"""Width pruning: which attention heads and FFN neurons a student keeps, and their physical removal.

Importance follows Michel et al. (2019): a mask of ones multiplies each head's output (the input of
the attention's output projection, one slice per head) and each FFN neuron (the input of the FFN's
output projection); the *teacher's* task loss is back-propagated over training sentences, and
|dL/dmask| summed over batches says how much the loss leans on that unit. Every student block keeps
the same number of heads and neurons, the top ones of the teacher block it was copied from, so a
student's latency is a function of its shape alone (what ``--latency-budget`` relies on).

Removal makes a standard transformers checkpoint: heads go through the model's own ``prune_heads``,
which records ``config.pruned_heads`` ({block: [removed heads]}) and which ``from_pretrained``
re-applies before loading weights; FFN neurons are rows of the input projection and columns of the
output projection, with the config's FFN width set to the kept count (one for all blocks).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

from codir_edge.core.errors import InputError
from codir_edge.models.families import Family, family_of, heads


def keep_count(total: int, fraction: float) -> int:
    """Units a fraction keeps of ``total``: rounded, at least one."""
    return max(1, min(total, round(total * fraction)))


def ffn_width(config) -> int:
    family = family_of(config)
    return int(getattr(config, family.ffn_key))


def check_prunable(config, heads_keep: float, ffn_keep: float, where: str) -> None:
    """One line for a family whose checkpoints cannot record per-block head counts."""
    family = family_of(config, where)
    if heads_keep < 1.0 and family.attn_out is None:
        raise InputError(
            f"--heads-keep {heads_keep}: {family.model_type} checkpoints cannot record pruned heads "
            "(transformers has no prune_heads for it), so only FFN neurons are pruned: use --ffn-keep alone"
        )


def units(model, family: Family) -> list:
    """The prunable blocks, in order (ALBERT: every layer of every shared group, flattened as its
    ``pruned_heads`` numbers them)."""
    pattern = family.unit_name()
    return [module for name, module in model.named_modules() if pattern.match(name)]


@contextlib.contextmanager
def masked(model, head_mask=None, ffn_mask=None):
    """Multiply every head's output by ``head_mask[block, head]`` and every FFN neuron by
    ``ffn_mask[block, neuron]`` while the block is open. Masks that require grad collect importance;
    masks of zeros and ones show what removal must reproduce."""
    family = family_of(model.config)
    blocks = units(model, family)
    hooks = []

    def scale(mask_row, per_head: bool):
        def hook(module, args):  # noqa: ARG001 - the forward pre-hook signature
            x = args[0]
            row = mask_row.to(x.dtype)
            if per_head:
                row = row.repeat_interleave(x.shape[-1] // row.numel())
            return (x * row, *args[1:])

        return hook

    try:
        for i, block in enumerate(blocks):
            if head_mask is not None and family.attn_out is not None:
                target = block.get_submodule(family.attn_out)
                hooks.append(target.register_forward_pre_hook(scale(head_mask[i], True)))
            if ffn_mask is not None:
                target = block.get_submodule(family.ffn_out)
                hooks.append(target.register_forward_pre_hook(scale(ffn_mask[i], False)))
        yield
    finally:
        for hook in hooks:
            hook.remove()


def score_importance(model, batches, regression: bool, want_heads: bool = True):
    """(head scores [blocks, heads] or None, neuron scores [blocks, FFN width]): |dL/dmask| summed over
    ``batches`` of (inputs, targets), the model's weights frozen and dropout off."""
    import torch

    family = family_of(model.config)
    count = len(units(model, family))
    device = next(model.parameters()).device
    want_heads = want_heads and family.attn_out is not None
    head_mask = torch.ones(count, heads(model.config), device=device, requires_grad=True) if want_heads else None
    ffn_mask = torch.ones(count, ffn_width(model.config), device=device, requires_grad=True)
    head_scores = torch.zeros(count, heads(model.config)) if want_heads else None
    ffn_scores = torch.zeros(count, ffn_width(model.config))
    was_training, flags = model.training, [p.requires_grad for p in model.parameters()]
    model.eval()
    model.requires_grad_(False)
    try:
        with masked(model, head_mask, ffn_mask):
            for inputs, targets in batches:
                logits = model(**inputs).logits.float()
                if regression:
                    loss = torch.nn.functional.mse_loss(logits.squeeze(-1), targets.float())
                else:
                    loss = torch.nn.functional.cross_entropy(logits, targets.long())
                masks = [m for m in (head_mask, ffn_mask) if m is not None]
                grads = torch.autograd.grad(loss, masks)
                if head_scores is not None:
                    head_scores += grads[0].abs().cpu()
                ffn_scores += grads[-1].abs().cpu()
    finally:
        for parameter, flag in zip(model.parameters(), flags, strict=True):
            parameter.requires_grad_(flag)
        model.train(was_training)
    return head_scores, ffn_scores


@dataclass(frozen=True)
class PrunePlan:
    """What each student block keeps, by its index in the teacher block it was copied from."""

    removed_heads: list[list[int]]  # per student block: heads removed (empty: all kept)
    kept_neurons: list[list[int]] | None  # per student block: FFN neurons kept, ascending (None: all)
    heads_total: int
    ffn_total: int

    @property
    def heads_kept(self) -> int:
        return self.heads_total - (len(self.removed_heads[0]) if self.removed_heads else 0)

    @property
    def ffn_kept(self) -> int:
        return len(self.kept_neurons[0]) if self.kept_neurons else self.ffn_total

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> PrunePlan:
        return cls(**values)


def make_plan(head_scores, ffn_scores, sources: list[int], heads_keep: float, ffn_keep: float) -> PrunePlan:
    """Top-scored units per student block; ``sources[i]`` is the teacher block (0-based) that
    student block i was copied from. Ties go to the lower index, so a plan is reproducible."""
    import torch

    heads_total = head_scores.shape[1] if head_scores is not None else 0
    ffn_total = ffn_scores.shape[1]
    removed: list[list[int]] = [[] for _ in sources]
    if head_scores is not None and heads_keep < 1.0:
        keep = keep_count(heads_total, heads_keep)
        for i, source in enumerate(sources):
            order = torch.argsort(-head_scores[source], stable=True)
            removed[i] = sorted(order[keep:].tolist())
    kept = None
    if ffn_keep < 1.0:
        keep = keep_count(ffn_total, ffn_keep)
        kept = [sorted(torch.argsort(-ffn_scores[s], stable=True)[:keep].tolist()) for s in sources]
    return PrunePlan(removed, kept, heads_total, ffn_total)


def _replace(block, path: str, module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(block.get_submodule(parent) if parent else block, name, module)


def apply_plan(model, plan: PrunePlan) -> None:
    """Remove what the plan drops, in place: heads through transformers (recorded in
    ``config.pruned_heads``), FFN neurons by slicing, with the config's FFN width following."""
    import torch
    from transformers.pytorch_utils import prune_linear_layer

    family = family_of(model.config)
    to_prune = {i: heads for i, heads in enumerate(plan.removed_heads) if heads}
    if to_prune:
        model.prune_heads(to_prune)
    if plan.kept_neurons is None:
        return
    for block, kept in zip(units(model, family), plan.kept_neurons, strict=True):
        index = torch.tensor(kept, dtype=torch.long)
        rows = torch.cat([index, index + plan.ffn_total]) if family.glu else index
        _replace(block, family.ffn_in, prune_linear_layer(block.get_submodule(family.ffn_in), rows, dim=0))
        _replace(block, family.ffn_out, prune_linear_layer(block.get_submodule(family.ffn_out), index, dim=1))
    setattr(model.config, family.ffn_key, plan.ffn_kept)


def plan_masks(plan: PrunePlan):
    """(head mask, FFN mask) of zeros and ones: the plan as masks on the unpruned model."""
    import torch

    blocks = len(plan.removed_heads)
    head_mask = None
    if plan.heads_total:
        head_mask = torch.ones(blocks, plan.heads_total)
        for i, removed in enumerate(plan.removed_heads):
            head_mask[i, removed] = 0.0
    ffn_mask = torch.ones(blocks, plan.ffn_total)
    if plan.kept_neurons is not None:
        ffn_mask.zero_()
        for i, kept in enumerate(plan.kept_neurons):
            ffn_mask[i, kept] = 1.0
    return head_mask, ffn_mask
