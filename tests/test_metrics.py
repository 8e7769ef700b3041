"""Our numpy metrics against scikit-learn and scipy, on arbitrary inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codir_edge.data import get_task
from codir_edge.data.metrics import f1_binary, macro_f1, matthews_correlation, pearson, score, spearman

sklearn_metrics = pytest.importorskip("sklearn.metrics")
scipy_stats = pytest.importorskip("scipy.stats")

labels = st.lists(st.integers(0, 2), min_size=2, max_size=60)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_classification_metrics_match_sklearn(data):
    gold = np.array(data.draw(labels))
    pred = np.array(data.draw(st.lists(st.integers(0, 2), min_size=len(gold), max_size=len(gold))))
    assert matthews_correlation(pred, gold) == pytest.approx(sklearn_metrics.matthews_corrcoef(gold, pred), abs=1e-9)
    assert f1_binary(pred, gold) == pytest.approx(
        sklearn_metrics.f1_score(gold == 1, pred == 1, zero_division=0.0), abs=1e-9
    )
    assert macro_f1(pred, gold) == pytest.approx(
        sklearn_metrics.f1_score(gold, pred, average="macro", zero_division=0.0), abs=1e-9
    )


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_correlations_match_scipy(data):
    n = data.draw(st.integers(3, 40))
    values = st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5, 4.0, 5.0]), min_size=n, max_size=n)
    gold, pred = np.array(data.draw(values)), np.array(data.draw(values))
    if np.std(gold) == 0 or np.std(pred) == 0:
        assert pearson(pred, gold) == 0.0
        return
    assert pearson(pred, gold) == pytest.approx(scipy_stats.pearsonr(pred, gold)[0], abs=1e-9)
    assert spearman(pred, gold) == pytest.approx(scipy_stats.spearmanr(pred, gold)[0], abs=1e-9)


def test_score_uses_task_metrics():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    assert score(get_task("mrpc"), logits, [0, 1, 1, 1]) == {"f1": pytest.approx(0.8), "accuracy": 0.75}
    assert set(score(get_task("stsb"), np.array([[1.0], [2.0], [3.0]]), [1.0, 2.5, 2.9])) == {"pearson", "spearman"}
