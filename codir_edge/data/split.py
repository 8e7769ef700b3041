"""A split as every reader returns it, and the columns it is read from: shared by the file readers
(``readers.py``) and the dataset readers (``hub.py``), so neither imports the other for them."""

from __future__ import annotations

from dataclasses import dataclass

from codir_edge.data.tasks import Column, TaskSpec


@dataclass(frozen=True)
class Columns:
    """Which columns hold the text, the optional second text and the label."""

    text: Column
    text_pair: Column | None
    label: Column | None

    @classmethod
    def for_task(
        cls, task: TaskSpec, text: str | None = None, text_pair: str | None = None, label: str | None = None
    ) -> Columns:
        """The task's columns, each overridable; digits name a column by position (headerless files)."""

        def pick(given: str | None, default: Column | None) -> Column | None:
            if given is None:
                return default
            return int(given) if given.strip().isdigit() else given

        return cls(pick(text, task.text_column), pick(text_pair, task.text_pair_column), pick(label, task.label_column))


@dataclass(frozen=True)
class RawSplit:
    """A split as read: labels still strings, ``lines`` the 1-based file line of each row for errors."""

    texts: list[str]
    text_pairs: list[str] | None
    labels: list[str] | None
    lines: list[int]
    source: str
