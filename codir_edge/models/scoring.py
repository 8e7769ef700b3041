"""The task metric of a trained PyTorch model folder on a split: what ``evaluate`` reports and what
``profile`` compares a teacher folder with its exported student on.

Labels come from the model (its ``config.json``), not from the data: a model is only scored
against the label order it was trained with, and a task whose labels differ is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.core.extras import require_extra
from codir_edge.data import DataSpec, get_task, load_split
from codir_edge.models.checkpoint import check_max_length, read_model_config
from codir_edge.models.families import family_of
from codir_edge.models.labels import model_labels


@dataclass(frozen=True)
class FolderScore:
    task: str
    metrics: dict[str, float]
    examples: int
    seconds: float  # the model's inference only


def score_model_folder(
    model: Path,
    task_name: str,
    data: DataSpec,
    split: str = "dev",
    max_length: int = 128,
    batch_size: int = 128,
    max_samples: int | None = None,
    device: str = "auto",
    seed: int = 42,
) -> FolderScore:
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
    encoded = encode(tokenizer, examples, max_length, family_of(config).takes_segments(config))
    classifier = load_trained_classifier(model).to(runtime.device)
    start = time.perf_counter()
    outputs = predict_logits(classifier, encoded, runtime, batch_size)
    elapsed = time.perf_counter() - start
    return FolderScore(task.name, score(task, outputs, examples.targets), len(examples), elapsed)
