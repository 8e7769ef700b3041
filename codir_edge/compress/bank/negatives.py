"""Label-aware sampling of negatives from the whole bank (codir.md, step 4), or, with ``instance``,
of any other row (CRD's instance discrimination: same-label rows are negatives too).

The sampler lives on the bank's device and draws from a seeded ``torch.Generator`` whose state goes
into every checkpoint, so a resumed run draws the same negatives as an uninterrupted one and no step
waits on the host.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class NegativeSampler:
    """K negatives per anchor from the whole bank: examples with another label (classification) or a
    target further than ``margin`` away (regression), codir.md step 4.

    Without replacement whenever the anchor's pool holds at least K examples: in each step, every
    class's pool is shuffled and the anchors of that class take consecutive windows of K from it.
    Where a pool is smaller than K, that pool is drawn with replacement (and ``shortfalls`` says so).
    With ``instance`` every row but the anchor's own is a negative, drawn uniformly (with replacement:
    K is tiny against the bank); the label or target is not read.
    """

    def __init__(
        self,
        targets: torch.Tensor,
        k: int,
        regression: bool,
        margin: float | None,
        seed: int,
        device: torch.device | str = "cpu",
        instance: bool = False,
    ):
        self.k = k
        self.regression = regression
        self.instance = instance
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.shortfalls: list[str] = []
        self.hard: torch.Tensor | None = None  # (N, M) bank rows, set by attach_hard
        self.hard_info: dict | None = None
        targets = targets.to(self.device)
        self.n = targets.shape[0]
        if instance:
            if self.n < 2:
                self.shortfalls.append("the bank holds one example, so there are no negatives: add examples")
        elif regression:
            self._init_regression(targets.float(), margin)
        else:
            self._init_classes(targets.long())

    def _init_classes(self, labels: torch.Tensor) -> None:
        classes = int(labels.max().item()) + 1 if self.n else 1
        pools = [torch.nonzero(labels != c).squeeze(1) for c in range(classes)]
        self.pool_sizes = torch.tensor([len(p) for p in pools], dtype=torch.int64, device=self.device)  # (C,)
        width = max(1, max(len(p) for p in pools))
        self.pools = torch.zeros((classes, width), dtype=torch.int64, device=self.device)  # (C, P), padded
        for c, pool in enumerate(pools):
            self.pools[c, : len(pool)] = pool
        present = set(labels.unique().tolist())
        self.with_replacement = torch.zeros(classes, dtype=torch.bool, device=self.device)
        for c, pool in enumerate(pools):
            if c in present and len(pool) < self.k:
                self.with_replacement[c] = True
                if len(pool) == 0:
                    self.shortfalls.append(
                        f"every training example has label {c}, so there are no negatives: "
                        "the contrastive term compares each example with itself only; add examples of other labels"
                    )
                else:
                    self.shortfalls.append(
                        f"--negatives {self.k} exceeds the {len(pool)} examples with a label other than {c}: "
                        "sampling those with replacement"
                    )

    def _init_regression(self, targets: torch.Tensor, margin: float | None) -> None:
        if margin is None:
            spread = float(targets.max() - targets.min()) if self.n else 0.0
            margin = 0.2 * spread
        self.margin = margin
        self.sorted_targets, self.order = torch.sort(targets)  # (N,), (N,)
        lo, hi = self._bounds(targets)
        counts = lo + (self.n - hi)
        short = int((counts < self.k).sum())
        if short:
            self.shortfalls.append(
                f"{short} of {self.n} examples have fewer than --negatives {self.k} examples further than "
                f"{margin:.3g} from their target: sampling those with replacement (or from all examples when none)"
            )

    def _bounds(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Negatives of target y sit at sorted positions [0, lo) and [hi, N)."""
        lo = torch.searchsorted(self.sorted_targets, y - self.margin, side="left")
        hi = torch.searchsorted(self.sorted_targets, y + self.margin, side="right")
        return lo, hi

    def is_negative(self, anchor_targets: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, N) bool: which rows are negatives of each anchor, by the rule ``sample`` draws with (for
        ``instance``: every row; the anchor's own is left out by its rows, not its target)."""
        if self.instance:
            return torch.ones((anchor_targets.shape[0], targets.shape[0]), dtype=torch.bool, device=targets.device)
        if self.regression:
            return (anchor_targets.float().unsqueeze(1) - targets.float().unsqueeze(0)).abs() > self.margin
        return anchor_targets.long().unsqueeze(1) != targets.long().unsqueeze(0)

    def attach_hard(self, neighbours: torch.Tensor, info: dict) -> None:
        """Draw ceil(K / 2) of each anchor's K negatives from its ``neighbours`` (N, M) row (the
        teacher's nearest negatives, :mod:`hard`), the rest as before."""
        self.hard, self.hard_info = neighbours.to(self.device), info

    def sample(self, anchor_targets: torch.Tensor, anchor_rows: torch.Tensor | None = None) -> torch.Tensor:
        """anchor_targets: (B,) labels or targets of the anchors; anchor_rows: (B,) their bank rows (hard
        negatives need them). Returns (B, K) int64 bank rows on the sampler's device; an anchor is never
        its own negative (its label or target is excluded; with ``instance``, its row)."""
        anchor_targets = anchor_targets.to(self.device)
        if self.instance:
            if anchor_rows is None:
                raise ValueError("instance negatives need the anchors' bank rows")
            picked = self._sample_instances(anchor_rows.to(self.device))
        elif self.regression:
            picked = self._sample_regression(anchor_targets.float())
        else:
            picked = self._sample_classes(anchor_targets.long())
        if self.hard is not None and anchor_rows is not None:
            picked = self._with_hard(picked, anchor_rows.to(self.device))
        return picked

    def _with_hard(self, picked: torch.Tensor, anchor_rows: torch.Tensor) -> torch.Tensor:
        """The first ceil(K / 2) columns replaced by distinct random members of each anchor's hard list
        (kept where the list runs short)."""
        count = math.ceil(self.k / 2)
        lists = self.hard[anchor_rows]  # (B, M), -1 padded
        keys = torch.rand(lists.shape, generator=self.generator, device=self.device).masked_fill(lists < 0, -1.0)
        chosen = keys.topk(min(count, lists.shape[1]), dim=1)  # random distinct valid entries first
        hard = torch.gather(lists, 1, chosen.indices)  # (B, count)
        head = picked[:, : hard.shape[1]]
        picked = picked.clone()
        picked[:, : hard.shape[1]] = torch.where(hard >= 0, hard, head)
        return picked

    def _sample_instances(self, rows: torch.Tensor) -> torch.Tensor:
        """(B, K) uniform rows other than each anchor's own: drawn from N - 1 and shifted past it."""
        if self.n < 2:
            return rows.unsqueeze(1).expand(-1, self.k).clone()
        drawn = torch.rand((rows.shape[0], self.k), generator=self.generator, device=self.device) * (self.n - 1)
        drawn = drawn.long().clamp_max(self.n - 2)
        return drawn + (drawn >= rows.unsqueeze(1)).long()

    def _sample_classes(self, labels: torch.Tensor) -> torch.Tensor:
        classes, width = self.pools.shape
        sizes = self.pool_sizes[labels].unsqueeze(1)  # (B, 1)
        # One shuffle of every pool per step: column j of row c is a random member of class c's pool.
        keys = torch.rand((classes, width), generator=self.generator, device=self.device)
        keys = keys.masked_fill(torch.arange(width, device=self.device) >= self.pool_sizes.unsqueeze(1), 2.0)
        shuffled = torch.gather(self.pools, 1, keys.argsort(dim=1))  # (C, P), valid entries first
        # The r-th anchor of a class in this batch takes window r of K entries (wrapping around the pool).
        onehot = nn.functional.one_hot(labels, classes)  # (B, C)
        rank = (onehot.cumsum(0) * onehot).sum(1) - 1  # (B,)
        offsets = rank.unsqueeze(1) * self.k + torch.arange(self.k, device=self.device)  # (B, K)
        offsets = offsets % sizes.clamp_min(1)
        drawn = (torch.rand(offsets.shape, generator=self.generator, device=self.device) * sizes).long()
        offsets = torch.where(self.with_replacement[labels].unsqueeze(1), drawn, offsets)
        picked = shuffled[labels.unsqueeze(1), offsets]  # (B, K)
        return picked

    def _sample_regression(self, y: torch.Tensor) -> torch.Tensor:
        lo, hi = self._bounds(y)  # (B,), (B,)
        counts = lo + (self.n - hi)  # (B,)
        positions = torch.arange(self.n, device=self.device)  # (N,) sorted positions
        valid = (positions < lo.unsqueeze(1)) | (positions >= hi.unsqueeze(1))  # (B, N)
        keys = torch.rand(valid.shape, generator=self.generator, device=self.device).masked_fill(~valid, -1.0)
        k = min(self.k, self.n)
        distinct = keys.topk(k, dim=1).indices  # (B, k) random valid positions, distinct per anchor
        if k < self.k:  # no anchor has K valid positions then; only the shape matters for torch.where below
            distinct = distinct.repeat(1, math.ceil(self.k / max(k, 1)))[:, : self.k]
        # Anchors with fewer than K valid positions draw with replacement (from all when none is valid).
        u = torch.rand((y.shape[0], self.k), generator=self.generator, device=self.device)
        pool = torch.where(counts > 0, counts, torch.full_like(counts, self.n)).unsqueeze(1)  # (B, 1)
        drawn = (u * pool).long()
        shifted = torch.where(drawn < lo.unsqueeze(1), drawn, drawn - lo.unsqueeze(1) + hi.unsqueeze(1))
        replaced = torch.where((counts > 0).unsqueeze(1), shifted, drawn)
        positions_k = torch.where((counts >= self.k).unsqueeze(1), distinct, replaced)
        return self.order[positions_k]  # (B, K)

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def load_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
