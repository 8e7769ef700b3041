"""The bundle where apps run it, with the real clients: onnxruntime-node, transformers.js in Node,
transformers.js on onnxruntime-web's wasm in a real headless Chromium (the scripts of
``examples/apps``, pinned by its lockfile), the oldest onnxruntime each file claims to run on (a side
environment from PyPI), and no path of the build machine in any shipped file.

Python's side is onnxruntime with the bundle's own tokenizer, one text per call, as an app runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import invoke
from conftest import build_tiny_bert, cut_glue

APPS = Path(__file__).resolve().parents[1] / "examples" / "apps"
RUNNER = Path(__file__).resolve().parent / "runtimes" / "run_files.py"
LABELS = {0: "negative", 1: "positive"}  # names, so that the test sees config.json's labels reach the app
# the onnxruntime release each claimed minor version is checked on, and the release before a claim
# that is not the oldest checked (the file must fail there, or the claim is not the oldest)
RELEASES = {"1.15": "1.15.1", "1.16": "1.16.3", "1.29": "1.29.0", "1.30": "1.30.0"}
BEFORE = {"1.16": "1.15", "1.30": "1.29"}
EXTENSIONS = "0.13.0"  # what Android's onnxruntime-extensions AAR ships


def _node(*args: str, stdin: str | None = None, timeout: int = 300) -> str:
    if shutil.which("node") is None or not (APPS / "node_modules" / "@huggingface" / "transformers").is_dir():
        pytest.skip("the app tests need Node 20+ and `npm ci --prefix examples/apps` (.ci/run does both)")
    done = subprocess.run(["node", *args], cwd=APPS, input=stdin, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _export_app_bundle(root: Path, backbone_dir: Path, glue_dir: Path, *extra: str) -> Path:
    """A tiny SST-2 classifier with named labels, exported as the app tests load it (plus ``extra``)."""
    model = build_tiny_bert(root / "model", backbone_dir, layers=2, hidden=32, id2label=LABELS)
    data = cut_glue(glue_dir, "SST-2", root / "SST-2", 64, 32)
    out = root / "bundle"
    result = invoke("export", model, "--out", out, "--task", "sst2", "--data", data, "--max-length", "64",
                    "--tune-threads", "1", "--max-accuracy-drop", "100", *extra, "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def app_bundle(tmp_path_factory, backbone_dir, glue_dir) -> Path:
    return _export_app_bundle(tmp_path_factory.mktemp("apps"), backbone_dir, glue_dir)


@pytest.fixture(scope="module")
def dev_texts(glue_dir) -> list[str]:
    lines = (glue_dir / "SST-2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0] for line in lines]


def _python_rows(bundle: Path, file: str, texts: list[str]) -> list[dict]:
    """Label and score per text from onnxruntime in Python, one text per call."""
    from transformers import AutoTokenizer

    from codir_edge.onnx.session import create_session

    tokenizer = AutoTokenizer.from_pretrained(bundle)
    session = create_session(bundle / file, 1)
    names = {i.name for i in session.get_inputs()}
    rows = []
    for text in texts:
        feed = tokenizer(text, truncation=True, return_tensors="np")
        logits = session.run(None, {k: v.astype(np.int64) for k, v in feed.items() if k in names})[0][0]
        probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        best = int(probabilities.argmax())
        margin = float(np.ptp(probabilities))
        rows.append({"label": LABELS[best], "score": float(probabilities[best]), "margin": margin})
    return rows


def _assert_same(got: list[dict], expected: list[dict], texts: list[str]) -> None:
    """Labels equal on every text (a near-tie within the score tolerance aside), scores within 1e-4."""
    assert [r["text"] for r in got] == texts
    for row, want in zip(got, expected, strict=True):
        if want["margin"] > 2e-4:
            assert row["label"] == want["label"], (row, want)
            assert abs(row["score"] - want["score"]) <= 1e-4, (row, want)
        else:  # a tie: either label, the same top score
            assert abs(row["score"] - max(want["score"], 1 - want["score"])) <= 1e-4, (row, want)


def test_transformers_js_in_node_loads_the_bundle_as_exported(app_bundle, dev_texts):
    """Every SST-2 dev sentence, dtype fp32 and q8, through examples/apps/node/classify.mjs."""
    config = json.loads((app_bundle / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert json.loads((app_bundle / "tokenizer_config.json").read_text())["model_max_length"] == 64
    for dtype, file in (("fp32", "onnx/model.onnx"), ("q8", "onnx/model_quantized.onnx")):
        output = _node("node/classify.mjs", str(app_bundle), "--dtype", dtype, stdin="\n".join(dev_texts) + "\n")
        got = [json.loads(line) for line in output.splitlines()]
        _assert_same(got, _python_rows(app_bundle, file, dev_texts), dev_texts)


def test_transformers_js_in_headless_chromium_with_nothing_from_the_network(app_bundle, dev_texts, tmp_path):
    """The example page on onnxruntime-web's wasm, served from 127.0.0.1: 100 dev sentences."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("the browser test needs Chromium (.ci/run installs Debian's chromium)")
    texts = dev_texts[:100]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    for dtype, file in (("fp32", "onnx/model.onnx"), ("q8", "onnx/model_quantized.onnx")):
        result = json.loads(_node("web/drive.mjs", str(app_bundle), str(tmp_path / "texts.json"), "--dtype", dtype,
                                  "--chromium", chromium))  # fmt: skip
        assert result["outside"] == []  # no request left 127.0.0.1
        _assert_same(result["rows"], _python_rows(app_bundle, file, texts), texts)


