"""The task metric of a trained model folder on a split.

Labels come from the model (its ``config.json``), not from the data: a model is only scored
against the label order it was trained with, and a task whose labels differ is refused.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from codir_edge.data import DataSpec, get_task, load_split
from codir_edge.data.tasks import TaskSpec
from codir_edge.errors import InputError
from codir_edge.extras import require_extra
from codir_edge.models.checkpoint import check_max_length, read_model_config


@dataclass(frozen=True)
class EvalReport:
    model: str
    task: str
    split: str
    metrics: dict[str, float]
    examples: int
    wall_time_s: float
    examples_per_s: float

    def to_dict(self) -> dict:
        return asdict(self)


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


def run_evaluate(
    model: Path,
    task_name: str,
    data: DataSpec,
    split: str = "dev",
    max_length: int = 128,
    batch_size: int = 128,
    max_samples: int | None = None,
    device: str = "auto",
    seed: int = 42,
) -> EvalReport:
    task = get_task(task_name)
    model = Path(model)
    if batch_size < 1:
        raise InputError(f"--batch-size must be positive, got {batch_size}: pass a value above 0")
    config = read_model_config(model, option="MODEL")
    check_max_length(config, max_length, model)
    labels = model_labels(config, task, model)
    examples = load_split(task, data, split, labels).subsample(max_samples, seed)

    require_extra("train", "evaluating a PyTorch model folder")
    from codir_edge.data.encode import encode
    from codir_edge.data.metrics import score
    from codir_edge.models.loading import load_tokenizer, load_trained_classifier
    from codir_edge.models.predict import predict_logits
    from codir_edge.models.runtime import resolve_runtime

    runtime = resolve_runtime(device, "auto")
    tokenizer = load_tokenizer(model)
    encoded = encode(tokenizer, examples, max_length)
    classifier = load_trained_classifier(model).to(runtime.device)
    start = time.perf_counter()
    outputs = predict_logits(classifier, encoded, runtime, batch_size)
    elapsed = time.perf_counter() - start
    return EvalReport(
        str(model),
        task.name,
        split,
        score(task, outputs, examples.targets),
        len(examples),
        elapsed,
        len(examples) / elapsed if elapsed else 0.0,
    )
