"""``--task embedding``'s data and scores, the ones users compare embedding models by, from the data's
layout; ``evaluate``, ``export`` (its variants on dev) and ``profile`` (``--data``) all score with these.

- STS (pairs with a similarity score: GLUE STS-B's folder, or any file with ``sentence1``,
  ``sentence2`` and ``score`` columns): Spearman and Pearson correlation of the pair's cosine with
  the score, as the MTEB and sentence-transformers STS evaluators report them.
- Labelled texts (a folder with a train file and the scored split, ``text,label``: BANKING77's
  layout): accuracy of a logistic regression fit on the train split's embeddings, and of the nearest
  train text by cosine (1-NN), both scored on the split; the embedding is the only feature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codir_edge.core.errors import InputError
from codir_edge.data import DataSpec, get_task
from codir_edge.data.labels import label_set, to_examples
from codir_edge.data.readers import read_split
from codir_edge.data.tasks import TASKS

EMBEDDING_TASK = "embedding"  # the --task every command reads as "a sentence-embedding model"


def is_embedding(task: str | None) -> bool:
    """Whether ``--task`` names the embedding task (forgivingly, as ``get_task`` reads names)."""
    return (task or "").strip().lower() == EMBEDDING_TASK


@dataclass(frozen=True)
class EmbeddingData:
    """What one data set asks of the model: its texts, and how their embeddings become metrics."""

    kind: str  # sts | classification
    texts: list[str]  # every text to embed, once each
    text_pairs = None  # read like a split's texts (profile's real inputs), one text per row
    score: Callable[[np.ndarray], dict[str, float]]  # embeddings of ``texts`` -> metrics
    examples: int  # pairs (STS) or scored texts (classification)


def read_embedding_data(spec: DataSpec, split: str, max_samples: int | None, seed: int) -> EmbeddingData:
    """The data's layout decides: STS pairs when the split has two sentences and a score, labelled texts
    (with a train split to fit on) otherwise; one error naming both readings when it is neither."""
    sts_task = get_task("stsb")
    try:
        raw = read_split(spec.data, sts_task, split, spec.columns(sts_task))
    except InputError as sts_error:
        try:
            return _classification(spec, split, max_samples, seed)
        except InputError as cls_error:
            if _looks_like_pairs(spec):
                raise sts_error from None
            raise InputError(f"--data {spec.data} is neither STS pairs ({sts_error}) nor labelled texts "
                             f"({cls_error})") from None  # fmt: skip
    examples = to_examples(raw, sts_task, []).subsample(max_samples, seed)  # a bad score: one line, file and row
    first, second = examples.texts, examples.text_pairs
    texts = list(dict.fromkeys(first + second))
    where = {text: i for i, text in enumerate(texts)}
    a, b = np.array([where[t] for t in first]), np.array([where[t] for t in second])
    gold = np.asarray(examples.targets, dtype=np.float64)
    return EmbeddingData("sts", texts, lambda emb: sts_scores(emb[a], emb[b], gold), len(examples))


def _looks_like_pairs(spec: DataSpec) -> bool:
    """A file or folder whose split has sentence1/sentence2 columns is meant as STS (its score is the problem)."""
    path = Path(spec.data)
    files = [path] if path.is_file() else sorted(path.glob("*.[tc]sv")) + sorted(path.glob("*/*.[tc]sv"))
    for file in files[:4]:
        with open(file, encoding="utf-8", errors="replace") as handle:
            header = handle.readline()
        if "sentence1" in header and "sentence2" in header:
            return True
    return False


def _classification(spec: DataSpec, split: str, max_samples: int | None, seed: int) -> EmbeddingData:
    task = TASKS["classification"]
    if split == "train":
        raise InputError("--split train cannot score classification by embeddings (the classifiers fit on train): "
                         "use --split dev or test")  # fmt: skip
    train_raw = read_split(spec.data, task, "train", spec.columns(task))
    labels = label_set(task, train_raw, list(spec.labels) if spec.labels else None)
    train = to_examples(train_raw, task, labels)
    scored = to_examples(read_split(spec.data, task, split, spec.columns(task)), task, labels)
    scored = scored.subsample(max_samples, seed)
    n = len(train)
    y_train = np.asarray(train.targets, dtype=np.int64)
    y_test = np.asarray(scored.targets, dtype=np.int64)

    def score(emb: np.ndarray) -> dict[str, float]:
        return classification_scores(emb[:n], y_train, emb[n:], y_test, seed)

    return EmbeddingData("classification", train.texts + scored.texts, score, len(scored))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def sts_scores(first: np.ndarray, second: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Spearman and Pearson of the pairs' cosine similarity with the gold scores."""
    from codir_edge.data.metrics import pearson, spearman

    cosine = (_unit(first) * _unit(second)).sum(axis=1)
    return {"spearman": spearman(cosine, gold), "pearson": pearson(cosine, gold)}


def classification_scores(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray,
                          seed: int) -> dict[str, float]:  # fmt: skip
    """Logistic regression on the embeddings (sklearn's lbfgs, default C, up to 1,000 iterations) and
    1-nearest-neighbour by cosine, each scored by accuracy."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise InputError("scoring labelled texts by embeddings needs scikit-learn: pip install scikit-learn, "
                         "or give STS pairs") from None  # fmt: skip

    classifier = LogisticRegression(max_iter=1000, random_state=seed).fit(train, y_train)
    nearest = (_unit(test) @ _unit(train).T).argmax(axis=1)
    return {
        "logistic_accuracy": float((classifier.predict(test) == y_test).mean()),
        "knn1_accuracy": float((y_train[nearest] == y_test).mean()),
    }
