"""The label order of a trained classifier, read from its config.json and checked against a task.

Every stage that takes a trained classifier (compress, export, evaluate, profile) asks this one
question before reading data: a model is only scored against the label order it was trained with.
Most checkpoints carry no names of their own: transformers writes no ``id2label`` for its default
2-label map and ``LABEL_0..N-1`` for others. Those are taken as the task's labels in order, and said.
"""

from __future__ import annotations

from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.core.notes import note
from codir_edge.data.tasks import TaskSpec


def _by_name(labels: list[str], task: TaskSpec) -> list[str | None]:
    """Each model output as the task label it names, in the model's order, matched without case
    ("NEGATIVE" is SST-2's "0", roberta-large-mnli's "CONTRADICTION, NEUTRAL, ENTAILMENT" are MNLI's
    labels in another order than the task's); None where a name matches nothing."""
    names = {label.lower(): label for label in task.labels}
    names |= {name.lower(): label for label, name in zip(task.labels, task.label_names, strict=False)}
    return [names.get(label.lower()) for label in labels]


def label_count(config: dict) -> int:
    """How many outputs a classifier's config.json declares: its id2label, else num_labels, else 2
    (transformers writes neither for its default 2-label map)."""
    return len(config.get("id2label") or {}) or int(config.get("num_labels", 2))


def model_labels(config: dict, task: TaskSpec, model_dir: Path) -> list[str]:
    """The label order of a trained classifier, checked against the task."""
    id2label = config.get("id2label") or {}
    labels = [str(id2label[k]) for k in sorted(id2label, key=int)] if id2label else []
    count = label_count(config)
    if task.is_regression:
        if count != 1:
            raise InputError(f"{model_dir} is a {count}-way classifier, but task '{task.name}' is a regression")
        return []
    generic = all(label == f"LABEL_{i}" for i, label in enumerate(labels))
    if task.labels:
        mapped = [] if generic else _by_name(labels, task)
        if count != len(task.labels) or None in mapped or len(set(mapped)) != len(mapped):
            shown = ", ".join(labels) if labels and not generic else f"{count} unnamed labels"
            raise InputError(
                f"{model_dir} predicts {shown}, not task '{task.name}''s "
                f"({', '.join(task.labels)}): evaluate it on the task it was trained for"
            )
        if generic:
            note(
                f"{model_dir} names no labels (transformers' default map): reading its outputs 0..{count - 1} "
                f"as task '{task.name}''s labels {', '.join(task.labels)} in that order"
            )
            return list(task.labels)
        return mapped
    if generic:
        raise InputError(
            f"{model_dir} has no label names in config.json and task '{task.name}' gives none: "
            "set id2label in config.json, or fine-tune it with codir-edge finetune"
        )
    return labels
