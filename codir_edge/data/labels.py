"""Turn label strings into targets, against the task's label set, and catch labels outside it."""

from __future__ import annotations

import math

from codir_edge.core.errors import InputError
from codir_edge.data.examples import Examples
from codir_edge.data.split import RawSplit
from codir_edge.data.tasks import TaskSpec


def _numeric_key(label: str) -> tuple[int, float | str]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


def label_set(task: TaskSpec, train: RawSplit | None = None, given: list[str] | None = None) -> list[str]:
    """The ordered label list: the task's own, ``--labels`` for custom data, else sorted from train."""
    if task.is_regression:
        return []
    if task.labels:
        return list(task.labels)
    if given:
        return list(given)
    if train is None or train.labels is None:
        raise InputError(f"task '{task.name}' needs its label set: pass --labels with the labels in order")
    return sorted(set(train.labels), key=_numeric_key)


def to_examples(raw: RawSplit, task: TaskSpec, labels: list[str]) -> Examples:
    """Map labels to indices (or floats for regression), naming the first bad row if any."""
    if raw.labels is None:
        raise InputError(f"{raw.source} has no label column: pass --label-column")
    targets: list = []
    if task.is_regression:
        for line, value in zip(raw.lines, raw.labels, strict=True):
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise InputError(f"{raw.source} line {line}: target '{value}' is not a finite number: fix the row")
            targets.append(number)
    else:
        index = {label: i for i, label in enumerate(labels)}
        for label, name in zip(task.labels, task.label_names, strict=False):  # "positive" as well as "1"
            if label in index:
                index.setdefault(name, index[label])
        for line, value in zip(raw.lines, raw.labels, strict=True):
            if value not in index:
                shown = ", ".join(labels)
                raise InputError(
                    f"{raw.source} line {line}: label '{value}' is not one of task '{task.name}''s labels "
                    f"({shown}): fix the data or choose the right --task"
                )
            targets.append(index[value])
    return Examples(raw.texts, raw.text_pairs, targets, raw.source)
