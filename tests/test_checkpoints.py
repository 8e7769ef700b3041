"""Checkpoints as people save them: hub ids in the cache, sharded weights, slow-only tokenizers and
``LABEL_i`` label maps, each through the CLI on real files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, invoke

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _hub_cache(root: Path, repo_id: str, model: Path) -> Path:
    """The layout huggingface_hub writes: refs/main names a commit, snapshots/<commit> holds the files."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(model, repo / "snapshots" / COMMIT)
    return root


@pytest.fixture()
def hub_cache(tmp_path, tiny_classifier, monkeypatch) -> Path:
    from huggingface_hub import constants

    root = _hub_cache(tmp_path / "hub", "acme/tiny-sst2", tiny_classifier)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return root


def test_a_cached_hub_id_works_offline_where_a_folder_is_expected(hub_cache, sst2_small, tmp_path):
    result = invoke("evaluate", "acme/tiny-sst2", "--task", "sst2", "--data", sst2_small, "--json", tmp_path / "e.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "e.json").read_text())["metrics"]["accuracy"] >= 0.0
    out = tmp_path / "bundle"
    result = invoke("export", "acme/tiny-sst2", "--out", out, "--no-optimize", "--quantize", "none", "--no-ort")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["source"]["name"] == COMMIT  # the snapshot, no path


def test_an_uncached_hub_id_offline_is_one_line_saying_how_to_fetch_it(hub_cache, sst2_small, tmp_path, no_leftovers):
    out = tmp_path / "student"
    result = invoke("compress", "--teacher", "acme/not-fetched", "--task", "sst2", "--data", sst2_small, "--out", out)
    assert_one_line_error(result, 2, "--teacher acme/not-fetched", "Hugging Face cache", "huggingface-cli download")
    no_leftovers(out)


def test_a_missing_local_path_is_not_taken_for_a_hub_id(hub_cache, sst2_small, tmp_path):
    result = invoke("evaluate", tmp_path / "no-such-model", "--task", "sst2", "--data", sst2_small)
    assert_one_line_error(result, 2, "does not exist")


def test_sharded_safetensors_and_a_slow_only_tokenizer_load(tmp_path, tiny_classifier, sst2_small):
    from transformers import AutoModelForSequenceClassification

    folder = tmp_path / "sharded"
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier)
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="300KB")
    assert (folder / "model.safetensors.index.json").is_file() and len(list(folder.glob("*.safetensors"))) > 1
    for name in ("vocab.txt", "tokenizer_config.json"):  # what a slow BertTokenizer writes: no tokenizer.json
        shutil.copy(tiny_classifier / name, folder / name)
    assert not (folder / "tokenizer.json").exists()
    scores = {}
    for name, model in (("sharded", folder), ("original", tiny_classifier)):
        result = invoke("evaluate", model, "--task", "sst2", "--data", sst2_small, "--json", tmp_path / f"{name}.json")
        assert result.exit_code == 0, result.output
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())["metrics"]
    assert scores["sharded"] == scores["original"]


