"""Data layer: task registry, readers, label mapping, metrics and tokenization.

Importing this package pulls in numpy only; ``load_task_data`` is the one call most stages need.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.data.examples import Examples
from codir_edge.data.labels import label_set, to_examples
from codir_edge.data.readers import read_split
from codir_edge.data.split import Columns
from codir_edge.data.tasks import TASKS, TaskSpec, get_task

__all__ = ["TASKS", "DataSpec", "Examples", "TaskSpec", "get_task", "load_split", "load_train_dev"]


@dataclass(frozen=True)
class DataSpec:
    """Where the data is and how to read it: the ``--data`` and column options of every command."""

    data: str
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    labels: tuple[str, ...] | None = None

    def columns(self, task: TaskSpec) -> Columns:
        return Columns.for_task(task, self.text_column, self.text_pair_column, self.label_column)


def load_split(task: TaskSpec, spec: DataSpec, split: str, labels: list[str]) -> Examples:
    """One split with targets mapped onto ``labels`` (a model's, or the task's)."""
    return to_examples(read_split(spec.data, task, split, spec.columns(task)), task, labels)


def load_train_dev(
    task: TaskSpec, spec: DataSpec, eval_spec: DataSpec | None = None
) -> tuple[Examples, Examples, list[str]]:
    """Train and dev splits plus the label list, which custom classification data takes from train."""
    if eval_spec is None and Path(spec.data).is_file():
        raise InputError(
            f"--data {spec.data} is a single file, so there is no dev split: pass --eval-data with the dev file "
            "or a folder holding train and dev files"
        )
    train_raw = read_split(spec.data, task, "train", spec.columns(task))
    labels = label_set(task, train_raw, list(spec.labels) if spec.labels else None)
    train = to_examples(train_raw, task, labels)
    dev_spec = eval_spec or spec
    dev = load_split(task, dev_spec, "dev", labels)
    if (train.text_pairs is None) != (dev.text_pairs is None):
        raise InputError(
            f"{train.source} and {dev.source} disagree on text pairs: give both splits the same --text-pair-column"
        )
    return train, dev, labels
