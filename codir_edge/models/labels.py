"""The label order of a trained classifier, read from its config.json and checked against a task.

Every stage that takes a trained classifier (compress, export, evaluate, profile) asks this one
question before reading data: a model is only scored against the label order it was trained with.
"""

from __future__ import annotations

from pathlib import Path

from codir_edge.data.tasks import TaskSpec
from codir_edge.errors import InputError


def model_labels(config: dict, task: TaskSpec, model_dir: Path) -> list[str]:
    """The label order of a trained classifier, checked against the task."""
    id2label = config.get("id2label") or {}
    labels = [str(id2label[k]) for k in sorted(id2label, key=int)] if id2label else []
    if task.is_regression:
        if int(config.get("num_labels", len(labels) or 1)) != 1 and len(labels) != 1:
            raise InputError(f"{model_dir} is a {len(labels)}-way classifier, but task '{task.name}' is a regression")
        return []
    generic = all(label == f"LABEL_{i}" for i, label in enumerate(labels))
    if task.labels:
        known = {*task.labels, *task.label_names}
        if len(labels) != len(task.labels) or (not generic and not set(labels) <= known):
            raise InputError(
                f"{model_dir} predicts labels ({', '.join(labels)}), not task '{task.name}''s "
                f"({', '.join(task.labels)}): evaluate it on the task it was trained for"
            )
        return list(task.labels)
    if generic or not labels:
        raise InputError(f"{model_dir} has no label names in config.json: fine-tune it with codir-edge finetune")
    return labels