def _feeds(bundle: Path, texts: list[str]) -> dict[str, dict]:
    """Inputs for every token-id file of the bundle: a padded batch, or the file's fixed shape."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    feeds = {}
    for variant in manifest["variants"]:
        if variant.get("takes") == "text":
            feeds[variant["file"]] = {"text": texts[:1]}
            continue
        shape = variant.get("fixed_shape")
        if shape:
            batch = tokenizer(texts[: shape[0]], padding="max_length", truncation=True, max_length=shape[1])
        else:
            batch = tokenizer(texts, padding=True)
        feeds[variant["file"]] = {k: [list(map(int, row)) for row in v] for k, v in batch.items()}
    return feeds


def _python_outputs(bundle: Path, feeds: dict[str, dict]) -> dict[str, np.ndarray]:
    from codir_edge.onnx.session import create_session

    out = {}
    for file, feed in feeds.items():
        text = "text" in feed
        session = create_session(bundle / file, 1, custom_ops=text)
        types = {i.name: np.int32 if i.type == "tensor(int32)" else np.int64 for i in session.get_inputs()}
        arrays = {k: np.array(v) if text else np.array(v, dtype=types[k]) for k, v in feed.items()}
        out[file] = session.run(None, arrays)[0]
    return out


def _assert_node_logits_match_python(bundle: Path, feeds: dict[str, dict], tmp_path: Path) -> None:
    """Each file of ``feeds`` run by onnxruntime-node (``node/logits.mjs``) and by Python's onnxruntime."""
    node_feeds = {f: {k: {"dims": [len(v), len(v[0])], "data": sum(v, [])} for k, v in feed.items()}
                  for f, feed in feeds.items()}  # fmt: skip
    (tmp_path / "feeds.json").write_text(json.dumps(node_feeds))
    got = json.loads(_node("node/logits.mjs", str(bundle), str(tmp_path / "feeds.json")))
    for file, expected in _python_outputs(bundle, feeds).items():
        logits = np.array(got[file]["data"], dtype=np.float32).reshape(got[file]["dims"])
        np.testing.assert_allclose(logits, expected, atol=1e-4, err_msg=file)


def test_onnxruntime_node_runs_every_token_id_file_with_pythons_logits(app_bundle, dev_texts, tmp_path):
    feeds = {f: v for f, v in _feeds(app_bundle, dev_texts[:4]).items() if "text" not in v}
    assert {"onnx/model.onnx", "onnx/model_quantized.onnx", "onnx/model.ort", "onnx/model_quantized.fixed.onnx",
            "onnx/model_quantized.fixed.ort"} <= set(feeds)  # fmt: skip
    _assert_node_logits_match_python(app_bundle, feeds, tmp_path)


