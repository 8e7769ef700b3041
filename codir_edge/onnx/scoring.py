"""The task metric of an ONNX model: what ``evaluate`` reports for a bundle or an ONNX file and what
``profile --data`` reports for its targets, computed one way (``models/scoring.py`` is the PyTorch
twin).

Labels come from ``config.json`` beside the model (the order it was trained with), else the task's
own order; tokens from ``tokenizer.json`` beside it, as the bundle ships them. Needs only
onnxruntime, numpy and tokenizers, so it runs where the bundle is deployed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from codir_edge.data.encode import Encoded
from codir_edge.data.examples import Examples
from codir_edge.data.tasks import TaskSpec

# One text per call, as an app runs a classifier: dynamic INT8 quantizes each batch with one
# activation range, so padding and batch mates change predictions. evaluate and profile score ONNX
# models at this batch size by default, so that both give one accuracy for one file and data set.
APP_BATCH = 1


@dataclass(frozen=True)
class OnnxScore:
    metrics: dict[str, float]
    examples: int
    seconds: float  # inference only, tokenizing excluded


def model_label_order(folder: Path, task: TaskSpec) -> list[str]:
    """The label order of the classifier whose files lie in ``folder``."""
    from codir_edge.models.checkpoint import read_model_json
    from codir_edge.models.labels import model_labels

    config = read_model_json(folder)
    return model_labels(config, task, folder) if config else list(task.labels)


def score_onnx(
    path: Path, task: TaskSpec, examples: Examples, encoded: Encoded, threads: int, batch_size: int = APP_BATCH
) -> OnnxScore:
    """``examples``, already tokenized as ``encoded`` (once for every graph that shares a tokenizer),
    scored by the graph at ``path`` (.onnx or .ort)."""
    from codir_edge.data.metrics import score
    from codir_edge.onnx.predict import onnx_logits

    started = time.perf_counter()
    logits = onnx_logits(path, encoded, threads=threads, batch_size=batch_size)
    seconds = time.perf_counter() - started
    return OnnxScore(score(task, logits, examples.targets), len(examples), seconds)
