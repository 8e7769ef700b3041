"""--task ner through the chain, on real CoNLL-2003 sentences and the real MiniLM tokenizer: finetune
writes a token classifier, compress distils it (kd and codir paired bit for bit at weight 0), export
writes per-token logits held to PyTorch, evaluate scores folder and bundle alike, transformers.js tags
the bundle as Python does, and bad input is one line with file and line, nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import invoke
from conftest import build_tiny_bert
from hypothesis import given, settings
from hypothesis import strategies as st

CONLL = Path(__file__).resolve().parents[2] / "shared" / "data" / "conll2003"


def cut_conll(folder: Path, train: int, dev: int) -> Path:
    """The first ``train`` and ``dev`` sentences of CoNLL-2003's train and dev files."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("dev", dev)):
        sentences = (CONLL / f"{split}.txt").read_text(encoding="utf-8").split("\n\n")[:count]
        (folder / f"{split}.txt").write_text("\n\n".join(sentences) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def ner_data(tmp_path_factory) -> Path:
    return cut_conll(tmp_path_factory.mktemp("conll"), 160, 48)


@pytest.fixture(scope="module")
def tagger(tmp_path_factory, backbone_dir, ner_data) -> Path:
    """A tiny 4-layer BERT fine-tuned as a tagger for one epoch (finetune --task ner)."""
    root = tmp_path_factory.mktemp("tagger")
    backbone = build_tiny_bert(root / "backbone", backbone_dir, num_labels=None, layers=4, hidden=64)
    out = root / "tagger"
    result = invoke("finetune", "--model", backbone, "--task", "ner", "--data", ner_data, "--epochs", "1",
                    "--batch-size", "16", "--lr", "1e-3", "--out", out, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_finetune_writes_a_token_classifier_with_its_labels(tagger):
    config = json.loads((tagger / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert [config["id2label"][str(i)] for i in range(9)] == [
        "O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]  # fmt: skip
    metrics = json.loads((tagger / "metrics.json").read_text())
    assert metrics["task"] == "ner" and metrics["metric"] == "f1" and 0 <= metrics["dev"]["f1"] <= 1
    assert {"precision", "recall", "token_accuracy", "f1_PER"} <= set(metrics["dev"])


def test_evaluate_scores_the_folder_as_finetune_did(tagger, ner_data, tmp_path):
    report = tmp_path / "e.json"
    result = invoke("evaluate", tagger, "--task", "token-classification", "--data", ner_data, "--json", report)
    assert result.exit_code == 0, result.output
    scored = json.loads(report.read_text())["metrics"]
    assert scored["f1"] == pytest.approx(json.loads((tagger / "metrics.json").read_text())["dev"]["f1"], abs=1e-9)


def test_codir_at_weight_zero_is_kd_bit_for_bit_and_the_term_is_logged(tagger, ner_data, tmp_path):
    from safetensors.numpy import load_file

    common = ["--teacher", tagger, "--task", "ner", "--data", ner_data, "--student-layers", "2", "--epochs", "1",
              "--batch-size", "16", "--quiet"]  # fmt: skip
    runs = {}
    arms = {"kd": ["--objective", "kd"], "codir0": ["--objective", "codir", "--contrastive-weight", "0"],
            "codir": ["--objective", "codir"]}  # fmt: skip
    for name, extra in arms.items():
        result = invoke("compress", *common, *extra, "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
        runs[name] = load_file(str(tmp_path / name / "model.safetensors"))
    assert all(np.array_equal(runs["kd"][k], runs["codir0"][k]) for k in runs["kd"])
    assert any(not np.array_equal(runs["kd"][k], runs["codir"][k]) for k in runs["kd"])
    metrics = json.loads((tmp_path / "codir" / "metrics.json").read_text())
    assert metrics["compress_stage"] == "token" and metrics["student_layers"] == 2
    assert {"contrastive", "contrastive_top1", "contrastive_grad_share"} <= set(metrics["contrastive_end"])
    config = json.loads((tmp_path / "codir" / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"] and config["num_hidden_layers"] == 2


LABELS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def random_tagger(folder: Path, backbone_dir: Path) -> Path:
    """An untrained 2-layer BERT tagger whose large random weights give every label somewhere: what the
    app test needs (a briefly trained tiny tagger says O for every word, which any alignment matches)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=128, initializer_range=0.3,
                        id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})  # fmt: skip
    BertForTokenClassification(config).save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(backbone_dir)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def ner_bundle(backbone_dir, ner_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ner-bundle")
    tagger = random_tagger(root / "tagger", backbone_dir)
    out = root / "bundle"
    result = invoke("export", tagger, "--task", "ner", "--data", ner_data, "--out", out, "--max-length", "64",
                    "--max-accuracy-drop", "100", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_export_writes_per_token_logits_held_to_pytorch(ner_bundle, ner_data, tmp_path):
    import onnxruntime as ort

    from codir_edge.data.fast_tokenizer import find_tokenizer
    from codir_edge.data.ner import read_tagged

    manifest = json.loads((ner_bundle / "manifest.json").read_text())
    assert manifest["token_classification"]["labels"][0] == "O"
    assert manifest["parity"]["max_abs_diff"] <= manifest["parity"]["atol"]
    output = ort.InferenceSession(str(ner_bundle / "onnx" / "model.onnx")).get_outputs()[0]
    assert output.name == "logits" and len(output.shape) == 3
    int8 = next(v for v in manifest["variants"] if v["name"] == "int8")
    assert "f1" in int8["accuracy"] and manifest["tuning"]["timed"]
    timed = manifest["tuning"]["median_ms"]["t1/real"]
    assert {"int8:plain.dynamic", "int8:fused.dynamic", "int8:fused.dynamic-pt", "int8:o2.optimum"} <= set(timed)
    table = manifest["deployment"]["threads"]
    assert table["1"] == {"fp32": "fp32", "int8": "int8"} and all(t["fp32"] == "fp32" for t in table.values())
    by_name = {v["name"]: v for v in manifest["variants"]}
    for count, picks in table.items():  # each count's INT8 file is shipped, and is the candidate it timed fastest
        chosen = manifest["tuning"]["per_threads"][count]["int8"]["chosen"].removeprefix("int8:")
        assert by_name[picks["int8"]]["candidate"] == chosen and (ner_bundle / by_name[picks["int8"]]["file"]).is_file()
    scored = manifest["tuning"]["int8_dev_scores"]
    assert scored and set(scored) <= {n.removeprefix("int8:") for n in timed}
    assert all("f1" in v for v in scored.values())
    fixed = {v["name"]: v for v in manifest["variants"] if "fixed_shape" in v}  # --ort: a fixed shape by default
    assert set(fixed) == {"int8-fixed", "ort-fixed", "coreml", "nnapi"}
    assert {tuple(v["fixed_shape"]) for v in fixed.values()} == {tuple(fixed["int8-fixed"]["fixed_shape"])}
    longest = max(len(ids) for ids in find_tokenizer(ner_bundle)([" ".join(w) for w in read_tagged(
        ner_data, "dev").words], truncation=True, max_length=64)["input_ids"])  # fmt: skip
    assert fixed["int8-fixed"]["fixed_shape"] == [1, min(64, -(-longest // 8) * 8)]  # a tagger's: no dev row cut
    assert fixed["int8-fixed"]["truncated_rows"] == 0 and "f1" in fixed["int8-fixed"]["fp32_at_shape"]
    assert fixed["int8-fixed"]["format"] == "QDQ" and fixed["nnapi"]["input_dtype"] == "int32"
    assert all("f1" in fixed[name]["accuracy"] for name in ("int8-fixed", "coreml", "nnapi"))
    report = tmp_path / "b.json"
    assert invoke("evaluate", ner_bundle, "--task", "ner", "--data", ner_data, "--json", report).exit_code == 0
    scored = {v["variant"]: v["metrics"] for v in json.loads(report.read_text())["variants"]}
    recorded = {v["name"]: v["accuracy"]["f1"] for v in manifest["variants"] if "accuracy" in v}
    assert {"int8", "int8-fixed", "coreml", "nnapi"} <= set(recorded)
    assert {name: scored[name]["f1"] for name in recorded} == pytest.approx(recorded, abs=1e-9)
    assert invoke("verify", ner_bundle).exit_code == 0


def _strings_outputs(bundle: Path, text: str) -> dict:
    from codir_edge.onnx.session import create_session

    if bundle not in _SESSIONS:
        _SESSIONS[bundle] = create_session(bundle / "onnx" / "model.strings.onnx", 1, custom_ops=True)
    session = _SESSIONS[bundle]
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"text": np.array([text], dtype=object)}), strict=True))


_SESSIONS: dict = {}


def test_the_strings_graph_tags_raw_text_where_python_does_and_says_where_each_piece_is(ner_bundle, ner_data,
                                                                                         tmp_path):  # fmt: skip
    """Raw text in: the label of each word's first piece is the tag Python's onnxruntime gives that word
    on the graph the strings model was built on (every dev sentence, long ones cut where Python cuts), and
    each piece's offsets point at its own characters in the text as given, in code points and in UTF-16."""
    from codir_edge.data.ner import read_tagged

    strings = next(v for v in json.loads((ner_bundle / "manifest.json").read_text())["variants"]
                   if v["name"] == "strings")  # fmt: skip
    assert strings["outputs"] == ["logits", "probabilities", "labels", "offsets", "offsets_utf16", "word_ids"]
    assert strings["agreement"]["source"] == "48 dev and 72 generated sentences"
    data = with_long_sentences(ner_data, ner_bundle, tmp_path / "long")
    words, tags = python_tags(ner_bundle, data, strings["from"].removeprefix("onnx/"))
    assert len(words) == len(read_tagged(ner_data, "dev")) + 4
    for sentence, expected in zip(words, tags, strict=True):
        out = _strings_outputs(ner_bundle, " ".join(sentence))
        first = {}
        for piece, word in enumerate(out["word_ids"].tolist()):
            first.setdefault(word, piece)
        got = [str(out["labels"][first[w]]) if w in first else "O" for w in range(len(sentence))]
        assert got == expected
    text = "  Peter Blackburn\tflew to   Zürich 😀 on Friday.\n"
    out = _strings_outputs(ner_bundle, text)
    pieces = out["offsets"].tolist()[1:-1]
    surfaces = [text[a:b] for a, b in pieces]
    assert "".join(surfaces) == "".join(text.split())  # every character of every word, once, in order
    assert [s.lower() for s in surfaces[:2]] == ["peter", "blackburn"]
    utf16 = text.encode("utf-16-le")
    assert [utf16[2 * a : 2 * b].decode("utf-16-le") for a, b in out["offsets_utf16"].tolist()[1:-1]] == surfaces
    assert out["word_ids"].tolist()[0] == out["word_ids"].tolist()[-1] == -1
    assert max(out["word_ids"].tolist()) == len(text.split()) - 1


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=120)
       | st.lists(st.sampled_from(["Peter", "[SEP]", "Zürich", "😀", "U.S.", "naïve", "日本", " ", "\t", "x" * 120]),
                  max_size=30).map("".join))  # fmt: skip
def test_strings_graph_offsets_are_the_tokenizer_s_on_any_text(ner_bundle, text):
    """Any Unicode (NUL aside: the extensions' string ops end a string there): the pieces are the tokenizer's
    and their offsets its ``offset_mapping``, whatever the normalizer did to the characters in between,
    cut at the last whole word that fits in 64 pieces."""
    from transformers import AutoTokenizer

    from codir_edge.export.strings.offsets import python_reference

    if "tokenizer" not in _SESSIONS:
        _SESSIONS["tokenizer"] = AutoTokenizer.from_pretrained(ner_bundle)
    want = python_reference(text, _SESSIONS["tokenizer"], 64)
    out = _strings_outputs(ner_bundle, text)
    for key in ("offsets", "offsets_utf16"):
        assert [tuple(o) for o in out[key].tolist()] == want[key]
    assert out["word_ids"].tolist() == want["word_ids"] and out["logits"].shape[1] == len(want["input_ids"])


def test_a_tokenizer_the_offsets_graph_cannot_follow_is_one_line_or_a_note(tmp_path, ner_data):
    """A tagger with a SentencePiece tokenizer: asked for, the strings graph is refused in one line naming
    the way round; by default the export goes on without it, and says so."""
    from cli_helpers import assert_one_line_error
    from families import build_config, build_tokenizer
    from transformers import AutoModelForTokenClassification

    tokenizer = build_tokenizer("albert", ["a few words here", "and a few more there"] * 10)
    config = build_config("albert", tokenizer, len(LABELS))
    config.id2label, config.label2id = dict(enumerate(LABELS)), {n: i for i, n in enumerate(LABELS)}
    tagger = tmp_path / "tagger"
    AutoModelForTokenClassification.from_config(config).save_pretrained(tagger, safe_serialization=True)
    tokenizer.save_pretrained(tagger)
    common = ["export", tagger, "--task", "ner", "--max-length", "32", "--quantize", "none", "--no-ort"]
    result = invoke(*common, "--out", tmp_path / "refused", "--tokenizer-in-graph")
    assert_one_line_error(result, 2, "supports WordPiece tokenizers", "--no-tokenizer-in-graph")
    assert not (tmp_path / "refused").exists()
    result = invoke(*common, "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    assert "note: no model.strings.onnx: the strings graph of a tagger" in result.output
    assert not (tmp_path / "b" / "onnx" / "model.strings.onnx").exists()


def test_a_fixed_shape_tagger_is_fed_at_its_shape_and_misses_the_words_it_cuts(ner_bundle, ner_data, tmp_path):
    """A graph fixed at 16 pieces gives each sentence the logits of its first 16 pieces, as the dynamic
    graph does on the same ids cut there, and the words past the cut are tagged O: missed, not dropped."""
    from codir_edge.data.encode import Encoded
    from codir_edge.data.fast_tokenizer import find_tokenizer
    from codir_edge.data.ner import read_tagged
    from codir_edge.data.ner_encode import encode_tagged, word_tags
    from codir_edge.export.fixed import fix_shapes
    from codir_edge.onnx.tokens import onnx_token_logits

    fix_shapes(ner_bundle / "onnx" / "model.onnx", tmp_path / "fixed.onnx", 1, 16)
    dev = read_tagged(ner_data, "dev", LABELS)
    tokens = encode_tagged(find_tokenizer(ner_bundle), dev, LABELS, 64, True)
    rows = tokens.encoded
    cut = Encoded([ids[:16] for ids in rows.input_ids], [t[:16] for t in rows.token_type_ids], rows.targets,
                  rows.pad_id)  # fmt: skip
    fixed = onnx_token_logits(tmp_path / "fixed.onnx", rows)
    dynamic = onnx_token_logits(ner_bundle / "onnx" / "model.onnx", cut)
    long = [i for i, ids in enumerate(rows.input_ids) if len(ids) > 16]
    assert len(long) >= 10
    for i, (a, b) in enumerate(zip(fixed, dynamic, strict=True)):
        assert a.shape == (min(16, len(rows.input_ids[i])), len(LABELS))
        np.testing.assert_allclose(a, b, atol=1e-4)
    missed = 0
    for i in long:  # a word is tagged by its first piece when the graph saw it, else O
        tags = word_tags(fixed[i].argmax(-1), tokens.word_of[i], len(dev.words[i]), LABELS)
        first = {int(w): piece for piece, w in enumerate(tokens.word_of[i][:16]) if w >= 0}
        predicted = fixed[i].argmax(-1)
        missed += len(tags) - len(first)
        assert tags == [LABELS[int(predicted[first[w]])] if w in first else "O" for w in range(len(tags))]
    assert missed > 100


def test_export_without_data_times_only_what_needs_no_accuracy_check(backbone_dir, tmp_path):
    """Without --data nothing can catch a per-tensor graph's drop: only per-channel candidates and the
    peer's recipe are timed (at lengths 16 and 128), the table still names a file per thread count, and
    --quantize none ships fp32 alone, untuned."""
    tagger = random_tagger(tmp_path / "tagger", backbone_dir)
    out = tmp_path / "b"
    result = invoke("export", tagger, "--task", "ner", "--out", out, "--max-length", "32", "--no-ort",
                    "--tune-threads", "1,2", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["tuning"]["settings"]) == {"t1/16", "t1/32", "t2/16", "t2/32"}
    assert set(manifest["tuning"]["median_ms"]["t1/16"]) == {"int8:plain.dynamic", "int8:fused.dynamic",
                                                              "int8:o2.optimum"}  # fmt: skip
    assert set(manifest["deployment"]["threads"]) == {"1", "2"} and "int8_dev_scores" not in manifest["tuning"]
    assert all("accuracy" not in v for v in manifest["variants"])
    result = invoke("export", tagger, "--task", "ner", "--out", tmp_path / "f", "--quantize", "none", "--no-ort", "-q")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert [v["name"] for v in manifest["variants"]] == ["fp32", "strings"] and manifest["deployment"]["threads"] == {}
    strings = manifest["variants"][1]  # raw text in, on the fp32 graph, checked on generated sentences
    assert strings["from"] == "onnx/model.onnx" and strings["agreement"]["source"] == "generated sentences"


def test_four_bit_embeddings_reach_a_tagger_s_int8_candidates(backbone_dir, tmp_path):
    """--embedding-bits 4 through the one-graph kinds' path: the fused candidate is not timed, and what
    ships looks its words up in 4 bits."""
    import onnx

    tagger = random_tagger(tmp_path / "tagger", backbone_dir)
    out = tmp_path / "b"
    result = invoke("export", tagger, "--task", "ner", "--out", out, "--max-length", "32", "--no-ort",
                    "--tune-threads", "1", "--embedding-bits", "4")  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert "int8:fused.dynamic" not in manifest["tuning"]["median_ms"]["t1/16"]
    ops = {n.op_type for n in onnx.load(str(out / "onnx/model_quantized.onnx")).graph.node}
    assert "GatherBlockQuantized" in ops


def test_evaluate_truncates_a_bundle_where_its_apps_do(ner_bundle, ner_data, tmp_path):
    """Exported at 64 pieces, the bundle's tokenizer tells apps to cut there: evaluate does too unless told."""
    data = with_long_sentences(ner_data, ner_bundle, tmp_path / "long")
    scores = {}
    for name, extra in (("default", []), ("64", ["--max-length", "64"]), ("128", ["--max-length", "128"])):
        report = tmp_path / f"{name}.json"
        result = invoke("evaluate", ner_bundle, "--task", "ner", "--data", data, "--json", report, *extra)
        assert result.exit_code == 0, result.output
        variants = json.loads(report.read_text())["variants"]
        scores[name] = {v["variant"]: (v["max_length"], v["metrics"]) for v in variants}
    assert scores["default"] == scores["64"] and {n for n, _ in scores["default"].values()} == {64}
    assert {n for n, _ in scores["128"].values()} == {128} and scores["128"] != scores["64"]


def python_tags(bundle: Path, data: Path, file: str) -> tuple[list[list[str]], list[list[str]]]:
    """(words, tags) of every dev sentence by Python's onnxruntime on ``file``, each word by its first piece."""
    from codir_edge.data.fast_tokenizer import find_tokenizer
    from codir_edge.data.ner import read_tagged
    from codir_edge.data.ner_encode import encode_tagged, word_tags
    from codir_edge.onnx.tokens import onnx_token_logits

    dev = read_tagged(data, "dev")
    labels = json.loads((bundle / "manifest.json").read_text())["token_classification"]["labels"]
    tokens = encode_tagged(find_tokenizer(bundle), dev, labels, 64, True)
    logits = onnx_token_logits(bundle / "onnx" / file, tokens.encoded)
    tags = [word_tags(row.argmax(-1), tokens.word_of[i], len(dev.words[i]), labels) for i, row in enumerate(logits)]
    assert len({tag for row in tags for tag in row}) >= 5  # labels vary from word to word: alignment shows
    return dev.words, tags


def assert_same_tags(rows: list[dict], words: list[list[str]], tags: list[list[str]]) -> None:
    from codir_edge.data.ner_metrics import entities

    assert [r["words"] for r in rows] == words
    assert [r["tags"] for r in rows] == tags
    assert [{(e["type"], e["first"], e["last"]) for e in r["entities"]} for r in rows] == [entities(t) for t in tags]


def with_long_sentences(data: Path, bundle: Path, folder: Path, count: int = 4) -> Path:
    """``data`` with CoNLL dev's first ``count`` sentences longer than the bundle's 64 pieces added to its
    dev file, so that the cut before the first word that does not fit is exercised."""
    import shutil

    from codir_edge.data.fast_tokenizer import find_tokenizer
    from codir_edge.data.ner import read_tagged

    conll = read_tagged(CONLL, "dev")
    pieces = find_tokenizer(bundle)(conll.texts, truncation=False)["input_ids"]
    long = [i for i, ids in enumerate(pieces) if len(ids) > 64][:count]
    shutil.copytree(data, folder)
    with (folder / "dev.txt").open("a", encoding="utf-8") as dev:
        for i in long:
            dev.write("\n" + "".join(f"{w} {t}\n" for w, t in zip(conll.words[i], conll.tags[i], strict=True)))
    return folder


def test_transformers_js_tags_the_bundle_as_python_does(ner_bundle, ner_data, tmp_path):
    """Every dev sentence, fp32 and q8, one per call through examples/apps/node/tag.mjs: the same tag for
    every word (first piece) and so the same strict IOB2 entities as Python's onnxruntime, sentences
    longer than the bundle's length included (the pipeline's own truncation would drop the end token)."""
    from test_bundle_apps import _node

    from codir_edge.data.ner import read_tagged

    data = with_long_sentences(ner_data, ner_bundle, tmp_path / "long")
    for dtype, file in (("fp32", "model.onnx"), ("q8", "model_quantized.onnx")):
        words, tags = python_tags(ner_bundle, data, file)
        assert len(words) == len(read_tagged(ner_data, "dev")) + 4
        sentences = "\n".join(" ".join(w) for w in words) + "\n"
        output = _node("node/tag.mjs", str(ner_bundle), "--dtype", dtype, stdin=sentences)
        assert_same_tags([json.loads(line) for line in output.splitlines()], words, tags)


def test_the_web_page_tags_with_a_ner_bundle_in_headless_chromium(ner_bundle, ner_data, tmp_path):
    """The same page reads the manifest and tags instead of classifying, in onnxruntime-web's wasm."""
    import shutil

    from test_bundle_apps import _node

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("the browser test needs Chromium (.ci/run installs Debian's chromium)")
    for dtype, file in (("fp32", "model.onnx"), ("q8", "model_quantized.onnx")):
        words, tags = python_tags(ner_bundle, ner_data, file)
        (tmp_path / "texts.json").write_text(json.dumps([" ".join(w) for w in words]))
        result = json.loads(_node("web/drive.mjs", str(ner_bundle), str(tmp_path / "texts.json"), "--dtype", dtype,
                                  "--chromium", chromium))  # fmt: skip
        assert result["outside"] == []
        assert_same_tags(result["rows"], words, tags)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("EU B-ORG\nrejects\n", "train.txt:2: 'rejects' has no tag"),
        ("EU B-ORG\n\nsaid O\nBrussels I-LOC\n", "train.txt:4: 'I-LOC' follows 'O'"),
        ("", "holds no tagged sentences"),
    ],
)
def test_bad_tagged_data_is_one_line_and_leaves_nothing(tmp_path, tagger, text, says):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text(text)
    (data / "dev.txt").write_text("Peter B-PER\n")
    out = tmp_path / "out"
    for command in (["finetune", "--model", tagger], ["compress", "--teacher", tagger]):
        result = invoke(*command, "--task", "ner", "--data", data, "--out", out, "--quiet")
        assert result.exit_code == 2, result.output
        assert says in result.output and "Traceback" not in result.output
        assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["data"]


def test_a_teacher_that_is_not_a_tagger_is_refused(tmp_path, tiny_classifier, ner_data):
    result = invoke("compress", "--teacher", tiny_classifier, "--task", "ner", "--data", ner_data, "--out",
                    tmp_path / "s")  # fmt: skip
    assert result.exit_code == 2 and "is not a token classifier" in result.output
    assert "finetune --task ner" in result.output


def test_profile_scores_entity_f1_as_evaluate_does_and_gates_on_min_f1(ner_bundle, ner_data, tmp_path):
    """Sentences longer than the bundle's 64 pieces included: both cut them where the bundle's apps do."""
    ner_data = with_long_sentences(ner_data, ner_bundle, tmp_path / "long")
    scored = tmp_path / "e.json"
    assert invoke("evaluate", ner_bundle, "--task", "ner", "--data", ner_data, "--json", scored).exit_code == 0
    f1 = {v["variant"]: v["metrics"]["f1"] for v in json.loads(scored.read_text())["variants"]}["int8"]
    assert f1 > 0  # the random tagger finds some entities: a floor above it must fail, one below it pass
    for floor, code in ((f1 + 0.01, 1), (f1 - 0.01, 0)):
        budgets = tmp_path / "budgets.toml"
        budgets.write_text(f'[[budget]]\nname = "tagger"\ntarget = "int8"\nthreads = 1\nseq_len = 16\n'
                           f"min_f1 = {floor}\n")  # fmt: skip
        report = tmp_path / "p.json"
        result = invoke("profile", ner_bundle, "--task", "ner", "--data", ner_data, "--seq-lens", "16", "--threads",
                        "1", "--runs", "5", "--budgets", budgets, "--json", report)  # fmt: skip
        assert result.exit_code == code, result.output
        assert json.loads(report.read_text())["accuracy"]["int8"]["f1"] == pytest.approx(f1, abs=1e-12)


def test_a_pipeline_toml_runs_the_ner_chain(tagger, ner_data, tmp_path):
    """task = "ner" once, for every stage: compress, export and profile with a min_f1 budget."""
    toml = tmp_path / "pipeline.toml"
    toml.write_text(f"""[pipeline]
work = "{tmp_path / 'runs'}"
task = "ner"
data = "{ner_data}"

[compress]
teacher = "{tagger}"
student-layers = 2
epochs = 1
max-length = 64

[export]
max-length = 64
max-accuracy-drop = 100

[profile]
threads = 1
seq-lens = "16"
runs = 5
[[profile.budget]]
name = "tagger"
target = "int8"
threads = 1
seq_len = 16
min_f1 = 0.0
""")
    result = invoke("pipeline", toml)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "runs" / "profile" / "report.json").read_text())
    assert report["passed"] and "f1" in report["accuracy"]["int8"]
    manifest = json.loads((tmp_path / "runs" / "export" / "manifest.json").read_text())
    assert manifest["token_classification"]["labels"][0] == "O"


def test_a_pruned_vocabulary_trains_the_same_tagger_row_for_row(tagger, ner_data, tmp_path):
    """--vocab auto keeps every piece the training sentences split into, and the student reads the teacher's
    pieces through the new ids: the same training, so the kept embedding rows and every other weight come
    out equal to the full-vocabulary student's."""
    from safetensors.numpy import load_file
    from transformers import AutoTokenizer

    common = ["--teacher", tagger, "--task", "ner", "--data", ner_data, "--student-layers", "2", "--epochs", "1",
              "--batch-size", "16", "--objective", "codir", "--quiet"]  # fmt: skip
    for name, extra in {"full": [], "cut": ["--vocab", "auto"]}.items():
        result = invoke("compress", *common, *extra, "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
    assert "vocabulary (auto)" in result.output
    vocabulary = json.loads((tmp_path / "cut" / "metrics.json").read_text())["vocabulary"]
    assert vocabulary["train_rows_retokenized"] == 0 and vocabulary["kept"] < vocabulary["full_size"]
    full, cut = (load_file(str(tmp_path / n / "model.safetensors")) for n in ("full", "cut"))
    full_tok, cut_tok = (AutoTokenizer.from_pretrained(tmp_path / n) for n in ("full", "cut"))
    keep = full_tok.convert_tokens_to_ids(cut_tok.convert_ids_to_tokens(list(range(len(cut_tok)))))
    name = "bert.embeddings.word_embeddings.weight"
    np.testing.assert_array_equal(cut[name], full[name][keep])
    assert all(np.array_equal(full[k], cut[k]) for k in full if k != name)
    f1 = {n: json.loads((tmp_path / n / "metrics.json").read_text())["dev"]["f1"] for n in ("full", "cut")}
    assert abs(f1["full"] - f1["cut"]) <= 0.05  # dev sentences may split differently with the kept pieces


def test_unlabelled_sentences_join_through_the_teacher_alone(tagger, ner_data, tmp_path):
    """--unlabeled: repeats and tagged train or dev sentences are dropped and counted; the rest carry no
    cross-entropy (their words have only the teacher's outputs as targets)."""
    from codir_edge.data.ner import read_tagged

    train, dev = read_tagged(ner_data, "train"), read_tagged(ner_data, "dev")
    fresh = [" ".join(w) for w in read_tagged(CONLL / "test.txt", "test").words[:30]]
    (tmp_path / "u.txt").write_text("\n".join([*fresh, fresh[0], train.texts[3], dev.texts[5].upper()]) + "\n")
    out = tmp_path / "student"
    result = invoke("compress", "--teacher", tagger, "--task", "ner", "--data", ner_data, "--unlabeled",
                    tmp_path / "u.txt", "--student-layers", "2", "--epochs", "1", "--objective", "kd", "--out", out,
                    "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    transfer = json.loads((out / "metrics.json").read_text())["transfer_set"]
    assert transfer["unlabeled"] == {"read": 33, "kept": 30, "dropped_repeats": 1, "dropped_labeled": 1,
                                     "dropped_dev": 1}  # fmt: skip
    assert transfer["rows_per_epoch"] == len(train) + 30
    assert "transfer set: 160 labelled rows + 30 unlabelled texts" in result.output
    assert "negatives" not in result.output  # kd has none to pick


def test_untagged_words_carry_kd_and_no_cross_entropy(tagger):
    import torch

    from codir_edge.compress.config import TokenConfig
    from codir_edge.compress.student import skip_student
    from codir_edge.compress.token_objective import TokenDistiller
    from codir_edge.data.ner_encode import IGNORE, UNLABELED
    from codir_edge.models.loading import load_trained_token_classifier

    teacher = load_trained_token_classifier(tagger).eval()
    student = skip_student(teacher, 2)
    objective = TokenDistiller(student, teacher, TokenConfig(task="ner", objective="kd"), [2, 4])
    inputs = {"input_ids": torch.tensor([[101, 7592, 2088, 102]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    targets = torch.tensor([[IGNORE, UNLABELED, UNLABELED, IGNORE]])
    _, terms = objective(inputs, torch.tensor([0]), targets)
    assert terms["ce"] == 0 and terms["kd"] > 0
    _, tagged = objective(inputs, torch.tensor([0]), torch.tensor([[IGNORE, 0, 7, IGNORE]]))
    assert tagged["ce"] > 0


def test_pkd_tokens_all_matches_hidden_states_at_every_real_piece(tagger):
    """--pkd-tokens all: mse's hidden-state term reads every piece the attention mask keeps ([CLS],
    continuations, [SEP]) and no padding; first reads the labelled pieces alone."""
    import torch

    from codir_edge.compress.config import TokenConfig
    from codir_edge.compress.losses import PkdLoss
    from codir_edge.compress.student import skip_student
    from codir_edge.compress.token_objective import TokenDistiller
    from codir_edge.data.ner_encode import IGNORE
    from codir_edge.models.loading import load_trained_token_classifier

    teacher = load_trained_token_classifier(tagger).eval()
    student = skip_student(teacher, 2).eval()  # no dropout: the terms are compared exactly
    inputs = {"input_ids": torch.tensor([[101, 7592, 2088, 1012, 102, 0]]),
              "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 0]])}  # fmt: skip
    targets = torch.tensor([[IGNORE, 0, 7, IGNORE, IGNORE, IGNORE]])
    terms = {}
    for where in ("first", "all"):
        objective = TokenDistiller(student, teacher, TokenConfig(task="ner", objective="mse", pkd_tokens=where), [2, 4])
        _, terms[where] = objective(inputs, torch.tensor([0]), targets)
    with torch.no_grad():
        s = student(**inputs, output_hidden_states=True).hidden_states
        t = teacher(**inputs, output_hidden_states=True).hidden_states
    expected = {}
    for where, keep in (("first", targets != IGNORE), ("all", inputs["attention_mask"].bool())):
        states = [torch.cat([h[keep] for h in hidden], -1) for hidden in ((s[1], s[2]), (t[2], t[4]))]
        expected[where] = PkdLoss(2, s[0].shape[-1], t[0].shape[-1])(*states)
    for where in ("first", "all"):
        assert float(terms[where]["pkd"]) == pytest.approx(float(expected[where]), rel=1e-5)
    assert float(terms["all"]["pkd"]) != pytest.approx(float(terms["first"]["pkd"]), rel=1e-3)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--pooling", "cls"], "--pooling does not apply to --task ner"),
        (["--layer-contrast", "each"], "--layer-contrast does not apply to --task ner"),
        (["--objective", "cosine"], "--objective cosine does not apply to --task ner"),
        (["--student", "TAGGER"], "--student does not apply to --task ner"),
        (["--objective", "none", "--unlabeled", "TEXT"], "--unlabeled needs a teacher term"),
        (["--stage", "pre"], "--task ner does not apply to --stage pre"),
        (["--vocab", "5000"], "--vocab 5000 would split words into other pieces"),
        (["--objective", "kd", "--pkd-tokens", "all"], "--objective kd has no such term"),
    ],
)
def test_settings_ner_does_not_read_are_refused_by_name(tagger, ner_data, tmp_path, extra, says):
    text = tmp_path / "u.txt"
    text.write_text("EU rejects German call\n")
    extra = [str(tagger) if x == "TAGGER" else str(text) if x == "TEXT" else x for x in extra]
    out = tmp_path / "s"
    result = invoke("compress", "--teacher", tagger, "--task", "ner", "--data", ner_data, "--out", out, *extra)
    assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output, result.output
    assert not out.exists()


def test_onnxruntime_cannot_make_an_ort_of_a_qdq_graph_with_a_float_matmul_so_the_fixed_one_ships_without(
        ner_bundle, ner_data, tmp_path):  # fmt: skip
    """Why a fixed-shape variant whose accuracy search kept a MatMul in float ships without its .ort:
    onnxruntime's converter rejects such a graph (its MatMul + Add fusion breaks the node). When this
    test fails, onnxruntime fixed it, and fixed_variants.py can drop its note."""
    from codir_edge.core.errors import CheckFailedError
    from codir_edge.data.fast_tokenizer import find_tokenizer
    from codir_edge.data.ner import read_tagged
    from codir_edge.data.ner_encode import encode_tagged
    from codir_edge.export import fixed
    from codir_edge.export import quantize as q
    from codir_edge.export.mobile import to_ort
    from codir_edge.onnx.predict import fixed_batches

    fixed.fix_shapes(ner_bundle / "onnx" / "model.onnx", tmp_path / "fixed.onnx", 1, 32)
    train = read_tagged(ner_data, "train").subsample(16, 0)
    encoded = encode_tagged(find_tokenizer(ner_bundle), train, LABELS, 32, True, tagged=False).encoded
    feeds = fixed_batches(encoded, 1, 32, 16)
    query = "/bert/encoder/layer.0/attention/self/query/MatMul"
    for keep, name in (((), "all"), ((query,), "one-float")):
        q.static_int8(tmp_path / "fixed.onnx", tmp_path / f"{name}.onnx", feeds, "minmax", "avx2",
                      op_types=fixed.FIXED_OPS, keep_float=keep, weights_u8_per_tensor=True)  # fmt: skip
    to_ort(tmp_path / "all.onnx", tmp_path, "avx2", "all.ort", "all.config", "Runtime")
    with pytest.raises(CheckFailedError, match="MatMulAddFusion"):
        to_ort(tmp_path / "one-float.onnx", tmp_path, "avx2", "one.ort", "one.config", "Runtime")


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--fixed-shape", "1x128"], "--fixed-shape 1x128 is longer than --max-length 64"),
        (["--fixed-shape", "1by8"], "--fixed-shape"),
        (["--fp16"], "--fp16 is not available for --task ner yet"),
        (["--quantize", "static"], "--quantize static is not available for --task ner"),
    ],
)
def test_export_settings_a_tagger_cannot_take_are_one_line_before_any_work(tagger, tmp_path, extra, says):
    from cli_helpers import assert_one_line_error

    out = tmp_path / "b"
    result = invoke("export", tagger, "--task", "ner", "--out", out, "--max-length", "64", *extra)
    assert_one_line_error(result, 2, says)
    assert not out.exists() and not list(tmp_path.glob(".*"))


def test_label_aware_negatives_leave_same_tag_tokens_out_and_instance_ones_keep_them():
    """Tokens of one tag only: the label-aware term has no negative left (top-1 1, loss 0); with
    --token-negatives instance every other token is one, so the same heads score a real task."""
    import torch

    from codir_edge.compress.token_objective import TokenContrast

    torch.manual_seed(0)
    student, teacher, labels = torch.randn(40, 24), torch.randn(40, 24), torch.zeros(40, dtype=torch.long)
    torch.manual_seed(1)
    aware = TokenContrast(24, 24, 8, 0.07, label_aware=True)
    torch.manual_seed(1)
    instance = TokenContrast(24, 24, 8, 0.07, label_aware=False)
    loss, top1 = aware(student, teacher, labels)
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6) and float(top1) == 1.0
    loss, top1 = instance(student, teacher, labels)
    assert float(loss.detach()) > 1.0 and float(top1) < 0.5