@pytest.fixture(scope="module")
def q4_bundle(tmp_path_factory, backbone_dir, glue_dir) -> Path:
    """The app bundle's recipe with ``--embedding-bits 4``: GatherBlockQuantized in every INT8 file."""
    return _export_app_bundle(tmp_path_factory.mktemp("apps-q4"), backbone_dir, glue_dir, "--embedding-bits", "4",
                              "--fixed-shape", "off", "--no-tokenizer-in-graph")  # fmt: skip


def test_four_bit_embeddings_run_in_transformers_js_and_onnxruntime_node(q4_bundle, dev_texts, tmp_path):
    """Every SST-2 dev sentence through transformers.js (q8 loads the 4-bit file), and the .onnx and .ort
    INT8 files through onnxruntime-node, against Python's onnxruntime on the same files."""
    output = _node("node/classify.mjs", str(q4_bundle), "--dtype", "q8", stdin="\n".join(dev_texts) + "\n")
    got = [json.loads(line) for line in output.splitlines()]
    _assert_same(got, _python_rows(q4_bundle, "onnx/model_quantized.onnx", dev_texts), dev_texts)
    feeds = {f: v for f, v in _feeds(q4_bundle, dev_texts[:4]).items() if f != "onnx/model.onnx"}
    assert set(feeds) == {"onnx/model_quantized.onnx", "onnx/model.ort"}
    _assert_node_logits_match_python(q4_bundle, feeds, tmp_path)


def _side_python(version: str, extensions: str = EXTENSIONS) -> Path:
    """A virtual environment with onnxruntime ``version`` and onnxruntime-extensions ``extensions`` from PyPI."""
    import fcntl

    folder = Path(os.environ["CODIR_EDGE_CACHE"]) / "runtimes" / f"onnxruntime-{version}-extensions-{extensions}"
    python, done = folder / "bin" / "python", folder / "installed"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:  # xdist workers share the suite cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            f"onnxruntime=={version}", "numpy<2", f"onnxruntime-extensions=={extensions}"],
                           check=True, capture_output=True)  # fmt: skip
            done.touch()
    return python


