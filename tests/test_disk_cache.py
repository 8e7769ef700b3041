"""Slow results kept on disk between runs (core/disk_cache.py): the tokenizer scans of the strings-in
graph and export's timings. A hit must give exactly what the work gives, a changed input must miss,
and a cache that is damaged or cannot be written must cost the work again, never the run."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codir_edge.core import disk_cache


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CODIR_EDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(disk_cache, "_memory", {})
    return tmp_path / "cache"


def test_a_tokenizer_scan_read_back_is_the_scan_and_another_normalizer_misses(cache, tmp_path, backbone_dir):
    from transformers import AutoTokenizer

    from codir_edge.export.strings.rules import text_rules

    uncased = AutoTokenizer.from_pretrained(str(backbone_dir))
    worked_out = text_rules(uncased)
    assert len(list((cache / "tokenizer-scans").glob("*.json"))) == 1
    disk_cache._memory.clear()  # what another process finds: the file only
    assert text_rules(uncased) == worked_out

    cased = AutoTokenizer.from_pretrained(str(backbone_dir), do_lower_case=False)  # (rebuilds its normalizer)
    rules = text_rules(cased)
    assert len(list((cache / "tokenizer-scans").glob("*.json"))) == 2
    assert rules.mapping != worked_out.mapping and rules.mapping.get("A") is None and worked_out.mapping["A"] == "a"


def test_a_damaged_entry_is_worked_out_again_and_an_unwritable_folder_is_no_error(cache, tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"value": [1, 2, 3]}

    assert disk_cache.cached("k", {"a": 1}, compute) == {"value": [1, 2, 3]}
    (entry,) = (cache / "k").glob("*.json")
    entry.write_text('{"value": [1, 2')  # cut short, as a killed writer would leave it
    disk_cache._memory.clear()
    assert disk_cache.cached("k", {"a": 1}, compute) == {"value": [1, 2, 3]} and len(calls) == 2
    disk_cache._memory.clear()
    assert disk_cache.cached("k", {"a": 1}, compute) == {"value": [1, 2, 3]} and len(calls) == 2  # mended
    assert disk_cache.cached("k", {"a": 1}, compute, use=False) == {"value": [1, 2, 3]} and len(calls) == 3

    (tmp_path / "a-file").write_text("")
    disk_cache.cache_root()  # the folder is read from the environment at each call
    import os

    os.environ["CODIR_EDGE_CACHE"] = str(tmp_path / "a-file")
    assert disk_cache.cached("k", {"a": 2}, compute) == {"value": [1, 2, 3]} and len(calls) == 4
    assert not list(tmp_path.glob("a-file/**"))


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=5),
       st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=5))  # fmt: skip
def test_keys_differ_exactly_when_descriptions_do(a, b):
    assert (disk_cache.key_of(a) == disk_cache.key_of(b)) == (a == b)
    assert disk_cache.key_of(dict(reversed(list(a.items())))) == disk_cache.key_of(a)  # order does not count


def test_a_graph_is_scored_once_per_contents_and_rows(cache, tmp_path, backbone_dir, glue_dir):
    """export's task scores: the same graph on the same rows is read back (equal to the scoring), a
    graph with other weights or other rows is scored afresh."""
    from types import SimpleNamespace

    from conftest import make_tiny_onnx
    from transformers import AutoTokenizer

    from codir_edge.data import DataSpec, get_task, load_train_dev
    from codir_edge.data.encode import encode
    from codir_edge.export.candidates import task_metrics

    task = get_task("sst2")
    _, dev, _ = load_train_dev(task, DataSpec(str(glue_dir / "SST-2")))
    encoded = encode(AutoTokenizer.from_pretrained(str(backbone_dir)), dev.subsample(60, 0), 32)
    plan = SimpleNamespace(task=task)
    first, second = make_tiny_onnx(tmp_path / "a.onnx", hidden=8), make_tiny_onnx(tmp_path / "b.onnx", hidden=8, seed=1)
    scored = task_metrics(first, encoded, plan)
    disk_cache._memory.clear()
    assert task_metrics(first, encoded, plan) == scored
    assert len(list((cache / "export-scores").glob("*.json"))) == 1
    task_metrics(second, encoded, plan)
    fewer = encode(AutoTokenizer.from_pretrained(str(backbone_dir)), dev.subsample(30, 0), 32)
    task_metrics(first, fewer, plan)
    assert len(list((cache / "export-scores").glob("*.json"))) == 3