def test_generic_label_names_map_to_the_task_in_order_and_say_so(tmp_path, tiny_classifier, sst2_small):
    folder = shutil.copytree(tiny_classifier, tmp_path / "generic")
    config = json.loads((folder / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "LABEL_0", "1": "LABEL_1"}, {"LABEL_0": 0, "LABEL_1": 1}
    (folder / "config.json").write_text(json.dumps(config))
    result = invoke("evaluate", folder, "--task", "sst2", "--data", sst2_small)
    assert result.exit_code == 0, result.output
    assert "names no labels" in result.output and "0, 1 in that order" in result.output
    three = {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}
    (folder / "config.json").write_text(json.dumps(config | {"id2label": three}))
    assert_one_line_error(invoke("evaluate", folder, "--task", "sst2", "--data", sst2_small), 2, "3 unnamed labels")


def test_profile_feeds_a_bare_small_vocabulary_graph_ids_inside_its_table(tmp_path):
    """No config.json beside the file: the embedding table's rows, read from the graph, bound the ids
    (a 500-token model fed ids up to 30,000 would fail in Gather)."""
    from conftest import make_tiny_onnx

    model = make_tiny_onnx(tmp_path / "small.onnx", vocab=500)
    report = tmp_path / "p.json"
    result = invoke("profile", model, "--seq-lens", "16,64", "--batch-sizes", "1,4", "--threads", "1", "--runs", "3",
                    "--warmup", "1", "--quiet", "--json", report)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(json.loads(report.read_text())["results"]) == 4


@pytest.mark.parametrize(
    ("task", "id2label", "expected"),
    [
        ("sst2", {"0": "NEGATIVE", "1": "POSITIVE"}, ["0", "1"]),  # distilbert-base-uncased-finetuned-sst-2-english
        ("sst2", {"0": "positive", "1": "negative"}, ["1", "0"]),
        ("mnli", {"0": "CONTRADICTION", "1": "NEUTRAL", "2": "ENTAILMENT"}, ["contradiction", "neutral", "entailment"]),
        ("rte", {"0": "LABEL_0", "1": "LABEL_1"}, ["entailment", "not_entailment"]),
    ],
)
def test_named_labels_are_matched_by_name_in_the_models_order(tmp_path, task, id2label, expected):
    from codir_edge.data import get_task
    from codir_edge.models.labels import model_labels

    assert model_labels({"id2label": id2label}, get_task(task), tmp_path) == expected


def test_a_classifier_with_its_labels_in_another_order_scores_the_same(tmp_path, tiny_classifier, sst2_small):
    """The same classifier with its two output rows swapped and its labels named in that swapped order.
    Its bias leans to "1" (14 of the 32 dev rows), so reading the outputs in the wrong order would score
    1 - accuracy, not the same."""
    from safetensors.torch import load_file, save_file

    leaning = shutil.copytree(tiny_classifier, tmp_path / "leaning")
    weights = load_file(leaning / "model.safetensors")
    weights["classifier.bias"] = weights["classifier.bias"] * 0 + weights["classifier.bias"].new_tensor([0.0, 3.0])
    save_file(weights, leaning / "model.safetensors", metadata={"format": "pt"})
    swapped = shutil.copytree(leaning, tmp_path / "swapped")
    for name in ("classifier.weight", "classifier.bias"):
        weights[name] = weights[name].flip(0).contiguous()
    save_file(weights, swapped / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((swapped / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "positive", "1": "negative"}, {"positive": 0, "negative": 1}
    (swapped / "config.json").write_text(json.dumps(config))
    scores = {}
    for name, model in (("original", leaning), ("swapped", swapped)):
        result = invoke("evaluate", model, "--task", "sst2", "--data", sst2_small, "--json", tmp_path / f"{name}.json")
        assert result.exit_code == 0, result.output
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())["metrics"]
    assert scores["swapped"] == scores["original"] and scores["original"]["accuracy"] != 0.5


def test_a_pipeline_takes_a_cached_hub_id_and_skips_it_when_unchanged(hub_cache, tmp_path, sst2_small, monkeypatch):
    """The stage runs in a child process: it finds the same cache through HF_HUB_CACHE."""
    from test_pipeline import FAST_EXPORT, statuses, write_pipeline

    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    tables = {"pipeline": {"task": "sst2", "data": str(sst2_small), "work": "work"},
              "export": {"model": "acme/tiny-sst2", **FAST_EXPORT}}  # fmt: skip
    toml = write_pipeline(tmp_path / "p.toml", tables)
    first = invoke("pipeline", toml, "--quiet")
    assert first.exit_code == 0, first.output
    assert (tmp_path / "work" / "export" / "manifest.json").is_file()
    again = invoke("pipeline", toml, "--quiet")
    assert again.exit_code == 0 and statuses(again.output)["export"] == "skipped", again.output
