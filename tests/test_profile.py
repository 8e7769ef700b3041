"""``profile`` through the CLI with real onnxruntime sessions in worker processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import make_tiny_onnx
from typer.testing import CliRunner

from codir_edge.cli.app import app
from codir_edge.core.errors import InputError
from codir_edge.profile.budgets import parse_budgets

runner = CliRunner()
FAST = ["--runs", "5", "--warmup", "1", "--quiet"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, code, *fragments):
    assert result.exit_code == code, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_sweep_figures_and_reports(tmp_path, tiny_bundle):
    out = tmp_path / "r.json"
    old_mask = os.umask(0o022)
    try:
        result = _sweep(tmp_path, tiny_bundle, out)
    finally:
        os.umask(old_mask)
    assert result.exit_code == 0, result.output
    pictures = f"{tmp_path / 'r.png'}, {tmp_path / 'r-accuracy.png'}"  # accuracy known from the manifest
    assert f"reports: {out}, {tmp_path / 'r.md'}, {pictures}" in result.output
    for name in (
        "r.json",
        "r.md",
        "r.png",
        "r-accuracy.png",
    ):  # the umask, like every other file we write (not mkstemp's 0600)
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    assert "×first" in result.output  # two targets: the ratio column has something to compare
    _check_sweep(tmp_path, out)


def _sweep(tmp_path, tiny_bundle, out):
    return invoke(
        "profile",
        tiny_bundle,
        "--threads",
        "1",
        "--batch-sizes",
        "1,4",
        "--seq-lens",
        "16,64",
        *FAST,
        "--json",
        out,
        "--markdown",
        tmp_path / "r.md",
        "--plot",
        tmp_path / "r.png",
        "--raw-samples",
    )


def _check_sweep(tmp_path, out):
    report = json.loads(out.read_text())
    assert {r["target"] for r in report["results"]} == {"fp32", "int8"} and len(report["results"]) == 8
    row = report["results"][0]
    for key in (
        "cold_start_ms",
        "p50_ms",
        "p90_ms",
        "p95_ms",
        "p99_ms",
        "mean_ms",
        "std_ms",
        "min_ms",
        "max_ms",
        "throughput_seq_per_s",
        "peak_rss_mb",
        "size_mb",
    ):
        assert row[key] > 0, key
    assert row["min_ms"] <= row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert len(row["repeats"][0]["samples_ms"]) == 5
    assert all(r["p50_ratio"] == pytest.approx(1.0) for r in report["results"] if r["target"] == "fp32")
    assert report["machine"]["onnxruntime"] and "CPUExecutionProvider" in report["machine"]["providers"]
    assert report["accuracy"] == {"fp32": {"accuracy": 0.91}, "int8": {"accuracy": 0.90}}  # from the manifest,
    assert all(basis.startswith("recorded by export") for basis in report["accuracy_basis"].values())  # labelled
    assert "| int8 |" in (tmp_path / "r.md").read_text()
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def budgets_file(tmp_path, body: str) -> Path:
    path = tmp_path / "budgets.toml"
    path.write_text(textwrap.dedent(body))
    return path


def test_budget_gate_fails_on_swap_and_passes_back(tmp_path, tiny_bundle):
    """A size budget the small variant meets: swapping the big model in under its name fails the gate."""
    budgets = budgets_file(
        tmp_path,
        """
        [[budget]]
        name = "student fits"
        target = "int8"
        threads = 1
        batch_size = 1
        seq_len = 16
        max_size_mb = 1.5
        p95_ms = 10000
    """,
    )
    junit = tmp_path / "junit.xml"
    args = ["profile", tiny_bundle, "--budgets", budgets, *FAST, "--junit", junit]
    assert invoke(*args).exit_code == 0
    case = ET.parse(junit).getroot().find(".//testcase")
    assert case.get("name") == "student fits" and case.find("failure") is None

    small = (tiny_bundle / "model.int8.onnx").read_bytes()
    (tiny_bundle / "model.int8.onnx").write_bytes((tiny_bundle / "model.onnx").read_bytes())
    failed = invoke(*args)
    assert failed.exit_code == 1, failed.output
    failure = ET.parse(junit).getroot().find(".//testcase/failure")
    assert failure is not None and "max_size_mb: measured" in failure.get("message")
    assert "limit <= 1.5" in failure.get("message")

    (tiny_bundle / "model.int8.onnx").write_bytes(small)
    assert invoke(*args).exit_code == 0


def test_only_budget_configurations_run_without_sweep_options(tmp_path, tiny_bundle):
    budgets = budgets_file(
        tmp_path,
        """
        [[budget]]
        name = "b"
        target = "fp32"
        threads = 1
        batch_size = 2
        seq_len = 32
        p99_ms = 100000
    """,
    )
    out = tmp_path / "r.json"
    assert invoke("profile", tiny_bundle, "--budgets", budgets, *FAST, "--json", out).exit_code == 0
    rows = json.loads(out.read_text())["results"]
    assert {(r["threads"], r["batch_size"], r["seq_len"]) for r in rows} == {(1, 2, 32)}


def test_real_sentences_and_measured_accuracy(tmp_path, tiny_bundle, sst2_small):
    out = tmp_path / "r.json"
    result = invoke(
        "profile",
        tiny_bundle / "model.int8.onnx",
        "--threads",
        "1",
        "--batch-sizes",
        "1",
        "--seq-lens",
        "real",
        "--task",
        "sst2",
        "--data",
        sst2_small,
        *FAST,
        "--json",
        out,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["results"][0]["seq_len"] == "real"
    assert 0.0 <= report["accuracy"]["model.int8.onnx"]["accuracy"] <= 1.0


def test_peak_memory_is_the_workers_own(tmp_path, tiny_bundle):
    """A big model must show a bigger peak RSS than a small one, whatever the parent process holds."""
    big = make_tiny_onnx(tmp_path / "big.onnx", hidden=1024)  # 125 MB of embeddings
    ballast = b"\x01" * (400 * 1024 * 1024)  # the parent's own peak must not leak into the workers' figures
    out = tmp_path / "r.json"
    result = invoke(
        "profile",
        tiny_bundle / "model.int8.onnx",
        big,
        "--threads",
        "1",
        "--batch-sizes",
        "1",
        "--seq-lens",
        "8",
        *FAST,
        "--json",
        out,
    )
    del ballast
    assert result.exit_code == 0, result.output
    small_rss, big_rss = (r["peak_rss_mb"] for r in json.loads(out.read_text())["results"])
    assert small_rss < 300 and big_rss > small_rss + 100


def test_repeat_reports_median(tmp_path, tiny_bundle):
    out = tmp_path / "r.json"
    assert (
        invoke(
            "profile",
            tiny_bundle / "model.int8.onnx",
            "--threads",
            "1",
            "--batch-sizes",
            "1",
            "--seq-lens",
            "8",
            "--repeat",
            "3",
            *FAST,
            "--json",
            out,
        ).exit_code
        == 0
    )
    row = json.loads(out.read_text())["results"][0]
    p50s = sorted(r["p50_ms"] for r in row["repeats"])
    assert len(p50s) == 3 and row["p50_ms"] == p50s[1]


@pytest.fixture()
def bad_files(tmp_path):
    png = tmp_path / "image.onnx"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    good = make_tiny_onnx(tmp_path / "good.onnx")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[:200])
    return {"png": png, "truncated": truncated, "good": good}


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["{missing}"], ["does not exist"]),
        (["{png}"], ["is not an ONNX model"]),
        (["{truncated}"], ["cannot be loaded by onnxruntime"]),
        (["{good}", "--provider", "coreml"], ["provider 'coreml' is not in this onnxruntime build", "cpu"]),
        (["{good}", "--runs", "0"], ["--runs must be at least 1"]),
        (["{good}", "--threads", "0"], ["--threads '0' must list integers of at least 1"]),
        (["{good}", "--seq-lens", "-4"], ["--seq-lens '-4'"]),
        (["{good}", "--batch-sizes", "x"], ["comma-separated integers"]),
        (["{good}", "--seq-lens", "real"], ["needs --task and --data"]),
    ],
)
def test_bad_input_exits_2(tmp_path, bad_files, args, fragments):
    paths = {**bad_files, "missing": tmp_path / "nope.onnx"}
    result = invoke("profile", *FAST, *[a.format(**paths) for a in args])
    one_line_error(result, 2, *fragments)


def test_sequence_longer_than_model_limit(tiny_bundle):
    one_line_error(invoke("profile", tiny_bundle, "--seq-lens", "512", *FAST), 2, "exceeds the 128 positions")


def test_budget_naming_unknown_target(tmp_path, tiny_bundle):
    budgets = budgets_file(tmp_path, '[[budget]]\nname = "x"\ntarget = "fp16"\np50_ms = 5\n')
    one_line_error(invoke("profile", tiny_bundle, "--budgets", budgets, *FAST), 2, "names target 'fp16'", "fp32, int8")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[budget]]\nname = "a"\ntarget = "t"\np95_ms = 5\nspeed = 3\n', "line 5: unknown key 'speed'"),
        ('[[budget]]\nname = "a"\ntarget = "t"\np95_ms = "fast"\n', "line 4: p95_ms must be a number"),
        ('[[budget]]\nname = "a"\ntarget = "t"\np95_ms = -1\n', "line 4: p95_ms must be > 0"),
        ('[[budget]]\nname = "a"\ntarget = "t"\nthreads = 0\np95_ms = 1\n', "line 4: threads must be a positive"),
        ('[[budget]]\nname = "a"\ntarget = "t"\nmin_accuracy = 91\n', "min_accuracy is a fraction"),
        ('[[budget]]\nname = "a"\ntarget = "t"\n', "sets no limit"),
        ('[[budget]]\nname = "a"\np95_ms = 1\n', "non-empty string 'target'"),
        ("[[budget]\nname = 1\n", "invalid TOML"),
        ("", "no [[budget]] tables"),
    ],
)
def test_malformed_budgets_name_the_line(body, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_budgets(body, "b.toml")


def test_budgets_property_any_text_is_parsed_or_one_line_error():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    keys = st.sampled_from(["name", "target", "p50_ms", "threads", "seq_len", "tolerance", "bogus", "min_accuracy"])
    values = st.one_of(st.integers(-5, 300), st.floats(allow_nan=True), st.text(max_size=5), st.booleans())

    @settings(max_examples=300, deadline=None)
    @given(
        st.one_of(
            st.text(max_size=200),
            st.lists(st.tuples(keys, values), max_size=8).map(
                lambda kv: "[[budget]]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in kv)
            ),
        )
    )
    def check(text):
        try:
            budgets = parse_budgets(text, "b.toml")
        except InputError as exc:
            assert "\n" not in str(exc)
        else:
            assert budgets and all(b.limits or b.min_accuracy is not None for b in budgets)

    check()


def test_profile_runs_where_torch_cannot_be_imported(tmp_path, tiny_bundle, sst2_small):
    """The device path: a sitecustomize makes torch and transformers unimportable in every process."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        textwrap.dedent("""
        import sys
        class _Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "transformers", "optimum"):
                    raise ModuleNotFoundError(f"No module named '{name}' (blocked)")
        sys.meta_path.insert(0, _Block())
    """)
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "blocked" in probe.stderr
    out = tmp_path / "r.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "codir_edge.cli",
            "profile",
            str(tiny_bundle),
            "--threads",
            "1",
            "--batch-sizes",
            "1",
            "--seq-lens",
            "16,real",
            "--task",
            "sst2",
            "--data",
            str(sst2_small),
            "--json",
            str(out),
            *FAST,
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(json.loads(out.read_text())["results"]) == 4


def test_pytorch_baseline_target(tmp_path, tiny_classifier):
    out = tmp_path / "r.json"
    result = invoke(
        "profile", tiny_classifier, "--threads", "1", "--batch-sizes", "1", "--seq-lens", "16", *FAST, "--json", out
    )
    assert result.exit_code == 0, result.output
    row = json.loads(out.read_text())["results"][0]
    assert row["provider"] == "pytorch" and row["p50_ms"] > 0


def test_manifest_paths_cannot_leave_the_bundle(tmp_path, tiny_bundle):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    manifest["variants"][0]["file"] = "../../etc/passwd"
    (tiny_bundle / "manifest.json").write_text(json.dumps(manifest))
    one_line_error(invoke("profile", tiny_bundle, *FAST), 2, "leaves the bundle")


def test_manifest_reader_any_json_is_read_or_one_line_error(tmp_path):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from codir_edge.bundle.manifest import read_manifest

    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=12),
        st.sampled_from(["model.onnx", "../x", "/abs", "codir-edge-bundle", "int8"]),
    )
    tree = st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(
                st.sampled_from(["format", "variants", "files", "name", "file", "accuracy", "path"]), inner, max_size=4
            ),
        ),
        max_leaves=12,
    )

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(tree.map(json.dumps), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))))
    def check(text):
        (tmp_path / "manifest.json").write_text(text, encoding="utf-8")
        try:
            manifest = read_manifest(tmp_path)
        except InputError as exc:
            assert "\n" not in str(exc)
        else:
            assert manifest.variants and all(Path(v.file).parts[0] != ".." for v in manifest.variants)

    check()


def test_one_target_gets_no_ratio_column(tmp_path):
    """A ratio to the first target means nothing when there is only the first target."""
    model = make_tiny_onnx(tmp_path / "m.onnx")
    markdown = tmp_path / "r.md"
    args = ("--threads", "1", "--batch-sizes", "1", "--seq-lens", "8", *FAST, "--markdown", markdown)
    result = invoke("profile", model, *args)
    assert result.exit_code == 0, result.output
    assert "p50 ms" in result.output and "×first" not in result.output
    assert "×first" not in markdown.read_text() and "| m.onnx |" in markdown.read_text()


def test_two_bundles_are_named_apart_by_folder_in_reports_and_budgets(tmp_path, tiny_bundle):
    """Two students compared in one run: their shared variant names take their folders' names, the
    reports and budgets use those, and a budget naming the bare shared name says which to pick."""
    other = tmp_path / "student-b"
    shutil.copytree(tiny_bundle, other)
    (other / "model.int8.onnx").write_bytes((other / "model.onnx").read_bytes())  # b's int8 is the big graph
    budgets = budgets_file(
        tmp_path,
        """
        [[budget]]
        name = "b's int8 fits"
        target = "student-b/int8"
        threads = 1
        batch_size = 1
        seq_len = 16
        max_size_mb = 1.5
    """,
    )
    out, junit = tmp_path / "r.json", tmp_path / "j.xml"
    result = invoke("profile", tiny_bundle, other, "--budgets", budgets, *FAST, "--json", out, "--junit", junit)
    assert result.exit_code == 1, result.output  # b's int8 is the big graph: the budget names it, not a's
    assert out.is_file(), result.output
    report = json.loads(out.read_text())
    named = ["bundle/fp32", "bundle/int8", "student-b/fp32", "student-b/int8"]
    assert [t["name"] for t in report["targets"]] == named and {r["target"] for r in report["results"]} == set(named)
    failure = ET.parse(junit).getroot().find(".//testcase/failure")
    assert failure is not None and "max_size_mb" in failure.get("message")

    ambiguous = budgets_file(tmp_path, budgets.read_text().replace('"student-b/int8"', '"int8"'))
    one_line_error(invoke("profile", tiny_bundle, other, "--budgets", ambiguous, *FAST), 2,
                   "'int8', which 2 targets have (bundle/int8, student-b/int8)")  # fmt: skip
    alone = invoke("profile", tiny_bundle, "--budgets", ambiguous, *FAST, "--json", out)
    assert alone.exit_code == 0, alone.output  # one bundle: the short names stand
    assert {r["target"] for r in json.loads(out.read_text())["results"]} == {"fp32", "int8"}

    one_line_error(invoke("profile", tiny_bundle, tiny_bundle, *FAST), 2, "is given twice", "pass each target once")
    same_folder_name = tmp_path / "elsewhere" / "bundle"
    shutil.copytree(tiny_bundle, same_folder_name)
    one_line_error(invoke("profile", tiny_bundle, same_folder_name, *FAST), 2, "both named bundle/fp32",
                   "give one of their folders another name")  # fmt: skip