def _run_in(python: Path, bundle: Path, feeds: dict, request: Path) -> dict:
    request.write_text(json.dumps({"bundle": str(bundle), "files": feeds}))
    done = subprocess.run([str(python), str(RUNNER), str(request)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["files"]


def test_every_oldest_onnxruntime_claim_holds_on_that_release_and_not_before(app_bundle, dev_texts, tmp_path):
    """Each file runs on the onnxruntime its manifest entry names, with the outputs of today's; a
    claim newer than the oldest release checked fails on the release before, so it is the oldest."""
    manifest = json.loads((app_bundle / "manifest.json").read_text())
    claims = {v["file"]: v["runtime"] for v in manifest["variants"]}
    assert all(c["basis"].startswith("measured") for c in claims.values()), claims
    strings = claims["onnx/model.strings.onnx"]["onnxruntime_extensions"]
    assert strings["min_version"] == "0.13" and "WordpieceTokenizer" in strings["operators"]
    feeds = _feeds(app_bundle, dev_texts[:4])
    expected = _python_outputs(app_bundle, feeds)
    claimed = {c["min_onnxruntime"] for c in claims.values()}
    wanted = claimed | {BEFORE[c] for c in claimed if c in BEFORE}
    assert wanted <= set(RELEASES), f"pin a release for {wanted - set(RELEASES)} in RELEASES"
    with ThreadPoolExecutor(4) as pool:
        pythons = dict(zip(wanted, pool.map(lambda v: _side_python(RELEASES[v]), wanted), strict=True))
    results = {minor: _run_in(python, app_bundle, feeds, tmp_path / f"{minor}.json")
               for minor, python in pythons.items()}  # fmt: skip
    for file, claim in claims.items():
        ran = results[claim["min_onnxruntime"]][file]
        assert "error" not in ran, (file, claim, ran)
        np.testing.assert_allclose(np.array(ran["output"], dtype=np.float32), expected[file], atol=1e-4, err_msg=file)
        if claim["min_onnxruntime"] in BEFORE:
            assert "error" in results[BEFORE[claim["min_onnxruntime"]]][file], (file, "runs on the release before")


def test_no_shipped_file_holds_a_path_of_the_build_machine(app_bundle):
    model, out = app_bundle.parent / "model", app_bundle
    forbidden = {str(model.resolve()), str(out.resolve()), str(out.parent.resolve()), str(Path.home()),
                 f".{out.name}.tmp-"}  # fmt: skip
    for file in (p for p in app_bundle.rglob("*") if p.is_file()):
        data = file.read_bytes()
        found = [path for path in forbidden if path.encode() in data]
        assert not found, (file.name, found)
    manifest = json.loads((app_bundle / "manifest.json").read_text())
    assert manifest["source"]["name"] == "model" and "--out bundle" in manifest["command"]


def test_min_onnxruntime_leaves_out_what_needs_a_newer_one_and_says_why(tmp_path, app_bundle):
    from cli_helpers import assert_one_line_error

    model = app_bundle.parent / "model"
    out = tmp_path / "b"
    result = invoke("export", model, "--out", out, "--max-length", "32", "--tune-threads", "1", "--quantize",
                    "dynamic", "--no-tokenizer-in-graph", "--min-onnxruntime", "1.17")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "note: no onnx/model_quantized.fixed.ort: it needs onnxruntime 1.30, above --min-onnxruntime 1.17" in (
        result.output
    )
    manifest = json.loads((out / "manifest.json").read_text())
    files = {v["file"]: v["runtime"]["min_onnxruntime"] for v in manifest["variants"]}
    assert "onnx/model_quantized.fixed.ort" not in files and files["onnx/model.ort"] == "1.16"
    assert [(r["name"], r["file"]) for r in manifest["left_out"]] == [("ort-fixed", "onnx/model_quantized.fixed.ort")]
    assert manifest["left_out"][0]["why"].startswith("it needs onnxruntime 1.30, above --min-onnxruntime 1.17")
    left_out = ("model_quantized.fixed.ort", "required_operators.fixed.config")
    assert not any((out / "onnx" / name).exists() for name in left_out)
    assert invoke("verify", out).exit_code == 0
    assert_one_line_error(invoke("export", model, "--out", tmp_path / "c", "--min-onnxruntime", "1.12"), 2,
                          "back to onnxruntime 1.15", "pass 1.15 or later")  # fmt: skip
    assert_one_line_error(invoke("export", model, "--out", tmp_path / "c", "--min-onnxruntime", "latest"), 2,
                          "is not a version")  # fmt: skip
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(("family", "claimed"), [("roberta", "0.15"), ("xlm-roberta", "0.13")])
def test_each_strings_graph_kind_claims_the_extensions_release_it_needs(tmp_path_factory, glue_dir, family, claimed):
    """SentencePiece graphs run on onnxruntime-extensions 0.13.0 (Android's AAR); the byte-level BPE
    one's HfJsonTokenizer is absent there and tokenizes differently in 0.14.0, so it claims 0.15.
    Each runs on its claimed release with today's outputs (WordPiece: the oldest-runtime test)."""
    from families import build_family_classifier

    root = tmp_path_factory.mktemp(family)
    model = build_family_classifier(family, root / "model", glue_dir)
    out = root / "bundle"
    result = invoke("export", model, "--out", out, "--max-length", "32", "--quantize", "none", "--no-ort",
                    "--tune-threads", "1", "--fixed-shape", "off", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    strings = next(v for v in json.loads((out / "manifest.json").read_text())["variants"] if v["name"] == "strings")
    assert strings["runtime"]["onnxruntime_extensions"]["min_version"] == claimed
    feeds = {strings["file"]: {"text": ["a gripping film, café naïve 😀 <mask>"]}}
    expected = _python_outputs(out, feeds)[strings["file"]]
    runtime = RELEASES[strings["runtime"]["min_onnxruntime"]]
    releases = {"0.15": ("0.15.0", "0.14.0", "0.13.0"), "0.13": ("0.13.0",)}[claimed]
    with ThreadPoolExecutor(3) as pool:
        pythons = dict(zip(releases, pool.map(lambda e: _side_python(runtime, e), releases), strict=True))
    ran = {e: _run_in(p, out, feeds, root / f"{e}.json")[strings["file"]] for e, p in pythons.items()}
    np.testing.assert_allclose(np.array(ran[releases[0]]["output"], dtype=np.float32), expected, atol=1e-6)
    if claimed == "0.15":
        assert "HfJsonTokenizer" in ran["0.13.0"]["error"]
        assert "error" in ran["0.14.0"] or np.abs(np.array(ran["0.14.0"]["output"]) - expected).max() > 1e-6


@pytest.fixture(scope="module")
def embedding_bundle(tmp_path_factory, backbone_dir) -> Path:
    """A tiny sentence-transformers model (mean pooling, normalised) exported with --task embedding."""
    from codir_edge.models.sentence import SentenceHead, write_sentence_head

    root = tmp_path_factory.mktemp("embedding-app")
    model = build_tiny_bert(root / "model", backbone_dir, num_labels=None, layers=2, hidden=32)
    write_sentence_head(model, SentenceHead("mean", True), 32, 128)
    out = root / "bundle"
    result = invoke("export", model, "--out", out, "--task", "embedding", "--max-length", "64", "-q")
    assert result.exit_code == 0, result.output
    return out


def _sts_texts(glue_dir: Path) -> list[str]:
    rows = [line.split("\t") for line in (glue_dir / "STS-B" / "dev.tsv").read_text().splitlines()[1:]]
    return list(dict.fromkeys([r[7] for r in rows] + [r[8] for r in rows]))


def _assert_embeddings_match(rows: list[dict], texts: list[str], bundle: Path, file: str) -> None:
    """Cosine at least 0.999 to the same file's sentence_embedding output in Python's onnxruntime."""
    from codir_edge.data.encode import encode
    from codir_edge.data.examples import Examples
    from codir_edge.data.fast_tokenizer import find_tokenizer
    from codir_edge.onnx.embed import onnx_embeddings

    assert [r["text"] for r in rows] == texts
    encoded = encode(find_tokenizer(bundle), Examples(texts, None, [0] * len(texts), "sts"), 64)
    app = np.asarray([r["embedding"] for r in rows], dtype=np.float64)
    python = onnx_embeddings(bundle / file, encoded).astype(np.float64)
    cosine = (app * python).sum(1) / np.linalg.norm(app, axis=1) / np.linalg.norm(python, axis=1)
    assert cosine.min() >= 0.999, (file, float(cosine.min()))


def test_transformers_js_feature_extraction_gives_the_graphs_embedding(embedding_bundle, glue_dir):
    """Every STS-B dev sentence, dtype fp32 and q8, through examples/apps/node/embed.mjs, one text per call."""
    texts = _sts_texts(glue_dir)
    for dtype, file in (("fp32", "onnx/model.onnx"), ("q8", "onnx/model_quantized.onnx")):
        output = _node("node/embed.mjs", str(embedding_bundle), "--dtype", dtype, stdin="\n".join(texts) + "\n")
        _assert_embeddings_match([json.loads(line) for line in output.splitlines()], texts, embedding_bundle, file)


def test_the_web_page_embeds_with_an_embedding_bundle_in_headless_chromium(embedding_bundle, glue_dir, tmp_path):
    """The same page reads the bundle's manifest and embeds instead of classifying: 100 STS-B sentences."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("the browser test needs Chromium (.ci/run installs Debian's chromium)")
    texts = _sts_texts(glue_dir)[:100]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    for dtype, file in (("fp32", "onnx/model.onnx"), ("q8", "onnx/model_quantized.onnx")):
        result = json.loads(_node("web/drive.mjs", str(embedding_bundle), str(tmp_path / "texts.json"), "--dtype",
                                  dtype, "--chromium", chromium))  # fmt: skip
        assert result["outside"] == []
        _assert_embeddings_match(result["rows"], texts, embedding_bundle, file)
