"""Task metrics in plain numpy, so the on-device path (onnxruntime + numpy only) can score too.

Definitions follow GLUE: F1 of the positive class (index 1) for MRPC and QQP, Matthews correlation
for CoLA, Pearson and Spearman for STS-B. Scores are reported in percent-free fractions.
"""

from __future__ import annotations

import numpy as np

from codir_edge.data.tasks import TaskSpec


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    return float(np.mean(pred == gold)) if len(gold) else 0.0


def f1_binary(pred: np.ndarray, gold: np.ndarray, positive: int = 1) -> float:
    tp = float(np.sum((pred == positive) & (gold == positive)))
    fp = float(np.sum((pred == positive) & (gold != positive)))
    fn = float(np.sum((pred != positive) & (gold == positive)))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def macro_f1(pred: np.ndarray, gold: np.ndarray) -> float:
    classes = np.union1d(pred, gold)
    return float(np.mean([f1_binary(pred, gold, int(c)) for c in classes])) if len(classes) else 0.0


def matthews_correlation(pred: np.ndarray, gold: np.ndarray) -> float:
    """Multi-class MCC (Gorodkin's R_K), equal to the binary formula for two classes."""
    classes = np.union1d(pred, gold)
    confusion = np.array([[np.sum((gold == a) & (pred == b)) for b in classes] for a in classes], dtype=np.float64)
    n = confusion.sum()
    correct = np.trace(confusion)
    pred_totals, gold_totals = confusion.sum(axis=0), confusion.sum(axis=1)
    numerator = correct * n - float(pred_totals @ gold_totals)
    denominator = np.sqrt((n**2 - pred_totals @ pred_totals) * (n**2 - gold_totals @ gold_totals))
    return float(numerator / denominator) if denominator else 0.0


def pearson(pred: np.ndarray, gold: np.ndarray) -> float:
    if len(gold) < 2 or np.std(pred) == 0 or np.std(gold) == 0:
        return 0.0
    return float(np.corrcoef(pred.astype(np.float64), gold.astype(np.float64))[0, 1])


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end - 1) / 2.0  # ties share their mean rank
            start = end
    return ranks


def spearman(pred: np.ndarray, gold: np.ndarray) -> float:
    return pearson(_average_ranks(np.asarray(pred)), _average_ranks(np.asarray(gold)))


METRICS = {
    "accuracy": accuracy,
    "f1": f1_binary,
    "macro_f1": macro_f1,
    "matthews_correlation": matthews_correlation,
    "pearson": pearson,
    "spearman": spearman,
}


def score(task: TaskSpec, outputs: np.ndarray, targets: list) -> dict[str, float]:
    """Every metric of ``task`` from raw model outputs: logits (N, C), or scores (N,) / (N, 1) for regression."""
    outputs = np.asarray(outputs)
    gold = np.asarray(targets)
    if task.is_regression:
        pred = outputs.reshape(len(gold), -1)[:, 0]
    else:
        pred = outputs.argmax(axis=-1)
        gold = gold.astype(np.int64)
    return {name: METRICS[name](pred, gold) for name in task.metrics}
