"""Registry coverage on checkpoints shaped like users' ones: every family at its base checkpoint's
configuration (768 wide, 12 heads, its own position and attention flags) with two layers, and a
tokenizer made by the family's own transformers class from vocabulary files (its added tokens'
``normalized``/``lstrip`` flags and, for SentencePiece, the converted normalizer, as transformers
writes them), saved by ``save_pretrained`` with transformers' default label map. Each is compressed to
one layer with its vocabulary and width pruned (``--vocab auto``, half the FFN and, where the family
records pruned heads, half the heads) and exported with ``--task --data`` and the defaults (static QDQ
among the INT8 candidates, ``.ort``, the Core ML and NNAPI variants, the strings graph), verified,
profiled on real sentences and evaluated. Tiny look-alikes hide what these configurations and flags
break, so this is the one chain test per family.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import invoke
from conftest import cut_glue
from families import build_base_classifier
from test_families import TESTED

from codir_edge.models.families import FAMILIES

# Families whose base tokenizers the strings-in graph reproduces, added-token flags included.
STRINGS_IN = TESTED  # every family's base tokenizer, added-token flags included
# What onnxruntime's BERT fusions make of each one-layer student: fused Attention nodes (DistilBERT's and
# MPNet's attention patterns do not match; DeBERTa and ModernBERT run plain). ALBERT's one layer reads the
# embedding-to-hidden projection, which the fusion took for the attention output until export put the
# residual Add's inputs the other way round (graph.attention_output_first).
ATTENTION_FUSED = {"bert": 1, "roberta": 1, "xlm-roberta": 1, "camembert": 1, "electra": 1, "albert": 1}


@pytest.fixture(scope="module")
def sst2(tmp_path_factory, glue_dir) -> Path:
    return cut_glue(glue_dir, "SST-2", tmp_path_factory.mktemp("base") / "SST-2", 32, 32)


@pytest.mark.slow
@pytest.mark.parametrize("family", TESTED)
def test_a_base_config_checkpoint_goes_through_the_chain(tmp_path, glue_dir, backbone_dir, sst2, family):
    teacher = build_base_classifier(family, tmp_path / "teacher", glue_dir, backbone_dir)
    assert "id2label" not in json.loads((teacher / "config.json").read_text())  # as transformers saves 2 labels
    student = tmp_path / "student"
    narrower = ["--ffn-keep", "0.5"] + (["--heads-keep", "0.5"] if FAMILIES[family].attn_out else [])
    result = invoke("compress", "--teacher", teacher, "--task", "sst2", "--data", sst2, "--out", student,
                    "--student-layers", "1", "--max-length", "32", "--batch-size", "8", "--epochs", "1",
                    "--negatives", "4", "--vocab", "auto", "--quiet", *narrower)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "names no labels" in result.output  # the default label map is read in task order, and said
    # pruned to the tokens its training text uses (compress --vocab): the family's own tokenizer class
    # loads the rewritten tokenizer, and the rest of the chain takes the student as any other
    vocabulary = json.loads((student / "metrics.json").read_text())["vocabulary"]
    assert vocabulary["train_rows_retokenized"] == 0
    config, teacher_config = (json.loads((m / "config.json").read_text()) for m in (student, teacher))
    assert config["vocab_size"] == vocabulary["kept"] < vocabulary["full_size"] == teacher_config["vocab_size"]
    assert config["model_type"] == family and config[FAMILIES[family].depth_key] == 1
    assert config["id2label"] == {"0": "0", "1": "1"}
    # width-pruned as well (heads where the family's checkpoints can record them), with no code of ours
    # needed to load it
    assert config[FAMILIES[family].ffn_key] == teacher_config[FAMILIES[family].ffn_key] // 2
    assert bool(config.get("pruned_heads")) == (FAMILIES[family].attn_out is not None)

    bundle = tmp_path / "bundle"
    # a random model's predictions sit on the decision boundary: one flipped sentence of 32 is 3 points,
    # so the accuracy gate is opened (the quantizers, the fixed-shape variants and the strings graph still run)
    result = invoke("export", student, "--out", bundle, "--task", "sst2", "--data", sst2, "--max-length", "32",
                    "--tune-threads", "1", "--tune-lengths", "16", "--max-accuracy-drop", "100")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "internal error" not in result.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    variants = {v["name"]: v for v in manifest["variants"]}
    assert {"fp32", "int8", "ort", "coreml", "nnapi"} <= set(variants)  # the accelerator variants, for every family
    assert manifest["parity"]["max_abs_diff"] <= 1e-4
    assert all(0.0 <= v["accuracy"]["accuracy"] <= 1.0 for v in variants.values() if "accuracy" in v)
    assert manifest["fused_operators"]["offline_fusion"]["Attention"] == ATTENTION_FUSED.get(family, 0)
    if family in STRINGS_IN:  # built only when its token ids equal the tokenizer's on every check text
        assert variants["strings"]["agreement"]["texts"] >= 120, result.output
        assert variants["strings"]["tokenizer"] == FAMILIES[family].tokenizer  # the registry says what it is

    assert invoke("verify", bundle).exit_code == 0
    report = tmp_path / "profile.json"
    result = invoke("profile", bundle, "--task", "sst2", "--data", sst2, "--seq-lens", "real,32", "--batch-sizes",
                    "1", "--threads", "1", "--runs", "3", "--warmup", "1", "--quiet", "--json", report)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(report.read_text())["results"]
    assert {r["target"] for r in rows} >= {"fp32", "int8"} and all(r["p50_ms"] > 0 for r in rows)
    result = invoke("evaluate", student, "--task", "sst2", "--data", sst2, "--json", tmp_path / "eval.json")
    assert result.exit_code == 0, result.output
    assert 0.0 <= json.loads((tmp_path / "eval.json").read_text())["metrics"]["accuracy"] <= 1.0


@pytest.fixture(scope="module")
def base_mpnet(tmp_path_factory, glue_dir, backbone_dir) -> tuple[Path, Path]:
    """A one-layer base MPNet and its fp32 graph, as export makes it."""
    from codir_edge.export.convert import load_for_export
    from codir_edge.onnx.graph import export_fp32

    folder = build_base_classifier("mpnet", tmp_path_factory.mktemp("mpnet") / "m", glue_dir, backbone_dir, layers=1)
    graph = folder.parent / "plain.onnx"
    export_fp32(load_for_export(folder), graph)
    return folder, graph


def _feeds(rows: int = 4, length: int = 12) -> list[dict]:
    import numpy as np

    ids = np.random.default_rng(0).integers(1000, 5000, size=(rows, length))
    ids[:, 0], ids[:, -1] = 0, 2
    return [{"input_ids": ids, "attention_mask": np.ones_like(ids)}]


def test_static_int8_keeps_mpnet_relative_position_buckets_in_float(base_mpnet, tmp_path):
    """MPNet takes log of a distance (-inf at 0) and casts it to a bucket index: calibrated Q/DQ there
    gives a NaN scale and garbage indices. The float paths keep it out of quantization, and the
    same quantizer without them breaks the graph (so the test shows what the exclusion prevents)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, quantize_static

    from codir_edge.export.candidates import run_fault
    from codir_edge.export.quantize import _Reader, static_int8
    from codir_edge.onnx.float_paths import float_paths

    _, graph = base_mpnet
    kept = set(float_paths(graph))
    ops = {n.name: n.op_type for n in onnx.load(str(graph)).graph.node}
    assert {"Log", "Cast", "CumSum"} <= {ops[name] for name in kept}
    assert not {"MatMul", "Gemm", "LayerNormalization"} & {ops[name] for name in kept}  # weights stay quantized

    static_int8(graph, tmp_path / "kept.onnx", _feeds(), "minmax", "avx2")
    assert run_fault(tmp_path / "kept.onnx", _feeds()) is None
    quantize_static(str(graph), str(tmp_path / "naive.onnx"), _Reader(_feeds()), quant_format=QuantFormat.QDQ)
    assert run_fault(tmp_path / "naive.onnx", _feeds()) is not None


