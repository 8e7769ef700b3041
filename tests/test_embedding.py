"""--task embedding: sentence-transformers teachers and students, the objectives, evaluate's metrics,
and one-line errors for what cannot be an embedding model or STS data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, invoke, read_log
from conftest import build_tiny_bert
from hypothesis import given, settings
from hypothesis import strategies as st

from codir_edge.models.sentence import POOLINGS, SentenceHead, read_sentence_head, write_sentence_head

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def st_teacher(folder: Path, backbone_dir: Path, pooling: str = "mean", normalize: bool = True) -> Path:
    """A random 4-layer BertModel saved as a sentence-transformers folder with the given head. Its blocks
    are drawn 10x wider than BERT's init, so that they change the embedding a skip-initialised student
    must then learn to match (at BERT's init the tiny blocks barely move the token states)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, initializer_range=0.2)  # fmt: skip
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(backbone_dir)).save_pretrained(folder)
    write_sentence_head(folder, SentenceHead(pooling, normalize), 32, 128)
    return folder


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, backbone_dir) -> Path:
    return st_teacher(tmp_path_factory.mktemp("st") / "t", backbone_dir)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, glue_dir) -> Path:
    lines = (glue_dir / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:241]
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(line.split("\t")[0] for line in lines) + "\n", encoding="utf-8")
    return path


def embed_args(teacher: Path, data: Path, out: Path, *extra) -> list:
    return ["compress", "--task", "embedding", "--teacher", teacher, "--data", data, "--out", out,
            "--student-layers", "2", "--max-length", "32", "--batch-size", "16", "--epochs", "2", "--lr", "1e-3",
            "--negatives", "5", "--held-out", "24", "--quiet", *extra]  # fmt: skip


def st_encode(folder: Path, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu").encode(texts, convert_to_numpy=True)


# ---- the sentence-transformers format ----------------------------------------------------------------


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("normalize", [True, False])
def test_a_written_head_reads_back_and_sentence_transformers_pools_as_we_do(tmp_path, backbone_dir, pooling,
                                                                            normalize):  # fmt: skip
    from codir_edge.models.embed import embed_folder

    folder = st_teacher(tmp_path / "m", backbone_dir, pooling, normalize)
    assert read_sentence_head(folder) == SentenceHead(pooling, normalize)
    texts = ["a short one", "a much longer sentence , with several more words than the first", "x"]
    ours, _ = embed_folder(folder, texts, 128, 2, "cpu")  # batch 2: padding and batch mates must not count
    theirs = st_encode(folder, texts)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda f: _add_module(f, "sentence_transformers.models.Dense"), "Dense"),
        (lambda f: _pooling(f, pooling_mode_weightedmean_tokens=True), "weightedmean"),
        (lambda f: _pooling(f, pooling_mode_cls_token=True), "sets mean, cls"),
        (lambda f: (f / "modules.json").write_text("{not json"), "modules.json"),
        (lambda f: (f / "1_Pooling" / "config.json").unlink(), "pooling config"),
    ],
)
def test_heads_we_cannot_reproduce_are_refused_in_one_line(tmp_path, teacher, corpus, edit, fragment):
    import shutil

    folder = tmp_path / "t"
    shutil.copytree(teacher, folder)
    edit(folder)
    out = tmp_path / "out"
    result = invoke(*embed_args(folder, corpus, out))
    assert_one_line_error(result, 2, fragment)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def _add_module(folder: Path, kind: str) -> None:
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": "3_Dense", "type": kind})
    (folder / "modules.json").write_text(json.dumps(modules))


def _pooling(folder: Path, **changes) -> None:
    path = folder / "1_Pooling" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


# ---- compress --task embedding --------------------------------------------------------------------------


