"""``codir-edge export`` and ``verify`` through the CLI: tiny random classifiers saved by the tests, the
real MiniLM tokenizer, real onnxruntime sessions and Optimum's own loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, invoke
from conftest import build_tiny_bert
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


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
    names = [v["name"] for v in manifest["variants"] if not v.get("alternate_of")]  # per-thread picks aside
    assert names == ["fp32", "int8", "int8-fixed", "ort-fixed", "coreml", "nnapi", "strings", "ort"]
    for name in ("onnx/model.onnx", "onnx/model_quantized.onnx", "onnx/model.strings.onnx", "onnx/model.ort",
                 "onnx/required_operators.config", "onnx/model_quantized.fixed.onnx", "onnx/model_quantized.fixed.ort",
                 "onnx/required_operators.fixed.config", "onnx/model.coreml.onnx", "onnx/model.nnapi.onnx",
                 "labels.json", "config.json", "tokenizer.json"):  # fmt: skip
        assert (bundle / name).is_file(), name
    listed = {entry["path"]: entry for entry in manifest["files"]}
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert set(listed) == on_disk - {"manifest.json"} and manifest["format_version"] == 3
    assert all(len(entry["sha256"]) == 64 and entry["size"] > 0 for entry in listed.values())
    assert [i["name"] for i in manifest["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
    assert (
        manifest["inputs"][0]["shape"] == ["batch_size", "sequence_length"]
        and manifest["inputs"][0]["dtype"] == "int64"
    )
    assert manifest["parity"]["source"] == "generated token ids" and manifest["left_out"] == []
    assert manifest["parity"]["max_abs_diff"] <= 1e-4 and manifest["parity"]["label_agreement"] == 1.0
    assert {(c["batch"], c["length"]) for c in manifest["parity"]["cases"]} >= {(1, 8), (16, 64)}
    assert manifest["fused_operators"]["offline_fusion"]["Attention"] == 2  # eager export: both layers fuse
    assert manifest["fused_operators"]["offline_fusion"]["SkipLayerNormalization"] >= 2
    assert (
        manifest["opset"] == 17 and manifest["source"]["sha256"] and manifest["command"].startswith("codir-edge export")
    )
    assert {"onnxruntime", "codir-edge"} <= set(manifest["versions"])
    assert json.loads((bundle / "labels.json").read_text()) == ["0", "1"]
    assert set(manifest["deployment"]["threads"]["1"]) == {"fp32", "int8"}
    strings = next(v for v in manifest["variants"] if v["name"] == "strings")
    assert strings["takes"] == "text" and strings["inputs"] == ["text"]
    assert strings["from"] == "onnx/model_quantized.onnx"
    assert strings["agreement"]["texts"] >= 100 and strings["agreement"]["non_ascii"] >= 5
    assert strings["agreement"]["source"] == "0 task and 120 generated sentences"


def test_optimum_loads_each_variant_and_agrees_with_onnxruntime(bundle, backbone_dir):
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bundle)
    inputs = tokenizer(["a gripping film", "dull"], padding=True, return_tensors="np")
    for file_name in ("model.onnx", "model_quantized.onnx"):
        model = ORTModelForSequenceClassification.from_pretrained(bundle, subfolder="onnx", file_name=file_name)
        ours = ort.InferenceSession(str(bundle / "onnx" / file_name), providers=["CPUExecutionProvider"])
        expected = ours.run(None, {k: v.astype(np.int64) for k, v in inputs.items()})[0]
        got = model(**{k: v for k, v in inputs.items()}).logits
        np.testing.assert_allclose(np.asarray(got), expected, atol=1e-5)


def test_verify_passes_then_catches_tampering(bundle, tmp_path):
    import shutil

    assert invoke("verify", bundle).exit_code == 0
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    data = bytearray((copy / "onnx/model_quantized.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "onnx/model_quantized.onnx").write_bytes(bytes(data))
    (copy / "extra.bin").write_bytes(b"x")
    result = invoke("verify", copy)
    assert_one_line_error(result, 1, "onnx/model_quantized.onnx: sha256 differs", "extra.bin: not in the manifest")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"].append({"path": "../outside.txt", "sha256": "0" * 64, "size": 1})
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(invoke("verify", copy), 2, "leaves the bundle")


def test_verify_checks_one_model_against_its_bundle_and_each_fix_it_suggests_works(bundle, classifier, tmp_path,
                                                                                   monkeypatch):  # fmt: skip
    import shutil

    result = invoke("verify", bundle / "onnx/model_quantized.onnx")
    assert result.exit_code == 0 and "file matches its hash; 1 model loads" in result.output, result.output
    monkeypatch.chdir(bundle / "onnx")  # a relative path from inside onnx/ finds the bundle above it
    assert invoke("verify", Path("model_quantized.onnx")).exit_code == 0
    monkeypatch.chdir(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    data = bytearray((copy / "onnx/model_quantized.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "onnx/model_quantized.onnx").write_bytes(bytes(data))
    assert_one_line_error(invoke("verify", copy / "onnx/model_quantized.onnx"), 1,
                          "onnx/model_quantized.onnx: sha256 differs")  # fmt: skip
    assert invoke("verify", copy / "onnx/model.onnx").exit_code == 0  # only the file asked about is judged
    assert_one_line_error(invoke("verify", bundle / "labels.json"), 2, "is not an .onnx or .ort file")

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(bundle / "onnx/model.onnx", alone / "model.onnx")
    assert_one_line_error(invoke("verify", alone / "model.onnx"), 2, "is not in a bundle", "pass the bundle folder")
    assert invoke("verify", bundle).exit_code == 0  # the fix: the bundle folder it came from

    result = invoke("verify", classifier)
    assert_one_line_error(result, 2, "is a model folder, not a bundle", f"codir-edge export {classifier} --out BUNDLE")
    exported = tmp_path / "exported"
    assert invoke("export", classifier, "--out", exported, "--no-ort", "--quantize", "none", "-q").exit_code == 0
    assert invoke("verify", exported).exit_code == 0  # the fix, followed to the letter


def test_evaluate_scores_what_ships(bundle, classifier, sst2_small, tmp_path):
    import shutil

    out = tmp_path / "bundle.json"
    result = invoke("evaluate", bundle, "--task", "sst2", "--data", sst2_small, "--json", out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    alternates = {v["name"] for v in manifest["variants"] if v.get("alternate_of")}
    scored = {v["variant"]: v for v in report["variants"]}
    expected = ["fp32", "int8", "int8-fixed", "ort-fixed", "coreml", "nnapi", "ort"]
    assert [n for n in scored if n not in alternates] == expected  # strings:
    assert all(v["runtime"] == "onnxruntime" and v["examples"] == 32 for v in report["variants"])  # via its twin
    assert report["task"] == "sst2" and f"report: {out}" in result.output
    torch_json = tmp_path / "torch.json"
    assert invoke("evaluate", classifier, "--task", "sst2", "--data", sst2_small, "--json", torch_json).exit_code == 0
    torch_report = json.loads(torch_json.read_text())
    assert torch_report["runtime"] == "pytorch"
    assert {v["max_length"] for v in report["variants"]} == {64} and torch_report["max_length"] == 128  # as exported
    fp32, int8, ort = scored["fp32"], scored["int8"], scored["ort"]
    assert fp32["metrics"] == torch_report["metrics"]  # the fp32 graph is held to PyTorch
    assert ort["metrics"] == int8["metrics"]  # the .ort file is the INT8 graph in mobile form
    assert scored["ort-fixed"]["metrics"] == scored["int8-fixed"]["metrics"]  # fed at its fixed shape, both

    single = tmp_path / "int8.json"
    args = ("--task", "sst2", "--data", sst2_small, "--json", single)
    assert invoke("evaluate", bundle / "onnx/model_quantized.onnx", *args).exit_code == 0
    assert json.loads(single.read_text())["metrics"] == int8["metrics"]
    assert json.loads(single.read_text())["max_length"] == 64  # a file in a bundle: the bundle's length

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(bundle / "onnx/model_quantized.onnx", alone / "model.int8.onnx")
    result = invoke("evaluate", alone / "model.int8.onnx", "--task", "sst2", "--data", sst2_small)
    assert_one_line_error(result, 2, "no tokenizer.json beside it")
    shutil.copy(bundle / "tokenizer.json", alone / "tokenizer.json")  # the fix it names
    assert invoke("evaluate", alone / "model.int8.onnx", "--task", "sst2", "--data", sst2_small).exit_code == 0
    assert_one_line_error(invoke("evaluate", tmp_path / "missing.onnx", "--task", "sst2", "--data", sst2_small), 2,
                          "does not exist")  # fmt: skip
    too_long = invoke("evaluate", bundle, "--task", "sst2", "--data", sst2_small, "--max-length", "4096")
    assert_one_line_error(too_long, 2, "--max-length 4096 exceeds the")


def test_two_exports_to_one_out_leave_one_whole_bundle(classifier, tmp_path):
    """Started together, both pass the up-front check; the second to finish is refused (exit 2) and
    the first's bundle is untouched."""
    from cli_helpers import run_cli

    out = tmp_path / "bundle"
    runs = {length: run_cli(["export", classifier, "--out", out, "--max-length", length, "--no-ort", "-q"])
            for length in (32, 64)}  # fmt: skip
    done = {length: (process.wait(300), process.communicate()) for length, process in runs.items()}
    assert sorted(code for code, _ in done.values()) == [0, 2], done
    winner = next(length for length, (code, _) in done.items() if code == 0)
    loser_err = next(streams[1] for code, streams in done.values() if code == 2)
    errors = [line for line in loser_err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "already exists" in errors[0] and "--overwrite" in errors[0], loser_err
    assert invoke("verify", out).exit_code == 0
    assert json.loads((out / "manifest.json").read_text())["config"]["max_length"] == winner
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_export_with_task_data_scores_every_variant(tmp_path, classifier, sst2_small):
    out = tmp_path / "b"
    result = invoke("export", classifier, "--out", out, "--task", "sst2", "--data", sst2_small, "--quantize",
                    "static", "--calibration-samples", "16", "--max-accuracy-drop", "100", "--no-ort", "--fp16",
                    "--no-optimize")  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    by_name = {v["name"]: v for v in manifest["variants"]}
    assert [n for n, v in by_name.items() if not v.get("alternate_of")] == ["fp32", "int8", "fp16", "strings"]
    assert all("accuracy" in by_name[n]["accuracy"] for n in ("fp32", "int8", "fp16"))
    assert by_name["strings"]["agreement"]["source"] == "32 task and 88 generated sentences"
    assert by_name["int8"]["quantization"] == "static" and by_name["int8"]["format"] == "QDQ"
    assert manifest["parity"]["source"] == "task sentences"
    assert invoke("verify", out).exit_code == 0


def test_four_bit_embeddings_shrink_every_int8_file_which_still_runs_where_it_ships(tmp_path, classifier, bundle,
                                                                                     sst2_small):  # fmt: skip
    import onnx

    from codir_edge.onnx.session import create_session

    out = tmp_path / "q4"
    result = invoke("export", classifier, "--out", out, "--max-length", "64", "--embedding-bits", "4", "--task", "sst2",
                    "--data", sst2_small, "--max-accuracy-drop", "100", "--fixed-shape", "off")  # fmt: skip
    assert result.exit_code == 0, result.output
    left_out = next(line for line in result.output.splitlines() if line.startswith("note: --embedding-bits 4"))
    assert "fused.dynamic" in left_out and "plain" not in left_out  # plain.qdq and plain.dynamic(-pt) take it
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["embedding_bits"] == 4
    int8 = [v for v in manifest["variants"] if v["name"].startswith("int8")]
    for variant in int8:  # every INT8 file the deployment table can name
        ops = {n.op_type for n in onnx.load(str(out / variant["file"])).graph.node}
        assert "GatherBlockQuantized" in ops and "QEmbedLayerNormalization" not in ops, variant["name"]
        assert "GatherBlockQuantized" in variant["runtime"]["contrib_operators"]
    eight_bit = (bundle / "onnx/model_quantized.onnx").stat().st_size
    assert (out / "onnx/model_quantized.onnx").stat().st_size < 0.8 * eight_bit
    ids = {"input_ids": np.array([[101, 2023, 3185, 102]]), "attention_mask": np.ones((1, 4), np.int64),
           "token_type_ids": np.zeros((1, 4), np.int64)}  # fmt: skip
    files = ("onnx/model_quantized.onnx", "onnx/model.ort")
    logits = [create_session(out / name, 1).run(None, ids)[0] for name in files]
    np.testing.assert_allclose(logits[0], logits[1], atol=1e-5)  # the ORT format holds the packed table
    strings = create_session(out / "onnx/model.strings.onnx", 1, custom_ops=True)
    assert np.isfinite(strings.run(None, {"text": np.array(["a fine film"])})[0]).all()
    assert invoke("verify", out).exit_code == 0


def test_four_bit_embeddings_refuse_a_table_no_block_divides_in_one_line(tmp_path, backbone_dir, no_leftovers):
    model = build_tiny_bert(tmp_path / "m", backbone_dir, hidden=24)  # 24 values a row: no block of 16, 32, 64
    out = tmp_path / "out"
    result = invoke("export", model, "--out", out, "--embedding-bits", "4", "--no-optimize", "--fixed-shape", "off")
    assert_one_line_error(result, 1, "--embedding-bits 4 cannot apply to this model", "drop --embedding-bits 4")
    no_leftovers(out)


def test_parity_beyond_atol_fails_with_the_worst_difference(tmp_path, classifier, no_leftovers):
    out = tmp_path / "b"
    result = invoke("export", classifier, "--out", out, "--atol", "1e-12", "--no-ort", "--quantize", "none")
    assert_one_line_error(result, 1, "ONNX output differs from PyTorch by up to", "--atol 1e-12")
    no_leftovers(out)


def _bad_cases(tmp_path: Path, classifier: Path, backbone_dir: Path) -> dict:
    funnel = tmp_path / "funnel"
    funnel.mkdir()
    (funnel / "config.json").write_text(
        json.dumps({"model_type": "funnel", "architectures": ["FunnelForSequenceClassification"]})
    )
    (funnel / "model.safetensors").write_bytes(b"")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (corrupt / name).write_bytes((classifier / name).read_bytes())
    (corrupt / "model.safetensors").write_bytes(b"not safetensors at all")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return {
        "not a folder": ([tmp_path / "missing"], "does not exist"),
        "unsupported architecture": ([funnel], "'funnel' model", "bert, roberta"),
        "backbone": ([backbone_dir], "not a sequence classifier"),
        "corrupt weights": ([corrupt], "cannot load the weights"),
        "static without data": ([classifier, "--quantize", "static"], "--quantize static calibrates"),
        "unwritable out": ([classifier, "--out", a_file / "sub"], "inside the file"),
        "opset": ([classifier, "--opset", "99"], "--opset 99"),
        "embedding bits": ([classifier, "--embedding-bits", "5"], "--embedding-bits 5: use 8"),
        "4-bit without int8": (
            [classifier, "--embedding-bits", "4", "--quantize", "none"],
            "--embedding-bits 4 applies to the INT8 files",
        ),
    }


@pytest.mark.parametrize("case", ["not a folder", "unsupported architecture", "backbone", "corrupt weights",
                                  "static without data", "unwritable out", "opset", "embedding bits",
                                  "4-bit without int8"])  # fmt: skip
def test_bad_input_is_one_line_exit_2(tmp_path, classifier, backbone_dir, no_leftovers, case):
    args, *fragments = _bad_cases(tmp_path, classifier, backbone_dir)[case]
    out = tmp_path / "out"
    if "--out" not in args:
        args = [*args, "--out", out]
    assert_one_line_error(invoke("export", *args), 2, *fragments)
    no_leftovers(out)


def _strings_and_reference(bundle: Path):
    from transformers import AutoTokenizer

    from codir_edge.onnx.session import create_session

    strings = create_session(bundle / "onnx/model.strings.onnx", 1, custom_ops=True)
    plain = create_session(bundle / "onnx/model_quantized.onnx", 1)
    return strings, plain, AutoTokenizer.from_pretrained(bundle)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=300)
    | st.sampled_from(["", " ", "[UNK]", "a" * 150, "word " * 200, "Ἀθῆναι ΟΔΟΣ"])
)
def test_strings_model_agrees_with_tokenizer_and_model_on_any_text(bundle, text):
    """Any Unicode text (control characters, accents, scripts, emoji, over-long words, over-long texts):
    raw text through model.strings.onnx gives the logits of the Hugging Face tokenizer + the same graph.
    Except NUL: onnxruntime-extensions' string ops end a string at its first NUL (documented gap)."""
    if bundle not in _STRINGS_CACHE:
        _STRINGS_CACHE[bundle] = _strings_and_reference(bundle)
    strings, plain, tokenizer = _STRINGS_CACHE[bundle]
    logits, probabilities = strings.run(None, {"text": np.array([text], dtype=object)})
    encoded = tokenizer(text, truncation=True, max_length=64, return_tensors="np")
    expected = plain.run(None, {k: v.astype(np.int64) for k, v in encoded.items()})[0]
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