def test_normalized_added_tokens_match_as_the_tokenizer_matches_them(base_mpnet, tmp_path):
    """MPNetTokenizerFast saves its added tokens ``normalized: true``: "[UNK]" typed in any case is
    matched after lower-casing, "<mask>" swallows the space before it."""
    from transformers import AutoTokenizer

    from codir_edge.export.strings.build import build_strings_model
    from codir_edge.export.strings.check import check_strings_model

    folder, graph = base_mpnet
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert any(t.normalized for t in tokenizer.added_tokens_decoder.values())
    strings = tmp_path / "strings.onnx"
    build_strings_model(graph, strings, tokenizer, 32, False, False, ids_out=True)
    texts = ["[UNK]", "a [unk] b", "A [Unk]b [UNK]", "<s>x</s>", "x <mask> y", "x<MASK>", "[unk][UNK]<pad> <unk>"]
    agreement = check_strings_model(strings, graph, tokenizer, [(t, None) for t in texts], 32)
    assert agreement["texts"] == len(texts)


def test_a_candidate_that_fails_or_gives_nan_is_set_aside_with_its_reason(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    from codir_edge.export.candidates import runnable

    def graph(name: str, nodes: list, initializers: list = ()) -> Path:
        ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])
        out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)
        model = helper.make_model(helper.make_graph(nodes, name, [ids], [out], list(initializers)),
                                  opset_imports=[helper.make_opsetid("", 17)])  # fmt: skip
        path = tmp_path / f"{name}.onnx"
        onnx.save(model, str(path))
        return path

    cast = helper.make_node("Cast", ["input_ids"], ["f"], to=TensorProto.FLOAT)
    good = graph("good", [cast, helper.make_node("Log", ["f"], ["logits"])])
    nan = graph("nan", [cast, helper.make_node("Neg", ["f"], ["n"]), helper.make_node("Log", ["n"], ["logits"])])
    table = helper.make_tensor("table", TensorProto.FLOAT, [2], [1.0, 2.0])
    bad = graph("bad", [helper.make_node("Gather", ["table", "input_ids"], ["logits"])], [table])
    feeds = [{"input_ids": np.array([[5, 7]], dtype=np.int64)}]
    kept, broken = runnable({"good": good, "nan": nan, "bad": bad}, feeds)
    assert kept == {"good": good}
    assert broken["nan"] == "gives NaN or infinite outputs on calibration sentences"
    assert broken["bad"].startswith("fails on calibration sentences: ") and "Gather" in broken["bad"]


