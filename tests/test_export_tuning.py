"""Export tuned for where it runs: per-thread-count winners in a deployment table that profile
follows, accuracy-aware INT8 on a model damaged on purpose, and the fixed-shape QDQ variant for
NNAPI and Core ML. Tiny random classifiers saved by the tests, real onnxruntime sessions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, invoke
from conftest import build_tiny_bert, cut_glue
from hypothesis import given
from hypothesis import strategies as st

OUTLIER = 3000.0  # how far the planted activation feature stands out


def _outlier_model(tmp_path: Path, backbone_dir: Path, glue_dir: Path) -> tuple[Path, Path]:
    """A tiny classifier whose attention outputs carry one feature OUTLIER times larger than the rest
    (value projection row scaled up, output projection column scaled down: attention is linear in
    the values, so fp32 computes the same function). Per-tensor activation quantization of the
    MatMul that reads it then loses every other feature. The attention output is also weighted up,
    so that a random tiny model's residual path does not hide the loss. Dev labels are the fp32
    model's own predictions, so fp32 scores 100% and every point INT8 loses is its own."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = build_tiny_bert(tmp_path / "m", backbone_dir, layers=2, hidden=32, id2label={0: "0", 1: "1"}, seed=5)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            attention = layer.attention
            attention.output.dense.weight *= 20  # attention's share of each layer, against the residual
            attention.self.value.weight[3] *= OUTLIER
            attention.self.value.bias[3] *= OUTLIER
            attention.output.dense.weight[:, 3] /= OUTLIER
    data = cut_glue(glue_dir, "SST-2", tmp_path / "SST-2", 64, 300)
    rows = [line.split("\t")[0] for line in (data / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        logits = model(**tokenizer(rows, padding=True, truncation=True, max_length=64, return_tensors="pt")).logits
        margins = logits[:, 1] - logits[:, 0]
        model.classifier.bias[1] -= margins.median()  # both labels, half the sentences each
    centred = margins - margins.median()
    clear = centred.abs() > centred.abs().median()  # sentences no small rounding can flip
    model.save_pretrained(model_dir)
    kept = [(r, int(m > 0)) for r, m, c in zip(rows, centred.tolist(), clear.tolist(), strict=True) if c]
    lines = ["sentence\tlabel", *[f"{r}\t{y}" for r, y in kept]]
    (data / "dev.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return model_dir, data


@pytest.mark.slow
def test_accuracy_aware_int8_keeps_the_outlier_layer_in_float(tmp_path, backbone_dir, glue_dir, no_leftovers):
    model_dir, data = _outlier_model(tmp_path, backbone_dir, glue_dir)
    common = [model_dir, "--task", "sst2", "--data", data, "--max-length", "64", "--no-ort", "--no-optimize",
              "--no-tokenizer-in-graph", "--tune-threads", "1", "--quantize", "dynamic"]  # fmt: skip
    result = invoke("export", *common, "--out", tmp_path / "b", "--max-accuracy-drop", "1")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    int8 = next(v for v in manifest["variants"] if v["name"] == "int8")
    search = int8["accuracy_search"]
    assert search["drop_before"] > 5, search  # the damage is real: fully quantized, INT8 fails the limit
    assert int8["accuracy_drop_points"] <= 1 and search["drop_after"] <= 1
    # the MatMul fed by the outlier feature is ranked first and kept in float; most stay quantized
    assert search["ranking"][0] == int8["keep_float"][0] and "attention/output/dense" in int8["keep_float"][0]
    assert len(int8["keep_float"]) < search["quantized_matmuls"] / 2
    assert manifest["tuning"]["rejected_int8"]["plain.dynamic"] == search["drop_before"]
    assert "kept in fp32 for accuracy" in result.output
    # the graph on disk is the one scored: the named MatMul is float, the others are integer
    import onnx

    graph = onnx.load(str(tmp_path / "b" / "onnx/model_quantized.onnx")).graph
    float_matmuls = {n.name for n in graph.node if n.op_type == "MatMul"}
    assert set(int8["keep_float"]) <= float_matmuls
    assert sum(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in graph.node) > 0


def test_a_search_trial_on_kept_ranges_is_the_graph_a_fresh_calibration_gives(tmp_path, classifier_32):
    """The accuracy searches calibrate once and keep the ranges (static_int8's ``ranges``): a later
    trial, with other MatMuls in float, is byte for byte what calibrating again would have made."""
    import onnx
    from transformers import AutoModelForSequenceClassification

    from codir_edge.export import quantize as q
    from codir_edge.onnx.graph import export_fp32

    source = tmp_path / "plain.onnx"
    export_fp32(AutoModelForSequenceClassification.from_pretrained(classifier_32).eval(), source)
    ids = np.random.default_rng(0).integers(1000, 5000, size=(4, 12))
    feeds = [{"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}]
    matmuls = [n.name for n in onnx.load(str(source)).graph.node if n.op_type == "MatMul"]
    ranges = tmp_path / "ranges.json"

    def quantize(keep: tuple[str, ...], out: str, kept_ranges: Path | None) -> onnx.ModelProto:
        q.static_int8(source, tmp_path / out, feeds, "minmax", "avx512_vnni", op_types=["MatMul"], keep_float=keep,
                      weights_u8_per_tensor=True, ranges=kept_ranges)  # fmt: skip
        return onnx.load(str(tmp_path / out))

    quantize((), "first.onnx", ranges)
    assert ranges.is_file()  # written by the first trial
    later, fresh = quantize(tuple(matmuls[:2]), "later.onnx", ranges), quantize(tuple(matmuls[:2]), "fresh.onnx", None)
    assert later.SerializeToString() == fresh.SerializeToString()
    assert sum(n.op_type == "MatMul" for n in later.graph.node) >= 2  # the kept MatMuls are float


def test_sensitivity_ranks_the_matmul_behind_an_outlier_first(tmp_path):
    """The numpy simulation on a two-MatMul graph: the one whose input carries an outlier feature."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from codir_edge.export.mixed import WeightScheme, sensitivity

    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(8, 8)).astype(np.float32), rng.normal(size=(8, 8)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="first"),
             helper.make_node("MatMul", ["h", "w2"], ["y"], name="second")]  # fmt: skip
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )  # fmt: skip
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    x = rng.normal(size=(32, 8)).astype(np.float32)
    ranked = sensitivity(path, [{"x": x}], WeightScheme())
    assert [name for name, _ in ranked] and ranked[0][1] < 0.05  # no outlier: both small
    w1[:, 2] *= 500  # h gets an outlier feature, which the second MatMul's activation quantization meets,
    w2[2, :] /= 500  # and y stays the same function
    graph.initializer[0].CopyFrom(numpy_helper.from_array(w1, "w1"))
    graph.initializer[1].CopyFrom(numpy_helper.from_array(w2, "w2"))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    ranked = sensitivity(path, [{"x": x}], WeightScheme())
    assert ranked[0][0] == "second" and ranked[0][1] > 5 * ranked[1][1]


@given(st.lists(st.booleans(), min_size=1, max_size=12), st.integers(0, 12))
def test_search_finds_the_shortest_prefix_that_holds(bad, extra):
    """With a monotone drop (each kept layer fixes its own damage), the search returns exactly the
    shortest prefix of the ranking that brings the drop under the limit."""
    from codir_edge.export.mixed import fewest_in_float

    ranking = [f"m{i}" for i in range(len(bad))]
    damage = {f"m{i}": 1.0 if b else 0.0 for i, b in enumerate(bad)}

    def drop_of(kept: tuple[str, ...]) -> float:
        return sum(v for k, v in damage.items() if k not in kept)

    limit = 0.5
    found = fewest_in_float(ranking, lambda keep: keep, drop_of, limit)
    last_bad = max((i for i, b in enumerate(bad) if b), default=-1)
    assert found is not None and len(found.keep_float) == last_bad + 1
    assert found.drop <= limit and len(found.trials) <= 2 * len(bad).bit_length() + 2


@given(st.lists(st.booleans(), min_size=1, max_size=8), st.booleans())
def test_quantize_within_ranks_only_when_needed_and_leaves_the_full_quantization_when_nothing_holds(bad, hopeless):
    """The ranking (a full fp32 run) is computed only once the fully quantized graph misses the limit; when
    even every MatMul in float misses it, the file left is the fully quantized one, for the gate to name."""
    from codir_edge.export.mixed import DropJudge, quantize_within

    ranking = [f"m{i}" for i in range(len(bad))]
    written: list[tuple[str, ...]] = []
    ranked: list[bool] = []

    def drop_of(kept: tuple[str, ...]) -> float:
        return (5.0 if hopeless else 0.0) + sum(b for name, b in zip(ranking, bad, strict=True) if name not in kept)

    def rank() -> list[str]:
        ranked.append(True)
        return ranking

    found = quantize_within(lambda keep: written.append(keep) or keep, rank, DropJudge(drop_of, 0.5))
    assert bool(ranked) == (hopeless or any(bad))
    if hopeless:
        assert found is None and written[-1] == ()
    else:
        assert found is not None and found.drop <= 0.5 and written[-1] == found.keep_float
        assert found.trials[0] == {"kept": 0, "drop": float(sum(bad))}
    written.clear(), ranked.clear()
    assert quantize_within(lambda keep: written.append(keep) or keep, rank, None) is None  # no dev data: no search
    assert written == [()] and not ranked


def test_deployment_table_is_what_profile_loads_per_thread_count(tmp_path, backbone_dir):
    """A bundle tuned for 1 and 2 threads: every count names shipped variants; profile measures the
    variant at 2 threads with the file picked for 2 (written here as a distinct alternate)."""
    from codir_edge.bundle.manifest import read_manifest
    from codir_edge.profile.targets import resolve_targets

    model_dir = build_tiny_bert(tmp_path / "m", backbone_dir, layers=1, hidden=32, id2label={0: "0", 1: "1"})
    out = tmp_path / "b"
    result = invoke("export", model_dir, "--out", out, "--max-length", "32", "--tune-threads", "1,2",
                    "--tune-lengths", "8,32", "--no-ort", "--no-tokenizer-in-graph")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 thread: fp32 -> fp32" in result.output and "2 threads:" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["deployment"]["threads"]) == {"1", "2"}
    # one line per shipped file, in columns as wide as the longest name (an alternate such as
    # fp32-fused-noattn is longer than the plain names)
    rows = [line for line in result.output.splitlines() if " MB  " in line]
    assert len(rows) == len(manifest["variants"]) and len({row.index(" MB  ") for row in rows}) == 1, rows
    timed = manifest["tuning"]["median_ms"]
    assert set(timed) == {"t1/8", "t1/32", "t2/8", "t2/32"}
    assert {"plain", "fused", "fused-noattn", "o2", "int8:plain.dynamic", "int8:fused.dynamic",
            "int8:o2.optimum"} <= set(timed["t1/8"])  # fmt: skip
    # hand the 2-thread INT8 pick to the fused graph, as a tuning on another machine might
    variants = manifest["variants"]
    alternate = {"name": "int8-fused", "file": "onnx/model_quantized.fused.onnx", "alternate_of": "int8",
                 "threads": [2]}  # fmt: skip
    import shutil

    shutil.copy(out / "onnx/model_quantized.onnx", out / "onnx/model_quantized.fused.onnx")
    manifest["variants"] = [*[v for v in variants if v["name"] != "int8-fused"], alternate]
    manifest["deployment"]["threads"]["2"]["int8"] = "int8-fused"
    (out / "manifest.json").write_text(json.dumps(manifest))
    read = read_manifest(out)
    int8 = next(v for v in read.variants if v.name == "int8")
    picked = [read.for_threads(int8, t).file for t in (1, 2, 8)]
    assert picked == ["onnx/model_quantized.onnx", *["onnx/model_quantized.fused.onnx"] * 2]
    (target,) = [t for t in resolve_targets([out]) if t.name == "int8"]
    assert target.file_for(1).name == "model_quantized.onnx" and target.file_for(4).name == "model_quantized.fused.onnx"
    assert "int8-fused" not in {t.name for t in resolve_targets([out])}
    manifest["deployment"]["threads"]["2"]["int8"] = "int8-gone"
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(invoke("verify", out), 2, "names variant int8-gone", "re-export")


@pytest.mark.slow
def test_fixed_shape_variant_is_static_qdq_checked_for_accelerators_and_profiled_padded(tmp_path, classifier_32,
                                                                                        sst2_small, capfd):  # fmt: skip
    out = tmp_path / "b"
    result = invoke("export", classifier_32, "--out", out, "--task", "sst2", "--data", sst2_small, "--max-length",
                    "64", "--max-accuracy-drop", "100", "--tune-threads", "1", "--no-tokenizer-in-graph")  # fmt: skip
    assert result.exit_code == 0, result.output
    # nothing from the sessions onnxruntime's optimizer and quantizer open on their own ("Removing
    # initializer ... not used", dozens for a real model) reaches the user's terminal (file descriptor 2)
    assert "onnxruntime" not in capfd.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    fixed = next(v for v in manifest["variants"] if v["name"] == "int8-fixed")
    batch, length = fixed["fixed_shape"]
    assert batch == 1 and length % 8 == 0 and 8 <= length <= 64
    assert fixed["format"] == "QDQ" and fixed["activations"] == "u8" and "accuracy" in fixed
    for accelerator in ("nnapi", "coreml"):
        figures = fixed["usability"][accelerator]
        assert 0 < figures["supported_nodes"] <= figures["nodes"] and figures["partitions"] >= 1
        assert figures["verdict"] in ("YES", "MAYBE", "NO")
    import onnx

    graph = onnx.load(str(out / "onnx/model_quantized.fixed.onnx")).graph
    assert all([d.dim_value for d in i.type.tensor_type.shape.dim] == [1, length] for i in graph.input)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    assert (out / "onnx/model_quantized.fixed.ort").is_file() and invoke("verify", out).exit_code == 0
    # our own check takes away what NNAPI's builder refuses: int64 Gather indices, 3-D quantized MatMul inputs
    ours = fixed["usability"]["nnapi"]["ours"]
    assert ours["caveats"]["Gather indices not int32"] >= 1 and ours["caveats"]["quantized MatMul input A not 2-D"] > 0
    assert ours["supported_nodes"] < fixed["usability"]["nnapi"]["supported_nodes"]
    _assert_core_ml_variant(out, manifest, length)
    _assert_nnapi_variant(out, manifest, length)
    report = tmp_path / "p.json"
    profiled = invoke("profile", out, "--runs", "3", "--warmup", "1", "--threads", "1", "--batch-sizes", "1,2",
                      "--seq-lens", f"8,{length + 8}", "--json", report)  # fmt: skip
    assert profiled.exit_code == 0, profiled.output
    rows = [r for r in json.loads(report.read_text())["results"] if r["target"] == "int8-fixed"]
    assert [(r["batch_size"], r["seq_len"]) for r in rows] == [(1, 8)]  # the one configuration it can run
    recorded = json.loads(report.read_text())
    assert recorded["accuracy"]["int8-fixed"] == fixed["accuracy"]  # without --data: the export's figure,
    assert recorded["accuracy_basis"]["int8-fixed"].startswith("recorded by export")  # and said so
    # a manifest that lies about the shape is caught
    fixed["fixed_shape"] = [1, length + 8]
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(invoke("verify", out), 1, "onnx/model_quantized.fixed.onnx: input", f"says [1, {length + 8}]")


def _assert_core_ml_variant(out: Path, manifest: dict, length: int) -> None:
    """Core ML takes the variant whole after the embedding lookup, by onnxruntime's checker and ours; fp16
    inside (no larger than its weights in fp16), int64 in and fp32 out, and it computes what fp32 does."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    coreml = next(v for v in manifest["variants"] if v["name"] == "coreml")
    assert coreml["fixed_shape"] == [1, length] and "accuracy" in coreml
    for figures in (coreml["usability"]["coreml"], coreml["usability"]["coreml"]["ours"]):
        assert figures["share"] >= 0.95 and figures["partitions"] == 1 and figures["verdict"] == "YES", figures
    model = onnx.load(str(out / "onnx/model.coreml.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert not {"QuantizeLinear", "DequantizeLinear"} & set(ops) and "Erf" in ops
    assert ops.count("LayerNormalization") == 2 * 2 + 1  # one per sub-layer of 2 layers, plus the embeddings'
    inputs = {i.name for i in model.graph.input}  # the one lookup left on the CPU: words (positions fold)
    assert [n.input[1] for n in model.graph.node if n.op_type == "Gather" and n.input[1] in inputs] == ["input_ids"]
    halves = sum(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    assert halves > 0 and not any(i.data_type == onnx.TensorProto.FLOAT and np.prod(i.dims) > 64
                                  for i in model.graph.initializer)  # fmt: skip
    fp32_bytes = sum(np.prod(i.dims) * 4 for i in onnx.load(str(out / "onnx/model.onnx")).graph.initializer
                     if i.data_type == onnx.TensorProto.FLOAT)  # fmt: skip
    assert (out / "onnx/model.coreml.onnx").stat().st_size <= fp32_bytes / 2 * 1.05
    ids = np.random.default_rng(0).integers(5, 1000, size=(1, length))
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    feed["token_type_ids"][0, length // 2 :] = 1  # the token-type rows are arithmetic now: both must be right
    half = ort.InferenceSession(str(out / "onnx/model.coreml.onnx")).run(None, feed)[0]
    full = ort.InferenceSession(str(out / "onnx/model.onnx")).run(None, feed)[0]
    assert half.dtype == np.float32 and np.abs(half - full).max() < 2e-2


def _assert_nnapi_variant(out: Path, manifest: dict, length: int) -> None:
    """NNAPI takes the variant whole, by onnxruntime's checker and by ours (no int64 lookup, every quantized
    MatMul on a 2-D input); no Erf, no LayerNormalization, u8 embeddings; at most 1.5 times the INT8 file."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    nnapi = next(v for v in manifest["variants"] if v["name"] == "nnapi")
    assert nnapi["fixed_shape"] == [1, length] and "accuracy" in nnapi
    for figures in (nnapi["usability"]["nnapi"], nnapi["usability"]["nnapi"]["ours"]):
        assert figures["share"] == 1.0 and figures["partitions"] == 1 and figures["verdict"] == "YES", figures
    assert nnapi["usability"]["nnapi"]["ours"]["caveats"] == {}
    assert nnapi["rewritten"]["erf_to_tanh"] == 2 and nnapi["rewritten"]["layer_norms_decomposed"] == 5
    model = onnx.load(str(out / "onnx/model.nnapi.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert not {"Erf", "LayerNormalization"} & ops and {"Tanh", "QuantizeLinear", "DequantizeLinear"} <= ops
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.INT32 for i in model.graph.input)
    tables = {i.name: i.data_type for i in model.graph.initializer}
    lookup = next(n for n in model.graph.node if n.op_type == "Gather" and n.input[1] == "input_ids")
    assert tables[lookup.input[0]] == onnx.TensorProto.UINT8
    assert (out / "onnx/model.nnapi.onnx").stat().st_size <= 1.5 * (out / "onnx/model_quantized.onnx").stat().st_size
    ids = np.random.default_rng(1).integers(5, 1000, size=(1, length))
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    got = ort.InferenceSession(str(out / "onnx/model.nnapi.onnx")).run(None, {k: v.astype(np.int32)
                                                                             for k, v in feed.items()})[0]  # fmt: skip
    full = ort.InferenceSession(str(out / "onnx/model.onnx")).run(None, feed)[0]
    assert np.abs(got - full).max() < 0.1 * max(1.0, float(np.abs(full).max()))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--fixed-shape", "64"], ("--fixed-shape '64' is not BxL", "1x64")),
        (["--fixed-shape", "1x256"], ("longer than --max-length 64",)),
        (["--tune-threads", "0,2"], ("--tune-threads '0,2'", "at least 1")),
        (["--tune-lengths", "16,long"], ("--tune-lengths '16,long'", "real")),
        (["--tune-lengths", "256"], ("--tune-lengths go up to --max-length 64",)),
    ],
)
def test_bad_tuning_options_are_one_line_exit_2(tmp_path, classifier_32, no_leftovers, args, words):
    out = tmp_path / "b"
    result = invoke("export", classifier_32, "--out", out, "--max-length", "64", *args)
    assert_one_line_error(result, 2, *words)
    no_leftovers(out)


@pytest.fixture(scope="module")
def classifier_32(tmp_path_factory, backbone_dir) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("c") / "m", backbone_dir, layers=2, hidden=32,
                           id2label={0: "0", 1: "1"})  # fmt: skip


def test_a_clearly_slower_candidate_is_dropped_after_two_rounds_and_a_close_one_is_not(tmp_path, backbone_dir):
    """Real sessions: a 4-layer 128-wide graph against two copies of a 1-layer 64-wide one in one pool
    (wide enough, and 20 runs a round, that a neighbour on a shared core does not part the twins).
    The big one is timed for two rounds only; the copies (a tie) run all five; each pool is judged
    apart, so the big graph alone in a second pool is never dropped."""
    import shutil

    from transformers import AutoModelForSequenceClassification

    from codir_edge.export.tune import Setting, time_candidates
    from codir_edge.onnx.graph import export_fp32

    files = {}
    for name, (layers, hidden) in {"small": (1, 64), "big": (4, 128)}.items():
        folder = build_tiny_bert(tmp_path / name, backbone_dir, layers=layers, hidden=hidden)
        files[name] = tmp_path / f"{name}.onnx"
        export_fp32(AutoModelForSequenceClassification.from_pretrained(folder).eval(), files[name])
    shutil.copy(files["small"], tmp_path / "twin.onnx")
    candidates = {"small": files["small"], "twin": tmp_path / "twin.onnx", "big": files["big"], "alone": files["big"]}
    settings = [Setting(1, 16), Setting(1, 64)]
    measured = time_candidates(candidates, settings, 30522, None, rounds=5, runs=20,
                               pools=[["small", "twin", "big"], ["alone"]])  # fmt: skip
    for key in ("t1/16", "t1/64"):
        row = measured[key]
        assert row["big"]["dropped_after_round"] == 2 and len(row["big"]["rounds_ms"]) == 2
        assert all("dropped_after_round" not in row[n] and len(row[n]["rounds_ms"]) == 5 for n in ("small", "twin"))
        assert "dropped_after_round" not in row["alone"] and len(row["alone"]["rounds_ms"]) == 5


@given(st.lists(st.tuples(st.floats(0.5, 2.0), st.floats(0.0, 0.3)), min_size=2, max_size=6),
       st.lists(st.floats(-1.0, 1.0), min_size=5, max_size=5))  # fmt: skip
def test_a_dropped_candidate_is_never_in_the_leaders_tie(speeds, jitter):
    """Whatever the rounds say, a candidate ``clearly_slower`` drops has a score above the tie band
    of the fastest over the rounds it ran: dropping it cannot change what ``choose`` keeps."""
    from codir_edge.export.tune import MAX_NOISE, Setting, choose, clearly_slower

    settings = [Setting(1, 16), Setting(1, 128)]
    per_round = {s.key: {f"c{i}": [speed * s.length * (1 + noise * j) for j in jitter[:2]]
                         for i, (speed, noise) in enumerate(speeds)} for s in settings}  # fmt: skip
    out = clearly_slower(per_round, [s.key for s in settings], list(per_round["t1/16"]))
    measured = {k: {n: {"median_ms": float(np.median(v)), "spread_ms": (max(v) - min(v)) / 2} for n, v in row.items()}
                for k, row in per_round.items()}  # fmt: skip
    picked = choose(measured, settings, {})[1]
    best = picked["scores"][picked["fastest"]]
    assert picked["chosen"] not in out and picked["fastest"] not in out
    assert all(picked["scores"][n] > best * (1 + MAX_NOISE) for n in out)


@pytest.mark.parametrize("target", ["avx512_vnni", "avx2", "arm64"])
def test_the_peer_recipe_the_tuner_times_is_the_graph_optimums_own_pipeline_writes(tmp_path, backbone_dir, target):
    """``o2.optimum`` is what ORTOptimizer (O2) then ORTQuantizer (dynamic, for the target) write from
    the same fp32 graph, after the shape inference Optimum's users need: the same operators, the same
    outputs. A recipe that drifted from Optimum's would make "never slower than the peer" untrue."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    from optimum.onnxruntime import ORTOptimizer, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig, AutoQuantizationConfig
    from transformers import AutoModelForSequenceClassification

    from codir_edge.core.inputs import synthetic_token_ids, to_feed
    from codir_edge.export.graph import peer_o2
    from codir_edge.export.quantize import peer_dynamic_int8
    from codir_edge.onnx.graph import export_fp32
    from codir_edge.onnx.runtime_needs import needs_of

    model_dir = build_tiny_bert(tmp_path / "m", backbone_dir, layers=2, hidden=64, id2label={0: "0", 1: "1"})
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
    folder = tmp_path / "fp32"
    folder.mkdir()
    export_fp32(model, folder / "model.onnx")
    model.config.save_pretrained(folder)
    optimizer = ORTOptimizer.from_pretrained(folder, file_names=["model.onnx"])
    optimizer.optimize(AutoOptimizationConfig.O2(), tmp_path / "o")
    optimized = tmp_path / "o" / "model_optimized.onnx"
    onnx.save(SymbolicShapeInference.infer_shapes(onnx.load(str(optimized)), auto_merge=True), str(optimized))
    config = getattr(AutoQuantizationConfig, target)(is_static=False)
    ORTQuantizer.from_pretrained(tmp_path / "o", file_name="model_optimized.onnx").quantize(config, tmp_path / "q")
    theirs = tmp_path / "q" / "model_optimized_quantized.onnx"

    peer_o2(folder / "model.onnx", tmp_path / "o2.onnx", "bert", 2, 64)
    peer_dynamic_int8(tmp_path / "o2.onnx", tmp_path / "ours.onnx", target)

    def ops(path: Path) -> list[str]:
        return sorted(n.op_type for n in onnx.load(str(path)).graph.node)

    assert "QAttention" in ops(theirs) and ops(tmp_path / "ours.onnx") == ops(theirs)
    # the optimizer's unused opset domains are dropped: the file claims the runtime its operators need
    assert needs_of(tmp_path / "ours.onnx")["min_onnxruntime"] == "1.15"
    assert needs_of(theirs)["min_onnxruntime"] != "1.15"
    outputs = []
    for path in (theirs, tmp_path / "ours.onnx"):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = to_feed(synthetic_token_ids(2, 24), [i.name for i in session.get_inputs()])
        outputs.append(session.run(None, feed)[0])
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=0, atol=1e-6)


def test_a_candidate_that_needs_a_newer_onnxruntime_is_set_aside_before_timing(tmp_path):
    """Under --min-onnxruntime the tuner never times a graph the export could not ship; without it,
    nothing is set aside."""
    import onnx
    from onnx import TensorProto, helper

    from codir_edge.export.candidates import within_runtime
    from codir_edge.export.config import ExportConfig

    files = {}
    for name, opset in (("old", 17), ("new", 18)):
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], name,
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])  # fmt: skip
        files[name] = tmp_path / f"{name}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8), files[name])
    kept, aside = within_runtime(files, ExportConfig(min_onnxruntime="1.17"))
    assert list(kept) == ["old"] and "above --min-onnxruntime 1.17" in aside["new"]
    assert within_runtime(files, ExportConfig()) == (files, {})


@given(st.floats(1.2, 3.0), st.floats(0.02, 0.15))
def test_a_candidate_is_judged_on_the_rounds_it_ran_not_on_a_faster_machine(drift, lead):
    """The machine slows by ``drift`` after the first rounds (a neighbour starts). ``fast`` leads
    ``slow`` by ``lead`` in every round, but ``slow`` was dropped early, so its own rounds were all
    fast ones: its median over them is below ``fast``'s over five. Paired by round, ``fast`` wins."""
    from codir_edge.export.tune import MIN_ROUNDS, ROUNDS, Setting, choose

    settings = [Setting(2, 16), Setting(2, 128)]
    dropped_after = MIN_ROUNDS
    machine = [1.0] * dropped_after + [drift] * (ROUNDS - dropped_after)
    measured = {}
    for s in settings:
        fast = [s.length * m for m in machine]
        slow = [v * (1 + lead) for v in fast[:dropped_after]]
        measured[s.key] = {
            name: {"rounds_ms": rounds, "median_ms": float(np.median(rounds)),
                   "spread_ms": (max(rounds) - min(rounds)) / 2}
            for name, rounds in (("int8:fused.dynamic", fast), ("int8:plain.dynamic", slow))
        }  # fmt: skip
    assert measured["t2/16"]["int8:plain.dynamic"]["median_ms"] < measured["t2/16"]["int8:fused.dynamic"]["median_ms"]
    picked = choose(measured, settings, {})[2]
    assert picked["fastest"] == "int8:fused.dynamic"
    assert picked["scores"]["int8:plain.dynamic"] == pytest.approx(1 + lead, rel=1e-3)
    if lead > picked["noise"]:  # beyond the tie band, the simpler plain graph is not preferred
        assert picked["chosen"] == "int8:fused.dynamic"


@pytest.mark.slow
def test_re_exporting_an_unchanged_model_reuses_its_timings(tmp_path, backbone_dir, monkeypatch):
    """The same graphs on the same machine are timed once: the second export takes the first one's
    timings (and so its choices); --no-timing-cache times again; a cache that cannot be written
    costs a re-timing, never the export."""
    monkeypatch.setenv("CODIR_EDGE_CACHE", str(tmp_path / "cache"))
    model_dir = build_tiny_bert(tmp_path / "m", backbone_dir, layers=1, hidden=32, id2label={0: "0", 1: "1"})
    args = ["--max-length", "32", "--tune-threads", "1", "--tune-lengths", "8,32", "--no-ort",
            "--no-tokenizer-in-graph"]  # fmt: skip

    def export(out: str, *extra: str) -> dict:
        result = invoke("export", model_dir, "--out", tmp_path / out, *args, *extra)
        assert result.exit_code == 0, result.output
        return json.loads((tmp_path / out / "manifest.json").read_text())

    first, again = export("a"), export("b")
    assert first["tuning"]["from_cache"] is False and again["tuning"]["from_cache"] is True
    assert again["tuning"]["median_ms"] == first["tuning"]["median_ms"]
    assert again["deployment"]["threads"] == first["deployment"]["threads"]
    assert len(list((tmp_path / "cache" / "export-timings").glob("*.json"))) == 1
    assert export("c", "--no-timing-cache")["tuning"]["from_cache"] is False
    other = build_tiny_bert(tmp_path / "m", backbone_dir, layers=1, hidden=32, id2label={0: "0", 1: "1"}, seed=1)
    assert other == model_dir and export("d")["tuning"]["from_cache"] is False  # new weights: new graphs

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("CODIR_EDGE_CACHE", str(blocked))  # the cache folder cannot be made
    assert export("e")["tuning"]["from_cache"] is False


INT8_NAMES = ["int8:plain.dynamic", "int8:fused.dynamic", "int8:fused-noattn.dynamic", "int8:plain.dynamic-pt",
              "int8:fused.dynamic-pt", "int8:plain.qdq"]  # fmt: skip


@given(st.lists(st.tuples(st.floats(0.5, 3.0), st.floats(0.5, 3.0), st.floats(0.0, 0.2), st.booleans()),
                min_size=len(INT8_NAMES), max_size=len(INT8_NAMES)))  # fmt: skip
def test_lazy_accuracy_checks_choose_what_choosing_among_the_accurate_ones_chooses(rows):
    """``choose`` asks about accuracy only as picks need it, yet chooses at every thread count exactly
    what it chooses from the accurate candidates alone (None when none is accurate)."""
    from codir_edge.export.tune import Setting, choose

    settings = [Setting(t, n) for t in (1, 2) for n in (16, 128)]
    measured = {s.key: {name: {"median_ms": (short if s.length == 16 else long) * s.threads,
                               "spread_ms": noise * short}
                        for name, (short, long, noise, _) in zip(INT8_NAMES, rows, strict=True)}
                for s in settings}  # fmt: skip
    accurate = {name for name, row in zip(INT8_NAMES, rows, strict=True) if row[3]}
    asked = []

    def keep(name: str) -> bool:
        asked.append(name)
        return name in accurate

    lazy = choose(measured, settings, {}, keep=keep)
    alone = {k: {n: v for n, v in row.items() if n in accurate} for k, row in measured.items()}
    expected = choose(alone, settings, {}) if accurate else {1: None, 2: None}
    assert {t: c and c["chosen"] for t, c in lazy.items()} == {t: c and c["chosen"] for t, c in expected.items()}
    assert len(asked) <= 2 * len(INT8_NAMES)  # at most once per candidate and thread count


def test_profile_measures_every_target_on_its_data_and_agrees_with_evaluate(tmp_path, classifier_32, sst2_small,
                                                                           glue_dir):  # fmt: skip
    """On data other than the export's dev split, profile --data scores every ONNX target itself, the
    fixed-shape ones fed padded to their shape, one text per call as evaluate does: the two agree to
    the digit, and a min_accuracy budget is never judged on a figure profile did not measure."""
    out = tmp_path / "b"
    result = invoke("export", classifier_32, "--out", out, "--task", "sst2", "--data", sst2_small, "--max-length",
                    "64", "--max-accuracy-drop", "100", "--tune-threads", "1", "--no-tokenizer-in-graph")  # fmt: skip
    assert result.exit_code == 0, result.output
    other = tmp_path / "reviews"  # 48 SST-2 training sentences as the dev split of another data set
    other.mkdir()
    lines = (glue_dir / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    (other / "train.tsv").write_text("\n".join(lines[:9]) + "\n", encoding="utf-8")
    (other / "dev.tsv").write_text("\n".join([lines[0], *lines[500:548]]) + "\n", encoding="utf-8")
    profiled, evaluated = tmp_path / "p.json", tmp_path / "e.json"
    result = invoke("profile", out, "--task", "sst2", "--data", other, "--runs", "2", "--warmup", "1", "--threads",
                    "1", "--batch-sizes", "1", "--seq-lens", "8", "--json", profiled)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert invoke("evaluate", out, "--task", "sst2", "--data", other, "--json", evaluated).exit_code == 0
    profile, evaluate = json.loads(profiled.read_text()), json.loads(evaluated.read_text())
    scored = {v["variant"]: v for v in evaluate["variants"]}
    assert {"int8-fixed", "ort-fixed", "int8", "coreml", "nnapi"} <= set(profile["accuracy"])
    for name, metrics in profile["accuracy"].items():
        assert metrics == scored[name]["metrics"], name  # to the digit
        assert scored[name]["batch_size"] == 1 and "measured on" in profile["accuracy_basis"][name]
    manifest = json.loads((out / "manifest.json").read_text())
    fixed = next(v for v in manifest["variants"] if v["name"] == "int8-fixed")
    assert scored["int8-fixed"]["examples"] == 48 and fixed["accuracy"]  # scored anew, not copied
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[[budget]]\nname = "gate"\ntarget = "int8-fixed"\nbatch_size = 1\nseq_len = 8\n'
                       "min_accuracy = 0.1\n")  # fmt: skip
    assert_one_line_error(invoke("profile", out, "--budgets", budgets, "--runs", "2"), 2,
                          "sets min_accuracy", "pass --task and --data")  # fmt: skip


@pytest.mark.slow
def test_per_tensor_variants_keep_the_matmuls_they_ruin_in_float_and_ship(tmp_path, tiny_backbone, keyword_data):
    """A trained classifier whose query feature 3 is scaled by 500 and key feature 3 by 1/500: every attention
    score, and so fp32, is as before, but one u8 scale per weight tensor (and per activation) then flattens
    every other query feature. Per-channel INT8 holds; the fixed-shape QDQ and NNAPI variants lose far more
    than the limit. The accuracy-aware search keeps the damaged MatMuls in float, and both ship within it."""
    import torch
    from transformers import AutoModelForSequenceClassification

    common = ["--task", "classification", "--data", keyword_data, "--text-column", "review", "--label-column",
              "sentiment", "--max-length", "32"]  # fmt: skip
    teacher = tmp_path / "t"
    trained = invoke("finetune", "--model", tiny_backbone, *common, "--out", teacher, "--epochs", "4", "--lr", "1e-3",
                     "--batch-size", "16", "--quiet")  # fmt: skip
    assert trained.exit_code == 0 and "dev accuracy 1.0000" in trained.output, trained.output
    model = AutoModelForSequenceClassification.from_pretrained(teacher)
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            for module, factor in ((layer.attention.self.query, 500.0), (layer.attention.self.key, 1 / 500)):
                module.weight[3] *= factor  # output feature 3 (an nn.Linear weight is [out, in])
                module.bias[3] *= factor
    model.save_pretrained(teacher)
    out = tmp_path / "b"
    result = invoke("export", teacher, "--out", out, *common, "--max-accuracy-drop", "1", "--tune-threads", "1",
                    "--no-tokenizer-in-graph")  # fmt: skip
    assert result.exit_code == 0, result.output
    variants = {v["name"]: v for v in json.loads((out / "manifest.json").read_text())["variants"]}
    for name in ("int8-fixed", "nnapi"):
        search = variants[name]["accuracy_search"]
        assert search["drop_before"] > 10 and search["drop_after"] <= 1, search
        assert variants[name]["accuracy_drop_points"] <= 1 and search["trials"][0]["kept"] == 0
        kept = variants[name]["keep_float"]
        assert any("query" in node for node in kept) and all(node.endswith("MatMul") for node in kept), kept
    assert "accuracy_search" not in variants["coreml"] and "accuracy_search" not in variants["int8"]
    assert invoke("verify", out).exit_code == 0