_STRINGS_CACHE: dict = {}


@pytest.fixture(scope="module")
def pair_bundle(tmp_path_factory, classifier, glue_dir) -> Path:
    from conftest import cut_glue

    work = tmp_path_factory.mktemp("pair")
    mrpc = cut_glue(glue_dir, "MRPC", work / "MRPC", 8, 24)
    out = work / "b"
    result = invoke("export", classifier, "--out", out, "--task", "mrpc", "--data", mrpc, "--max-length", "32",
                    "--quantize", "none", "--no-ort", "--max-accuracy-drop", "100")  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_pair_task_strings_model_takes_a_text_pair_checked_on_task_pairs(pair_bundle):
    strings = next(
        v for v in json.loads((pair_bundle / "manifest.json").read_text())["variants"] if v["name"] == "strings"
    )
    assert strings["inputs"] == ["text", "text_pair"]
    assert strings["agreement"]["source"] == "24 task and 96 generated sentences"
    assert strings["agreement"]["texts"] >= 120  # then the hard cases, paired with each other


_WORDS = st.sampled_from(["word", "the", "x", "Café", "!", "naïve", "日本", "[SEP]", "unbelievably", ""])


@settings(max_examples=120, deadline=None)
@given(first=st.lists(_WORDS, max_size=40).map(" ".join) | st.text(max_size=60),
       second=st.lists(_WORDS, max_size=40).map(" ".join) | st.text(max_size=60))  # fmt: skip
