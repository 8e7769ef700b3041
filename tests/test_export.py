"""``codir-edge export`` and ``verify`` through the CLI: tiny random classifiers saved by the tests, the
real MiniLM tokenizer, real onnxruntime sessions and Optimum's own loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, invoke
from conftest import build_tiny_bert


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, backbone_dir) -> Path:
    return build_tiny_bert(
        tmp_path_factory.mktemp("clf") / "m", backbone_dir, layers=2, hidden=32, id2label={0: "0", 1: "1"}
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, classifier) -> Path:
    out = tmp_path_factory.mktemp("export") / "bundle"
    result = invoke("export", classifier, "--out", out, "--max-length", "64")
    assert result.exit_code == 0, result.output
    return out


def test_bundle_holds_every_variant_with_a_complete_manifest(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    names = [v["name"] for v in manifest["variants"]]
    assert names == ["fp32", "int8", "ort"]
    for name in ("model.onnx", "model.int8.onnx", "model.ort", "required_operators.config", "labels.json",
                 "config.json", "tokenizer.json"):  # fmt: skip
        assert (bundle / name).is_file(), name
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert set(listed) == {p.name for p in bundle.iterdir() if p.name != "manifest.json"}
    assert all(len(entry["sha256"]) == 64 and entry["size"] > 0 for entry in listed.values())
    assert [i["name"] for i in manifest["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
    assert (
        manifest["inputs"][0]["shape"] == ["batch_size", "sequence_length"]
        and manifest["inputs"][0]["dtype"] == "int64"
    )
    assert manifest["parity"]["source"] == "generated token ids"
    assert manifest["parity"]["max_abs_diff"] <= 1e-4 and manifest["parity"]["label_agreement"] == 1.0
    assert {(c["batch"], c["length"]) for c in manifest["parity"]["cases"]} >= {(1, 8), (16, 64)}
    assert manifest["fused_operators"]["offline_fusion"]["Attention"] == 2  # eager export: both layers fuse
    assert manifest["fused_operators"]["offline_fusion"]["SkipLayerNormalization"] >= 2
    assert (
        manifest["opset"] == 17 and manifest["source"]["sha256"] and manifest["command"].startswith("codir-edge export")
    )
    assert {"onnxruntime", "codir-edge"} <= set(manifest["versions"])
    assert json.loads((bundle / "labels.json").read_text()) == ["0", "1"]
    assert manifest["graph_choice"]["chosen"]["fp32"] in ("plain", "fused")


def test_optimum_loads_each_variant_and_agrees_with_onnxruntime(bundle, backbone_dir):
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bundle)
    inputs = tokenizer(["a gripping film", "dull"], padding=True, return_tensors="np")
    for file_name in ("model.onnx", "model.int8.onnx"):
        model = ORTModelForSequenceClassification.from_pretrained(bundle, file_name=file_name)
        ours = ort.InferenceSession(str(bundle / file_name), providers=["CPUExecutionProvider"])
        expected = ours.run(None, {k: v.astype(np.int64) for k, v in inputs.items()})[0]
        got = model(**{k: v for k, v in inputs.items()}).logits
        np.testing.assert_allclose(np.asarray(got), expected, atol=1e-5)


def test_verify_passes_then_catches_tampering(bundle, tmp_path):
    import shutil

    assert invoke("verify", bundle).exit_code == 0
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    data = bytearray((copy / "model.int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.int8.onnx").write_bytes(bytes(data))
    (copy / "extra.bin").write_bytes(b"x")
    result = invoke("verify", copy)
    assert_one_line_error(result, 1, "model.int8.onnx: sha256 differs", "extra.bin: not in the manifest")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"].append({"path": "../outside.txt", "sha256": "0" * 64, "size": 1})
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(invoke("verify", copy), 2, "leaves the bundle")


def test_export_with_task_data_scores_every_variant(tmp_path, classifier, sst2_small):
    out = tmp_path / "b"
    result = invoke("export", classifier, "--out", out, "--task", "sst2", "--data", sst2_small, "--quantize",
                    "static", "--calibration-samples", "16", "--max-accuracy-drop", "100", "--no-ort", "--fp16",
                    "--no-optimize")  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert [v["name"] for v in manifest["variants"]] == ["fp32", "int8", "fp16"]
    assert all("accuracy" in v["accuracy"] for v in manifest["variants"])
    assert manifest["variants"][1]["quantization"] == "static"
    assert manifest["parity"]["source"] == "task sentences"
    assert invoke("verify", out).exit_code == 0


def test_parity_beyond_atol_fails_with_the_worst_difference(tmp_path, classifier, no_leftovers):
    out = tmp_path / "b"
    result = invoke("export", classifier, "--out", out, "--atol", "1e-12", "--no-ort", "--quantize", "none")
    assert_one_line_error(result, 1, "ONNX output differs from PyTorch by up to", "--atol 1e-12")
    no_leftovers(out)


def _bad_cases(tmp_path: Path, classifier: Path, backbone_dir: Path) -> dict:
    albert = tmp_path / "albert"
    albert.mkdir()
    (albert / "config.json").write_text(
        json.dumps({"model_type": "albert", "architectures": ["AlbertForSequenceClassification"]})
    )
    (albert / "model.safetensors").write_bytes(b"")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (corrupt / name).write_bytes((classifier / name).read_bytes())
    (corrupt / "model.safetensors").write_bytes(b"not safetensors at all")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return {
        "not a folder": ([tmp_path / "missing"], "does not exist"),
        "unsupported architecture": ([albert], "export does not support", "bert, roberta"),
        "backbone": ([backbone_dir], "not a sequence classifier"),
        "corrupt weights": ([corrupt], "cannot load the weights"),
        "static without data": ([classifier, "--quantize", "static"], "--quantize static calibrates"),
        "unwritable out": ([classifier, "--out", a_file / "sub"], "inside the file"),
        "opset": ([classifier, "--opset", "99"], "--opset 99"),
    }


@pytest.mark.parametrize("case", ["not a folder", "unsupported architecture", "backbone", "corrupt weights",
                                  "static without data", "unwritable out", "opset"])  # fmt: skip
def test_bad_input_is_one_line_exit_2(tmp_path, classifier, backbone_dir, no_leftovers, case):
    args, *fragments = _bad_cases(tmp_path, classifier, backbone_dir)[case]
    out = tmp_path / "out"
    if "--out" not in args:
        args = [*args, "--out", out]
    assert_one_line_error(invoke("export", *args), 2, *fragments)
    no_leftovers(out)


def test_profile_measures_every_variant_of_an_exported_bundle(bundle, tmp_path):
    out = tmp_path / "report.json"
    result = invoke("profile", bundle, "--runs", "3", "--warmup", "1", "--seq-lens", "16", "--batch-sizes", "1",
                    "--threads", "1", "--json", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    measured = {row["target"] for row in json.loads(out.read_text())["results"]}
    assert measured == {"fp32", "int8", "ort"}
