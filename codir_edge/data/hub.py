"""Hugging Face datasets, from the hub or from a local ``save_to_disk`` copy.

The ``datasets`` package is optional; nothing here is imported unless such a source is named.
Class-label features are turned into their names so that label checks work the same as for files.
"""

from __future__ import annotations

from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.core.extras import require_extra
from codir_edge.data.split import Columns, RawSplit
from codir_edge.data.tasks import TaskSpec

_HUB_SPLITS = {"dev": ("validation", "dev", "validation_matched"), "train": ("train",), "test": ("test",)}


def _glue_columns(task: TaskSpec, columns: Columns) -> Columns:
    """Hub copies of GLUE use their own column names: map the GLUE file defaults onto them."""
    hub_names = {
        "sst2": ("sentence", None),
        "cola": ("sentence", None),
        "mrpc": ("sentence1", "sentence2"),
        "stsb": ("sentence1", "sentence2"),
        "qqp": ("question1", "question2"),
        "mnli": ("premise", "hypothesis"),
    }
    if task.name not in hub_names or (columns.text, columns.text_pair) != (task.text_column, task.text_pair_column):
        return columns
    text, pair = hub_names[task.name]
    return Columns(text, pair, "label")


def _to_raw(dataset, source: str, task: TaskSpec, columns: Columns) -> RawSplit:
    columns = _glue_columns(task, columns)
    names = list(dataset.column_names)
    for role, col in (("text", columns.text), ("text pair", columns.text_pair), ("label", columns.label)):
        if col is not None and str(col) not in names:
            raise InputError(
                f"{source} has no column '{col}' for the {role} (columns: {', '.join(names)}): "
                f"pass --{role.replace(' ', '-')}-column with one of them"
            )
    texts = [str(t) for t in dataset[str(columns.text)]]
    pairs = [str(t) for t in dataset[str(columns.text_pair)]] if columns.text_pair is not None else None
    labels = None
    if columns.label is not None:
        feature = dataset.features[str(columns.label)]
        values = dataset[str(columns.label)]
        class_names = getattr(feature, "names", None)
        if class_names:
            labels = [class_names[v] if 0 <= v < len(class_names) else str(v) for v in values]
        else:
            labels = [str(v) for v in values]
    return RawSplit(texts, pairs, labels, list(range(1, len(texts) + 1)), source)


def _pick_split(splits, split: str, source: str):
    for name in _HUB_SPLITS.get(split, (split,)):
        if name in splits:
            return splits[name]
    raise InputError(f"{source} has no {split} split (it has {', '.join(splits)}): pick another --split or data")


def read_saved_split(path: Path, task: TaskSpec, split: str, columns: Columns) -> RawSplit:
    """A dataset written by ``DatasetDict.save_to_disk`` (or ``Dataset.save_to_disk`` for one split)."""
    require_extra("datasets", "reading a saved Hugging Face dataset")
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises several unrelated types for a damaged folder
        raise InputError(f"{path} is not a readable saved dataset ({exc}): re-create it with save_to_disk") from exc
    if isinstance(loaded, datasets.DatasetDict):
        loaded = _pick_split(loaded, split, str(path))
    return _to_raw(loaded, f"{path}[{split}]", task, columns)


def read_hub_split(spec: str, task: TaskSpec, split: str, columns: Columns) -> RawSplit:
    """``NAME[:CONFIG]`` from the hub; offline, fail at once with the way around it."""
    require_extra("datasets", f"the hub dataset '{spec}'")
    import datasets

    name, _, config = spec.partition(":")
    source = f"hf:{spec}"
    try:
        loaded = datasets.load_dataset(name, config or None)
    except (ConnectionError, OSError, ValueError, FileNotFoundError) as exc:
        raise InputError(
            f"cannot load dataset '{spec}' from the Hugging Face hub ({type(exc).__name__}; offline?): on a "
            "connected machine run datasets.load_dataset(...).save_to_disk(DIR), then pass --data DIR"
        ) from exc
    return _to_raw(_pick_split(loaded, split, source), f"{source}[{split}]", task, columns)