def test_a_step_that_fails_on_the_model_names_the_option_that_avoids_it():
    from codir_edge.core.errors import InputError, StepFailedError, avoidable

    expected = r"^mobile \.ort failed on this model \(RuntimeError: no kernel\): pass --no-ort, and please report"
    with pytest.raises(StepFailedError, match=expected), avoidable("mobile .ort", "pass --no-ort"):
        raise RuntimeError("no kernel\nsecond line")
    with pytest.raises(InputError), avoidable("mobile .ort", "pass --no-ort"):  # the user's own errors pass as they are
        raise InputError("bad")


def test_a_sentencepiece_model_defining_a_special_the_class_adds_again_builds(tmp_path, glue_dir):
    """A user's .model that defines <pad> itself: CamembertTokenizerFast adds its own <pad> too, so the
    vocabulary repeats a piece, which tokenizers accepts and the sentencepiece library refuses."""
    import sentencepiece as spm
    from families import _sentences
    from transformers import CamembertTokenizerFast

    from codir_edge.export.strings.unigram import unigram_rules

    spm.SentencePieceTrainer.train(sentence_iterator=iter(_sentences(glue_dir)), model_prefix=str(tmp_path / "sp"),
                                   vocab_size=1000, model_type="unigram", minloglevel=2, bos_id=0, pad_id=1,
                                   eos_id=2, unk_id=3)  # fmt: skip
    tokenizer = CamembertTokenizerFast(vocab_file=str(tmp_path / "sp.model"))
    pieces = [piece for piece, _ in json.loads(tokenizer.backend_tokenizer.to_str())["model"]["vocab"]]
    assert pieces.count("<pad>") == 2
    processor = spm.SentencePieceProcessor(model_proto=unigram_rules(tokenizer).spm_model)
    assert processor.piece_to_id("<pad>") == pieces.index("<pad>")