def test_pair_strings_model_truncates_longest_first_like_the_tokenizer(pair_bundle, first, second):
    """Pairs of any lengths around --max-length 32 (either one empty, either one longer) agree with
    tokenizer(first, second, truncation=True) + the same graph."""
    from transformers import AutoTokenizer

    from codir_edge.onnx.session import create_session

    first, second = first.replace("\x00", ""), second.replace("\x00", "")
    if pair_bundle not in _STRINGS_CACHE:
        _STRINGS_CACHE[pair_bundle] = (
            create_session(pair_bundle / "onnx/model.strings.onnx", 1, custom_ops=True),
            create_session(pair_bundle / "onnx/model.onnx", 1),
            AutoTokenizer.from_pretrained(pair_bundle),
        )
    session, plain, tokenizer = _STRINGS_CACHE[pair_bundle]
    feed = {"text": np.array([first], dtype=object), "text_pair": np.array([second], dtype=object)}
    encoded = tokenizer(first, second, truncation=True, max_length=32, return_tensors="np")
    expected = plain.run(None, {k: v.astype(np.int64) for k, v in encoded.items()})[0]
    np.testing.assert_allclose(session.run(None, feed)[0], expected, atol=1e-5)


def _unigram_tokenizer_classifier(tmp_path: Path, classifier: Path) -> Path:
    """The tiny classifier with a real (trained here) SentencePiece-style Unigram tokenizer instead of WordPiece."""
    import shutil

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path / "unigram"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(classifier / name, folder / name)
    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer, unigram.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=60, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"],
                                      unk_token="[UNK]")  # fmt: skip
    unigram.train_from_iterator(["a gripping film", "a dull plot", "the cast shines"] * 20, trainer)
    PreTrainedTokenizerFast(tokenizer_object=unigram, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]").save_pretrained(folder)  # fmt: skip
    return folder


