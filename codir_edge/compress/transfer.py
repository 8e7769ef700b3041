"""CoDIR-Fine's transfer set: the labelled rows, then rows the teacher alone labels, in one bank.

Hinton et al. distil on a transfer set, TinyBERT on an augmented one, CoDIR-Pre's contrastive term on
unlabelled text: a good teacher passes on what it knows through its predictions on any in-domain
text, while a few thousand labels alone leave a student short. Here the bank gets one row per
labelled example first (rows ``0 .. labeled - 1``), then one per unlabelled text, then one per
augmented sentence; one teacher pass fills it, so an unlabelled row costs a step what a labelled one
does.

- CE reads labelled rows only (``Distiller`` is told where they end); KD and the contrastive term
  read every row.
- Label-aware negatives need a label: a row without one takes the teacher's argmax (for regression,
  the teacher's output), written into the bank's targets once the bank exists.
- An epoch is every labelled row ``labeled_repeat`` times plus ``unlabeled_per_epoch`` rows without a
  label (all by default). Those rotate through one seeded permutation over epochs, so a short epoch
  still reaches every row in time, and the order depends on the seed and the epoch only: exact resume
  and torchrun stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codir_edge.core.errors import InputError
from codir_edge.data.encode import Encoded, train_batches


@dataclass(frozen=True)
class TransferSet:
    """How many rows of each kind the bank holds, in this order, and what was made or dropped."""

    labeled: int
    unlabeled: int = 0
    augmented: int = 0
    unlabeled_counts: dict | None = None  # read, kept, dropped_* (data/unlabeled.py)
    augmented_counts: dict | None = None  # per_example, made, kept, dropped_*, by_edit (compress/augment.py)

    @property
    def teacher_labeled(self) -> int:
        return self.unlabeled + self.augmented

    def report(self, config) -> dict | None:
        """The report's ``transfer_set`` entry, or None for a run on labels only."""
        if not self.teacher_labeled:
            return None
        return {
            "labeled_rows": self.labeled,
            "unlabeled_rows": self.unlabeled,
            "augmented_rows": self.augmented,
            "unlabeled": self.unlabeled_counts,
            "augmented": self.augmented_counts,
            "rows_per_epoch": self.epoch_rows(config),
            "labeled_repeat": config.labeled_repeat,
            "negatives_of_unlabeled_rows": "label-aware on the teacher's argmax (its output for regression)",
        }

    def epoch_rows(self, config) -> int:
        drawn = self.teacher_labeled
        if config.unlabeled_per_epoch is not None:
            drawn = min(config.unlabeled_per_epoch, drawn)
        return self.labeled * config.labeled_repeat + drawn


def concat_encoded(parts: list[Encoded]) -> Encoded:
    """One Encoded holding ``parts`` in order; targets take the first part's dtype."""
    first = parts[0]
    types = None
    if first.token_type_ids is not None:
        types = [t for part in parts for t in part.token_type_ids]
    targets = np.concatenate([part.targets.astype(first.targets.dtype) for part in parts])
    return Encoded([ids for part in parts for ids in part.input_ids], types, targets, first.pad_id)


def epoch_order(lengths: np.ndarray, transfer: TransferSet, config, epoch: int) -> list[np.ndarray]:
    """The epoch's batches of bank rows: labelled rows repeated, the epoch's share of the others,
    shuffled and grouped by length together."""
    rng = np.random.default_rng([config.seed, epoch])
    labeled = np.tile(np.arange(transfer.labeled, dtype=np.int64), config.labeled_repeat)
    others = _rotating_rows(transfer, config, epoch)
    rows = np.concatenate([labeled, others])
    picks = train_batches(lengths[rows], config.batch_size, rng, config.group_by_length)
    return [rows[batch] for batch in picks]


def _rotating_rows(transfer: TransferSet, config, epoch: int) -> np.ndarray:
    n = transfer.teacher_labeled
    if not n:
        return np.zeros(0, dtype=np.int64)
    per_epoch = n if config.unlabeled_per_epoch is None else min(config.unlabeled_per_epoch, n)
    cycle = np.random.default_rng([config.seed, 1 << 20]).permutation(n)  # fixed over epochs
    start = (epoch - 1) * per_epoch
    picked = cycle[np.arange(start, start + per_epoch) % n]
    return transfer.labeled + picked.astype(np.int64)


def teacher_targets(targets, logits, labeled: int, regression: bool):
    """The bank's targets with every row from ``labeled`` on set to the teacher's prediction.

    targets: (N,) tensor; logits: (N, C) tensor or FileTable."""
    import torch

    n = len(targets)
    if labeled >= n:
        return targets
    rows = torch.arange(labeled, n)
    predicted = logits[rows].float()  # (N - labeled, C)
    targets = targets.clone()
    targets[labeled:] = predicted.squeeze(-1).to(targets.dtype) if regression else predicted.argmax(-1)
    return targets


def build_transfer_set(train, dev, teacher, tokenizer, task, data, config) -> tuple[TransferSet, list]:
    """(what the bank will hold, the Examples of its unlabelled part then its augmented part).

    train, dev: the labelled Examples of this run; data: the DataSpec whose columns a .jsonl or a
    data folder of unlabelled text is read with."""
    from codir_edge.data.examples import Examples
    from codir_edge.data.unlabeled import example_keys, keep_new, read_unlabeled

    labeled_keys, dev_keys = example_keys(train), example_keys(dev)
    parts: list[Examples] = []
    unlabeled_counts = augmented_counts = None
    unlabeled = augmented = 0
    if config.unlabeled:
        texts, pairs = read_unlabeled(config.unlabeled, task, data.text_column, data.text_pair_column)
        kept = keep_new(texts, pairs, labeled_keys, dev_keys, str(config.unlabeled))
        if not len(kept.examples):
            raise InputError(
                f"every text in --unlabeled {config.unlabeled} is a labelled or dev example ({kept.read} read): "
                "give text the labels do not cover"
            )
        parts.append(kept.examples)
        unlabeled, unlabeled_counts = len(kept.examples), kept.counts()
        labeled_keys |= example_keys(kept.examples)  # augmented copies must not repeat them either
    if config.augment:
        made = _augmented(train, teacher, tokenizer, config)
        kept = keep_new(made.texts, made.text_pairs, labeled_keys, dev_keys, "augmented")
        parts.append(kept.examples)
        augmented = len(kept.examples)
        augmented_counts = {"per_example": config.augment, "made": made.made, "kept": augmented,
                            "dropped_repeats": kept.repeats + kept.labeled, "dropped_dev": kept.dev,
                            "by_edit": made.by_edit}  # fmt: skip
    transfer = TransferSet(len(train), unlabeled, augmented, unlabeled_counts, augmented_counts)
    return transfer, [p for p in parts if len(p)]


def _augmented(train, teacher, tokenizer, config):
    from codir_edge.compress.augment import augment, word_neighbours

    embeddings = teacher.get_input_embeddings().weight.detach().float().cpu().numpy()
    pairs = train.text_pairs or []
    words = {w for text in [*train.texts, *pairs] for w in text.split()}
    neighbours = word_neighbours(tokenizer, embeddings, words)
    return augment(train, config.augment, config.seed, neighbours)