def test_the_student_is_a_sentence_transformers_model_closer_to_the_teacher_than_its_start(tmp_path, teacher,
                                                                                          corpus):  # fmt: skip
    from codir_edge.models.embed import embed_folder

    out = tmp_path / "student"
    result = invoke(*embed_args(teacher, corpus, out, "--json", tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "embedding" and metrics["compress_stage"] == "embed"
    assert metrics["embedding"] == {"pooling": "mean", "normalize": True}
    assert metrics["dev"]["cosine"] > metrics["initial_dev"]["cosine"]
    assert metrics["student_layers"] == 2 and read_sentence_head(out) == read_sentence_head(teacher)
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["student_score"] == metrics["dev"]["cosine"]
    texts = corpus.read_text().splitlines()[:20]
    ours, _ = embed_folder(out, texts, 32, 8, "cpu")
    theirs = st_encode(out, texts)
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosine.min() >= 0.99999
    assert "contrastive" in read_log(out)[0]  # the default objective is codir: its term is logged


def test_codir_at_contrastive_weight_zero_is_cosine_bit_for_bit_and_mse_trains_another_student(tmp_path, teacher,
                                                                                              corpus):  # fmt: skip
    from safetensors.torch import load_file

    outs = {}
    for name, extra in {"cosine": ["--objective", "cosine"], "codir0": ["--contrastive-weight", "0"],
                        "mse": ["--objective", "mse"], "each": ["--layer-contrast", "each"]}.items():  # fmt: skip
        outs[name] = tmp_path / name
        result = invoke(*embed_args(teacher, corpus, outs[name], "--epochs", "1", *extra))
        assert result.exit_code == 0, result.output
    weights = {name: load_file(folder / "model.safetensors") for name, folder in outs.items()}
    for key, value in weights["cosine"].items():
        assert torch.equal(value, weights["codir0"][key]), key
    assert any(not torch.equal(v, weights["mse"][k]) for k, v in weights["cosine"].items())
    assert "mse" in read_log(outs["mse"])[0] and "cosine" in read_log(outs["cosine"])[0]
    assert any(not torch.equal(v, weights["each"][k]) for k, v in weights["cosine"].items())  # one term per layer
    assert "contrastive_top1" in [row for row in read_log(outs["each"]) if "lr" in row][-1]


def test_a_pruned_vocabulary_ships_as_a_sentence_transformers_model_reading_its_texts_as_before(tmp_path, teacher,
                                                                                                  corpus):  # fmt: skip
    from transformers import AutoTokenizer

    from codir_edge.models.embed import embed_folder

    out = tmp_path / "student"
    result = invoke(*embed_args(teacher, corpus, out, "--epochs", "1", "--vocab", "auto"))
    assert result.exit_code == 0, result.output
    vocabulary = json.loads((out / "metrics.json").read_text())["vocabulary"]
    assert "vocabulary (auto)" in result.output and "held-out texts" in result.output
    assert vocabulary["train_rows_retokenized"] == 0 and vocabulary["scored_on"] == "held-out"
    full, cut = AutoTokenizer.from_pretrained(teacher), AutoTokenizer.from_pretrained(out)
    assert len(cut) == vocabulary["kept"] < len(full) and vocabulary["dev_texts"] == 24
    texts = corpus.read_text().splitlines()[:20]
    ours, _ = embed_folder(out, texts, 32, 8, "cpu")
    theirs = st_encode(out, texts)  # sentence-transformers loads the cut tokenizer and embedding with no help
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosine.min() >= 0.99999


def test_a_bare_encoder_takes_the_flags_head(tmp_path, backbone_dir, corpus):
    encoder = build_tiny_bert(tmp_path / "enc", backbone_dir, num_labels=None, layers=2)
    out = tmp_path / "student"
    result = invoke(*embed_args(encoder, corpus, out, "--student-layers", "1", "--pooling", "max", "--epochs", "1"))
    assert result.exit_code == 0, result.output
    assert read_sentence_head(out) == SentenceHead("max", False)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--objective", "kd"], "--objective kd does not apply to --task embedding"),
        (["--pooling", "cls"], "--pooling cls differs"),
        (["--kd-weight", "0.3"], "--kd-weight does not apply"),
        (["--augment", "2"], "--augment applies to --stage fine only"),
        (["--stage", "pre"], "does not apply to --stage pre"),
        (["--label-column", "x"], "--label-column applies to --stage fine only"),
        (["--negative-sampling", "instance"], "--negative-sampling instance is how --task embedding always draws"),
    ],
)
def test_bad_settings_are_one_line_and_write_nothing(tmp_path, teacher, corpus, extra, fragment):
    out = tmp_path / "out"
    assert_one_line_error(invoke(*embed_args(teacher, corpus, out, *extra)), 2, fragment)
    assert not out.exists()