def test_tokenizer_in_graph_needs_special_tokens_and_is_skipped_when_not_asked(tmp_path, classifier, no_leftovers):
    """A Unigram tokenizer saved without a post-processor: one text gets no [CLS] or [SEP], so an empty
    text is an empty input; asked for, strings-in is refused; by default it is skipped, with a note."""
    folder = _unigram_tokenizer_classifier(tmp_path, classifier)
    out = tmp_path / "out"
    result = invoke("export", folder, "--out", out, "--tokenizer-in-graph", "--no-ort", "--quantize", "none")
    assert_one_line_error(result, 2, "adds no special tokens", "--no-tokenizer-in-graph")
    no_leftovers(out)
    for again in (out, tmp_path / "again"):  # a second command in one process is told again
        result = invoke("export", folder, "--out", again, "--no-ort", "--quantize", "none")
        assert result.exit_code == 0, result.output
        assert "note: no model.strings.onnx: the tokenizer adds no special tokens" in result.output
    variants = json.loads((out / "manifest.json").read_text())["variants"]
    assert [v["name"] for v in variants if not v.get("alternate_of")] == ["fp32"]


def test_a_tokenizer_kind_without_a_graph_is_named_in_the_refusal():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from codir_edge.core.errors import InputError
    from codir_edge.export.strings.rules import graph_tokenizer_kind

    words = Tokenizer(models.WordLevel({"[UNK]": 0, "film": 1}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(InputError, match="SentencePiece Unigram .XLM-R. tokenizers, not WordLevel"):
        graph_tokenizer_kind(PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]"))


def _near_tie_task(tmp_path: Path, backbone_dir: Path, glue_dir: Path) -> tuple[Path, Path]:
    """A tiny classifier whose bias puts half the SST-2 dev sentences within a hair of the decision
    boundary, and a dev file labelled with its own fp32 predictions: fp32 scores 100%, and the noise of
    INT8 flips some of the near ties, a real accuracy drop."""
    import torch
    from conftest import cut_glue
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = build_tiny_bert(tmp_path / "m", backbone_dir, layers=2, hidden=32, id2label={0: "0", 1: "1"}, seed=3)
    data = cut_glue(glue_dir, "SST-2", tmp_path / "SST-2", 8, 200)
    rows = [line.split("\t") for line in (data / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        logits = model(**tokenizer([r[0] for r in rows], padding=True, return_tensors="pt")).logits
        margins = logits[:, 1] - logits[:, 0]
        model.classifier.bias[1] -= margins.median()
        labels = (margins - margins.median() > 0).long().tolist()
    model.save_pretrained(model_dir)
    lines = ["sentence\tlabel", *[f"{r[0]}\t{y}" for r, y in zip(rows, labels, strict=True)]]
    (data / "dev.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return model_dir, data


def test_accuracy_drop_beyond_the_limit_fails_and_names_the_variant(tmp_path, backbone_dir, glue_dir, no_leftovers):
    model_dir, data = _near_tie_task(tmp_path, backbone_dir, glue_dir)
    out = tmp_path / "b"
    args = [model_dir, "--out", out, "--task", "sst2", "--data", data, "--no-ort", "--no-optimize",
            "--no-tokenizer-in-graph"]  # fmt: skip
    result = invoke("export", *args, "--max-accuracy-drop", "0.2")
    # near-tie labels flip under any rounding: no MatMul kept in fp32 saves it, and the search says so
    assert_one_line_error(result, 1, "INT8 loses", "--max-accuracy-drop 0.2", "kept in fp32", "--quantize none")
    no_leftovers(out)
    result = invoke("export", *args, "--max-accuracy-drop", "100", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    variants = {v["name"]: v for v in json.loads((tmp_path / "r.json").read_text())["variants"]}
    assert variants["fp32"]["accuracy"]["accuracy"] >= 0.99 and variants["int8"]["accuracy_drop_points"] > 0.2


def test_profile_measures_every_variant_of_an_exported_bundle(bundle, tmp_path):
    out = tmp_path / "report.json"
    result = invoke("profile", bundle, "--runs", "3", "--warmup", "1", "--seq-lens", "16", "--batch-sizes", "1",
                    "--threads", "1", "--json", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    measured = {row["target"] for row in json.loads(out.read_text())["results"]}
    assert measured == {"fp32", "int8", "ort", "int8-fixed", "ort-fixed", "coreml", "nnapi"}  # alternates: as their


def test_every_variant_beyond_the_allowed_drop_is_named_at_once(tmp_path):
    """Scoring collects every failing variant before it fails, so one run shows every remedy."""
    from codir_edge.core.errors import CheckFailedError
    from codir_edge.data import get_task
    from codir_edge.export.config import ExportConfig
    from codir_edge.export.plan import ExportPlan
    from codir_edge.export.steps import score_variants

    variants = [
        {"name": "fp32", "accuracy": {"accuracy": 0.90}},
        {"name": "int8", "accuracy": {"accuracy": 0.80}},
        {"name": "int8-fixed", "fixed_shape": [1, 8], "accuracy": {"accuracy": 0.895}},
        {"name": "fp16", "accuracy": {"accuracy": 0.85}},
    ]
    config = ExportConfig(max_accuracy_drop=1.0)
    plan = ExportPlan(tmp_path, None, config, "avx2", get_task("sst2"), None, None, None)
    with pytest.raises(CheckFailedError) as failed:
        score_variants(variants, tmp_path, None, plan)
    message = str(failed.value)
    assert "the int8 variant loses 10.00 points" in message and "the fp16 variant loses 5.00 points" in message
    assert "drop --fp16" in message and "int8-fixed" not in message
    assert variants[2]["accuracy_drop_points"] == pytest.approx(0.5)


@pytest.mark.parametrize("fixed_shape", ["auto", "1x8"])
def test_a_fixed_shape_variant_beyond_the_drop_is_left_out_unless_the_shape_was_asked_for(tmp_path, fixed_shape,
                                                                                          capsys):  # fmt: skip
    """--fixed-shape auto adds the QDQ, Core ML and NNAPI graphs on its own: one that loses too much is not
    shipped (its file, and the .ort made from it with its operator list, leave the bundle) and the export goes
    on; a shape the user named is a promise, so it fails."""
    from codir_edge.core.errors import CheckFailedError
    from codir_edge.data import get_task
    from codir_edge.export.config import ExportConfig
    from codir_edge.export.plan import ExportPlan
    from codir_edge.export.steps import score_variants

    (tmp_path / "onnx").mkdir()
    files = ["onnx/model_quantized.fixed.onnx", "onnx/model_quantized.fixed.ort",
             "onnx/required_operators.fixed.config", "onnx/model.nnapi.onnx", "onnx/model.coreml.onnx"]  # fmt: skip
    for name in files:
        (tmp_path / name).write_text("x")
    variants = [
        {"name": "fp32", "file": "onnx/model.onnx", "accuracy": {"accuracy": 0.90}},
        {"name": "int8", "file": "onnx/model_quantized.onnx", "accuracy": {"accuracy": 0.899}},
        {"name": "int8-fixed", "file": files[0], "fixed_shape": [1, 8], "accuracy": {"accuracy": 0.88}},
        {"name": "ort-fixed", "file": files[1], "from": files[0], "fixed_shape": [1, 8]},
        {"name": "coreml", "file": files[4], "fixed_shape": [1, 8], "accuracy": {"accuracy": 0.90}},
        {"name": "nnapi", "file": files[3], "fixed_shape": [1, 8], "accuracy": {"accuracy": 0.87}},
    ]
    plan = ExportPlan(tmp_path, None, ExportConfig(max_accuracy_drop=1.0, fixed_shape=fixed_shape), "avx2",
                      get_task("sst2"), None, None, None)  # fmt: skip
    if fixed_shape != "auto":
        with pytest.raises(CheckFailedError, match="the int8-fixed variant loses 2.00 points.*the nnapi variant"):
            score_variants(variants, tmp_path, None, plan)
        return
    left_out = score_variants(variants, tmp_path, None, plan)
    assert [v["name"] for v in variants] == ["fp32", "int8", "coreml"]
    # the manifest's record of each: a CI job reads why a variant is missing without the export's log
    assert [(r["name"], r["file"]) for r in left_out] == [("int8-fixed", files[0]), ("ort-fixed", files[1]),
                                                          ("nnapi", files[3])]  # fmt: skip
    assert left_out[0]["why"].startswith("the int8-fixed variant loses 2.00 points of accuracy against fp32")
    assert left_out[0]["accuracy_drop_points"] == pytest.approx(2.0) and left_out[0]["fixed_shape"] == [1, 8]
    assert left_out[1]["why"] == f"made from {files[0]}, which was left out"
    assert "left_out_because" not in json.dumps(variants)
    assert [(tmp_path / name).exists() for name in files] == [False, False, False, False, True]
    err = capsys.readouterr().err
    assert "the nnapi variant loses 3.00 points of accuracy against fp32" in err and "left out of the bundle" in err
