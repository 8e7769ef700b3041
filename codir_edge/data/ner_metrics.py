"""Entity-level scores for ``--task ner``, as seqeval computes them in strict IOB2 mode.

An entity is a ``B-X`` followed by any run of ``I-X``; a predicted ``I-X`` that no ``B-X`` opened is
no entity at all (the lenient conlleval reading would start one there). An entity counts as found
only when its type, first and last word all match a gold one. Precision, recall and F1 are micro
over every entity, and per type; token accuracy is over every word. tests/test_ner.py holds these
equal to seqeval's ``classification_report(mode="strict", scheme=IOB2)`` on random tag sequences.
"""

from __future__ import annotations

from collections import Counter


def entities(tags: list[str]) -> set[tuple[str, int, int]]:
    """(type, first word, last word) of every strict IOB2 entity in one sentence's tags."""
    found: set[tuple[str, int, int]] = set()
    kind, start = None, -1
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, name = tag.partition("-")
        if kind is not None and not (prefix == "I" and name == kind):
            found.add((kind, start, i - 1))
            kind = None
        if prefix == "B":
            kind, start = name, i
    return found


def _prf(tp: int, predicted: int, gold: int) -> dict[str, float]:
    precision = tp / predicted if predicted else 0.0
    recall = tp / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def ner_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """f1, precision, recall (micro), token_accuracy, and f1_/precision_/recall_<TYPE> per entity type."""
    tp, n_pred, n_gold = Counter(), Counter(), Counter()
    right = total = 0
    for gold_tags, pred_tags in zip(gold, predicted, strict=True):
        g, p = entities(gold_tags), entities(pred_tags)
        for kind, *_ in g:
            n_gold[kind] += 1
        for kind, *_ in p:
            n_pred[kind] += 1
        for kind, *_ in g & p:
            tp[kind] += 1
        right += sum(a == b for a, b in zip(gold_tags, pred_tags, strict=True))
        total += len(gold_tags)
    scores = _prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    scores["token_accuracy"] = right / total if total else 0.0
    for kind in sorted(n_gold | n_pred):
        for name, value in _prf(tp[kind], n_pred[kind], n_gold[kind]).items():
            scores[f"{name}_{kind}"] = value
    return scores


def headline(scores: dict[str, float]) -> dict[str, float]:
    """The scores a console line shows: all but the per-type precision and recall (reports keep those)."""
    return {name: value for name, value in scores.items() if not name.startswith(("precision_", "recall_"))}