def test_a_classifier_is_not_an_embedding_model(tmp_path, tiny_classifier, corpus):
    out = tmp_path / "out"
    result = invoke(*embed_args(tiny_classifier, corpus, out, "--student-layers", "1"))
    assert_one_line_error(result, 2, "not an embedding model", "modules.json")
    assert not out.exists()


# ---- evaluate --task embedding ------------------------------------------------------------------------


def sts_file(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("sentence1,sentence2,score\n" + "".join(f'"{a}","{b}",{s}\n' for a, b, s in rows))
    return path


def test_sts_metrics_are_the_correlations_of_sentence_transformers_cosines(tmp_path, teacher, glue_dir):
    from scipy.stats import pearsonr, spearmanr

    lines = (glue_dir / "STS-B" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:61]
    rows = [(c[7].replace('"', "'"), c[8].replace('"', "'"), c[9]) for c in (line.split("\t") for line in lines)]
    data = sts_file(tmp_path / "sts.csv", rows)
    result = invoke("evaluate", teacher, "--task", "embedding", "--data", data, "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["data_kind"] == "sts" and report["examples"] == 60
    a, b = st_encode(teacher, [r[0] for r in rows]), st_encode(teacher, [r[1] for r in rows])
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    gold = [float(r[2]) for r in rows]
    assert report["metrics"]["spearman"] == pytest.approx(spearmanr(cosine, gold).statistic, abs=1e-4)
    assert report["metrics"]["pearson"] == pytest.approx(pearsonr(cosine, gold).statistic, abs=1e-4)


def test_a_labelled_folder_is_scored_by_logistic_regression_and_nearest_neighbour(tmp_path, teacher):
    from codir_edge.data.embedding import classification_scores

    folder = tmp_path / "intents"
    folder.mkdir()
    words = {"card": "my card has not arrived yet", "rate": "what is the exchange rate today",
             "pin": "i forgot my pin number"}  # fmt: skip
    for split, count in (("train", 6), ("test", 3)):
        rows = [f"{text} {i},{label}" for label, text in words.items() for i in range(count)]
        (folder / f"{split}.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    result = invoke("evaluate", teacher, "--task", "embedding", "--data", folder, "--split", "test", "--json",
                    tmp_path / "r.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["data_kind"] == "classification" and report["examples"] == 9
    train = [f"{t} {i}" for t in words.values() for i in range(6)]
    test = [f"{t} {i}" for t in words.values() for i in range(3)]
    y_train, y_test = np.repeat([1, 2, 0], 6), np.repeat([1, 2, 0], 3)  # labels sorted: card, pin, rate
    expected = classification_scores(st_encode(teacher, train), y_train, st_encode(teacher, test), y_test, 42)
    assert report["metrics"] == pytest.approx(expected)
    assert expected["knn1_accuracy"] == 1.0  # each test text has a near copy among train


@pytest.mark.parametrize(
    ("score", "fragment"),
    [("high", "line 3"), (None, "score")],
)
def test_sts_files_with_a_bad_or_missing_score_are_one_line(tmp_path, teacher, score, fragment):
    data = tmp_path / "sts.csv"
    if score is None:
        data.write_text("sentence1,sentence2\na cat,a dog\nhello,hi\n")
    else:
        data.write_text(f"sentence1,sentence2,score\na cat,a dog,1.0\nhello,hi,{score}\n")
    result = invoke("evaluate", teacher, "--task", "embedding", "--data", data)
    assert_one_line_error(result, 2, str(data), fragment)


# ---- export --task embedding ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sts_dev(tmp_path_factory, glue_dir) -> Path:
    """STS-B's dev file cut to 80 pairs, as a GLUE folder (the dev split export scores on)."""
    folder = tmp_path_factory.mktemp("stsb") / "STS-B"
    folder.mkdir()
    lines = (glue_dir / "STS-B" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    (folder / "dev.tsv").write_text("\n".join(lines[:81]) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def embedding_bundle(tmp_path_factory, teacher, sts_dev) -> Path:
    out = tmp_path_factory.mktemp("embedding-bundle") / "bundle"
    result = invoke("export", teacher, "--task", "embedding", "--data", sts_dev, "--out", out, "--max-length", "64",
                    "--max-accuracy-drop", "100", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def sts_sentences(sts_dev: Path) -> list[str]:
    rows = [line.split("\t") for line in (sts_dev / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    return list(dict.fromkeys([r[7] for r in rows] + [r[8] for r in rows]))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_the_bundle_loads_as_exported_in_sentence_transformers_onnx_backend(embedding_bundle, teacher, sts_dev):
    """Every sentence of the cut STS-B dev: the ONNX backend's fp32 equals PyTorch's embedding, its INT8
    equals onnxruntime's on the same file, and the graph's own sentence_embedding output equals both."""
    from sentence_transformers import SentenceTransformer

    from codir_edge.models.embed import embed_folder
    from codir_edge.onnx.embed import onnx_embeddings

    texts = sts_sentences(sts_dev)
    torch_emb, _ = embed_folder(teacher, texts, 64, 16, "cpu")
    encoded = _encoded(embedding_bundle, texts)
    for file, reference, floor in (("onnx/model.onnx", torch_emb, 0.99999), ("onnx/model_quantized.onnx", None, 0.999)):
        ours = onnx_embeddings(embedding_bundle / file, encoded)  # the graph's sentence_embedding, batch 1
        if reference is None:  # INT8: its own runtime's embedding is the reference, and it stays near fp32
            reference = ours
            assert cosines(ours, torch_emb).min() > 0.9
        assert cosines(ours, reference).min() >= floor
        model = SentenceTransformer(str(embedding_bundle), backend="onnx", model_kwargs={"file_name": file},
                                    device="cpu")  # fmt: skip
        assert cosines(model.encode(texts, batch_size=1), reference).min() >= floor, file


def _encoded(bundle: Path, texts: list[str]):
    from codir_edge.data.encode import encode
    from codir_edge.data.examples import Examples
    from codir_edge.data.fast_tokenizer import find_tokenizer

    return encode(find_tokenizer(bundle), Examples(texts, None, [0] * len(texts), "t"), 64)


def test_the_manifest_says_how_to_embed_and_verify_and_evaluate_read_the_bundle(embedding_bundle, sts_dev, tmp_path):
    manifest = json.loads((embedding_bundle / "manifest.json").read_text())
    assert manifest["embedding"] == {"pooling": "mean", "normalize": True, "output": "sentence_embedding",
                                     "dimension": 32}  # fmt: skip
    assert [o["name"] for o in manifest["outputs"]] == ["last_hidden_state", "sentence_embedding"]
    int8 = next(v for v in manifest["variants"] if v["name"] == "int8")
    assert set(int8["accuracy"]) == {"spearman", "pearson"} and int8["cosine_to_fp32"]["min"] > 0.9
    # INT8 tuned per thread count: every candidate timed, each count's pick shipped and scored on dev
    timed = manifest["tuning"]["median_ms"]["t1/real"]
    assert {"int8:plain.dynamic", "int8:fused.dynamic", "int8:fused.dynamic-pt", "int8:o2.optimum"} <= set(timed)
    by_name = {v["name"]: v for v in manifest["variants"]}
    for count, picks in manifest["deployment"]["threads"].items():
        chosen = manifest["tuning"]["per_threads"][count]["int8"]["chosen"].removeprefix("int8:")
        assert picks["fp32"] == "fp32" and by_name[picks["int8"]]["candidate"] == chosen
        assert (embedding_bundle / by_name[picks["int8"]]["file"]).is_file() and "accuracy" in by_name[picks["int8"]]
    assert all("spearman" in v for v in manifest["tuning"]["int8_dev_scores"].values())
    assert read_sentence_head(embedding_bundle) == SentenceHead("mean", True)
    assert invoke("verify", embedding_bundle).exit_code == 0
    result = invoke("evaluate", embedding_bundle, "--task", "embedding", "--data", sts_dev, "--max-length", "64",
                    "--json", tmp_path / "r.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    reports = {r["variant"]: r for r in json.loads((tmp_path / "r.json").read_text())["variants"]}
    for name in ("fp32", "int8"):  # what export recorded is what evaluate measures: one file, one data set
        recorded = next(v for v in manifest["variants"] if v["name"] == name)["accuracy"]
        assert reports[name]["metrics"] == pytest.approx(recorded, abs=1e-9) and reports[name]["batch_size"] == 1


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [(["--quantize", "static"], "--quantize static"), (["--fp16"], "--fp16"), (["--tokenizer-in-graph"], "tokenizer")],
)
def test_export_options_it_does_not_read_yet_are_refused(tmp_path, teacher, extra, fragment):
    out = tmp_path / "bundle"
    assert_one_line_error(invoke("export", teacher, "--task", "embedding", "--out", out, *extra), 2, fragment)
    assert not out.exists()


def test_a_classifier_is_refused_by_export_task_embedding(tmp_path, tiny_classifier):
    out = tmp_path / "bundle"
    result = invoke("export", tiny_classifier, "--task", "embedding", "--out", out)
    assert_one_line_error(result, 2, "not an embedding model")
    assert not out.exists()


# ---- profile --task embedding -----------------------------------------------------------------------------


@pytest.mark.parametrize(("floor", "code"), [(-0.5, 0), (0.999, 1)])
def test_profile_scores_the_embedding_metric_and_gates_on_a_spearman_floor(tmp_path, embedding_bundle, sts_dev,
                                                                           floor, code):  # fmt: skip
    from codir_edge.data import DataSpec
    from codir_edge.data.embedding import read_embedding_data
    from codir_edge.data.encode import encode
    from codir_edge.data.examples import Examples
    from codir_edge.data.fast_tokenizer import find_tokenizer
    from codir_edge.onnx.embed import onnx_embeddings

    budgets = tmp_path / "budgets.toml"
    budgets.write_text(f'[[budget]]\nname = "sts"\ntarget = "int8"\nseq_len = "real"\nmin_spearman = {floor}\n')
    result = invoke("profile", embedding_bundle, "--task", "embedding", "--data", sts_dev, "--seq-lens", "real",
                    "--batch-sizes", "1", "--threads", "1", "--warmup", "1", "--runs", "3", "--budgets", budgets,
                    "--json", tmp_path / "p.json")  # fmt: skip
    assert result.exit_code == code, result.output
    report = json.loads((tmp_path / "p.json").read_text())
    wanted = read_embedding_data(DataSpec(str(sts_dev)), "dev", None, 0)
    texts = Examples(wanted.texts, None, [0] * len(wanted.texts), "sts")
    emb = onnx_embeddings(embedding_bundle / "onnx/model_quantized.onnx", encode(find_tokenizer(embedding_bundle),
                                                                                  texts, 128))  # fmt: skip
    assert report["accuracy"]["int8"] == pytest.approx(wanted.score(emb), abs=1e-9)
    (check,) = [c for b in report["budgets"] for c in b["checks"] if c["key"] == "min_spearman"]
    assert check["measured"] == report["accuracy"]["int8"]["spearman"] and check["passed"] == (code == 0)


def test_a_metric_floor_without_data_or_above_one_is_refused(tmp_path, embedding_bundle):
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[[budget]]\nname = "sts"\ntarget = "int8"\nmin_spearman = 0.8\n')
    assert_one_line_error(invoke("profile", embedding_bundle, "--budgets", budgets), 2, "min_spearman", "--data")
    budgets.write_text('[[budget]]\nname = "sts"\ntarget = "int8"\nmin_spearman = 80\n')
    assert_one_line_error(invoke("profile", embedding_bundle, "--budgets", budgets), 2, "fraction", "line")


def test_a_pipeline_distils_exports_and_gates_an_embedding_model(tmp_path, teacher, corpus, sts_dev):
    """One TOML: compress on unlabelled text, export scored on STS pairs, profile gated on a Spearman floor."""
    spec = tmp_path / "pipeline.toml"
    spec.write_text(f"""
[pipeline]
work = "runs"
task = "embedding"

[compress]
teacher = "{teacher}"
data = "{corpus}"
student-layers = 2
epochs = 1
max-length = 32
held-out = 24

[export]
data = "{sts_dev}"
max-length = 64
max-accuracy-drop = 100

[profile]
data = "{sts_dev}"
threads = 1
batch-sizes = 1
seq-lens = "real"
runs = 3
warmup = 1

[[profile.budget]]
name = "int8 floor"
target = "int8"
seq_len = "real"
min_spearman = -1.0
""")
    result = invoke("pipeline", spec)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "runs" / "export" / "manifest.json").read_text())
    assert manifest["embedding"]["output"] == "sentence_embedding"
    report = json.loads((tmp_path / "runs" / "profile" / "report.json").read_text())
    assert report["passed"] and set(report["accuracy"]["int8"]) == {"spearman", "pearson"}


@settings(max_examples=60, deadline=None)
@given(anchors=st.integers(1, 6), k=st.integers(1, 8), m=st.integers(1, 10), seed=st.integers(0, 2**16))
def test_hard_negatives_replace_the_first_half_with_distinct_members_of_each_list(anchors, k, m, seed):
    import math

    from codir_edge.compress.embed import with_hard

    rng = np.random.default_rng(seed)
    negatives = rng.integers(0, 1000, size=(anchors, k + anchors))
    lists = rng.permutation(2000)[: anchors * m].reshape(anchors, m) + 1000  # distinct, apart from the random ones
    lists[rng.random(lists.shape) < 0.3] = -1  # lists that run short
    count = math.ceil(k / 2)
    out = with_hard(negatives, lists, count, np.random.default_rng(seed))
    assert out.shape == negatives.shape and (out[:, count:] == negatives[:, count:]).all()
    for row in range(anchors):
        valid = set(lists[row][lists[row] >= 0].tolist())
        taken = [x for x in out[row, :count].tolist() if x >= 1000]
        assert set(taken) <= valid and len(taken) == len(set(taken)) == min(count, len(valid))


def test_hard_negatives_are_computed_once_and_reported(tmp_path, teacher, corpus):
    out = tmp_path / "hard"
    result = invoke(*embed_args(teacher, corpus, out, "--epochs", "1", "--negative-sampling", "hard"))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["hard_negatives"]["method"] == "exact cosine" and metrics["hard_negatives"]["per_row"] == 20
    cosine_hard = ("--objective", "cosine", "--negative-sampling", "hard")
    refused = invoke(*embed_args(teacher, corpus, tmp_path / "x", *cosine_hard))
    assert_one_line_error(refused, 2, "--negative-sampling hard")
