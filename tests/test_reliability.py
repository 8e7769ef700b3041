"""Reliability across commands: bad input of every kind gives one line and the right exit code, a
killed export leaves the earlier bundle whole, weights and code in a model folder are data only,
and no command writes outside the folders it is given."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, interrupt_when_started, invoke
from conftest import build_tiny_bert, cut_glue

SST2_HEADER = "sentence\tlabel\n"


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, backbone_dir) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("rel") / "clf", backbone_dir, id2label={0: "0", 1: "1"})


def _data_folders(tmp_path: Path, glue_dir: Path) -> dict[str, Path]:
    """SST-2 folders broken in one way each, the other split kept real."""
    good = cut_glue(glue_dir, "SST-2", tmp_path / "good", 16, 16)
    broken = {
        "missing column": "sentence\n" + "a fine film\n" * 4,
        "not UTF-8": SST2_HEADER + "caf\xe9 cr\xe8me\t1\n",
        "empty file": "",
        "label outside the task": SST2_HEADER + "a fine film\t7\n",
    }
    folders = {}
    for name, body in broken.items():
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        encoded = body.encode("latin-1") if name == "not UTF-8" else body.encode()
        for split in ("train", "dev"):
            (folder / f"{split}.tsv").write_bytes(encoded if split == "dev" else (good / "train.tsv").read_bytes())
        if name != "empty file":
            (folder / "train.tsv").write_bytes(encoded)
        folders[name] = folder
    return folders


_DATA_FRAGMENTS = {
    "missing column": "label",
    "not UTF-8": "UTF-8",
    "empty file": "empty",
    "label outside the task": "'7'",
}


def _command(name: str, classifier: Path, data: Path, out: Path) -> list:
    common = ["--task", "sst2", "--data", data]
    return {
        "finetune": ["finetune", "--model", classifier, *common, "--out", out, "--epochs", "1"],
        "compress": ["compress", "--teacher", classifier, *common, "--out", out, "--student-layers", "1"],
        "evaluate": ["evaluate", classifier, *common],
        "export": ["export", classifier, *common, "--out", out, "--no-ort"],
    }[name]


@pytest.mark.parametrize("command", ["finetune", "compress", "evaluate", "export"])
@pytest.mark.parametrize("problem", list(_DATA_FRAGMENTS))
def test_every_data_taking_command_names_the_data_problem(tmp_path, classifier, glue_dir, no_leftovers, command,
                                                          problem):  # fmt: skip
    data = _data_folders(tmp_path, glue_dir)[problem]
    out = tmp_path / "out"
    result = invoke(*_command(command, classifier, data, out))
    assert_one_line_error(result, 2, _DATA_FRAGMENTS[problem])
    no_leftovers(out)


_COMPRESS = ["compress", "--teacher", "{clf}", "--task", "sst2", "--data", "{glue}", "--out", "{out}"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["finetune", "--model", "{missing}", "--task", "sst2", "--data", "{glue}", "--out", "{out}"],
            ["does not exist"],
        ),
        (
            ["compress", "--teacher", "{missing}", "--task", "sst2", "--data", "{glue}", "--out", "{out}"],
            ["does not exist"],
        ),
        (["evaluate", "{missing}", "--task", "sst2", "--data", "{glue}"], ["does not exist"]),
        (["export", "{missing}", "--out", "{out}"], ["does not exist"]),
        (["profile", "{missing}"], ["does not exist"]),
        (["verify", "{missing}"], ["does not exist", "pass a bundle folder"]),
        (["finetune", "--model", "{clf}", "--task", "sst2", "--data", "{missing}", "--out", "{out}"], ["{missing}"]),
        ([*_COMPRESS, "--student-layers", "5"], ["layers"]),
        ([*_COMPRESS, "--student-layers", "-1"], ["--student-layers"]),
        (
            ["finetune", "--model", "{clf}", "--task", "sst2", "--data", "{glue}", "--out", "{out}", "--epochs", "0"],
            ["--epochs"],
        ),  # fmt: skip
        (["export", "{clf}", "--out", "{out}", "--max-length", "4096"], ["4096"]),
        (["evaluate", "{clf}", "--task", "sst2", "--data", "{glue}", "--max-length", "4096"], ["4096"]),
        (["profile", "{image}"], ["is not an ONNX model"]),
        (["profile", "{clf_onnx_dir}", "--runs", "-3"], ["--runs"]),
        (["verify", "{image_bundle}"], ["manifest"]),
        (
            ["finetune", "--model", "{clf}", "--task", "nosuchtask", "--data", "{glue}", "--out", "{out}"],
            ["nosuchtask"],
        ),
    ],
)
def test_bad_paths_and_impossible_options_are_one_line(tmp_path, classifier, glue_dir, no_leftovers, args, fragments):
    image = tmp_path / "model.onnx"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(256))
    image_bundle = tmp_path / "image-bundle"
    image_bundle.mkdir()
    (image_bundle / "model.onnx").write_bytes(image.read_bytes())
    paths = {"missing": tmp_path / "nope", "glue": glue_dir, "out": tmp_path / "out", "clf": classifier,
             "image": image, "image_bundle": image_bundle, "clf_onnx_dir": image}  # fmt: skip
    result = invoke(*[str(a).format(**paths) for a in args])
    code = 2
    assert_one_line_error(result, code, *[f.format(**paths) for f in fragments])
    no_leftovers(tmp_path / "out")


def test_debug_prints_the_trace_and_keeps_the_exit_code(tmp_path):
    result = invoke("--debug", "profile", tmp_path / "nope.onnx")
    assert result.exit_code == 2 and "Traceback (most recent call last)" in result.output
    last = result.output.rstrip().splitlines()[-1]
    assert last.startswith("error: ") and "nope.onnx does not exist" in last


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGKILL, -9)])
def test_killed_export_leaves_the_earlier_bundle_untouched(tmp_path, backbone_dir, sig, code):
    model = build_tiny_bert(tmp_path / "m", backbone_dir, layers=4, hidden=128, id2label={0: "0", 1: "1"})
    out = tmp_path / "bundle"
    assert invoke("export", model, "--out", out, "--no-ort", "--no-tokenizer-in-graph").exit_code == 0
    before = _hashes(out)
    log = tmp_path / "log.txt"
    cmd = [sys.executable, "-m", "codir_edge.cli", "export", str(model), "--out", str(out), "--overwrite"]
    assert interrupt_when_started(cmd, log, ".bundle.tmp-*/.work/plain.onnx", tmp_path, sig) == code, log.read_text()
    assert _hashes(out) == before  # the earlier bundle, byte for byte
    staging = list(tmp_path.glob(".bundle.tmp-*"))
    if sig == signal.SIGKILL:
        assert len(staging) == 1  # swept by the next run beside it
        assert invoke("export", model, "--out", out, "--overwrite", "--no-ort", "--quantize", "none").exit_code == 0
        assert not list(tmp_path.glob(".bundle.tmp-*"))
    else:
        assert staging == [] and "error: interrupted" in log.read_text()


class _Sentinel:
    """Unpickling this runs code: it writes the file named in its state."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "code ran"))


def test_pickled_weights_never_run_code(tmp_path, classifier):
    folder = tmp_path / "pickled"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (folder / name).write_bytes((classifier / name).read_bytes())
    sentinel = tmp_path / "sentinel.txt"
    with open(folder / "pytorch_model.bin", "wb") as handle:
        pickle.dump({"weight": _Sentinel(str(sentinel))}, handle)
    result = invoke("export", folder, "--out", tmp_path / "out", "--no-ort")
    assert result.exit_code == 2 and not sentinel.exists(), result.output
    assert_one_line_error(result, 2)


def test_remote_code_in_a_model_folder_is_never_imported(tmp_path, classifier):
    folder = tmp_path / "remote"
    folder.mkdir()
    for path in classifier.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    sentinel = tmp_path / "imported.txt"
    (folder / "modeling_evil.py").write_text(f"open({str(sentinel)!r}, 'w').write('imported')\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.EvilModel",
                          "AutoConfig": "modeling_evil.EvilConfig"}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    result = invoke("export", folder, "--out", tmp_path / "out", "--no-ort", "--quantize", "none")
    assert not sentinel.exists(), result.output
    assert result.exit_code in (0, 2), result.output


# onnxruntime (1.29 on) writes these on import, for its usage telemetry; they are not ours
_ORT_HOME = ".cache/Microsoft/DeveloperTools/.onnxruntime"
_ONNXRUNTIME_OWN = {
    "home": {".cache", ".cache/Microsoft", ".cache/Microsoft/DeveloperTools", _ORT_HOME,
             f"{_ORT_HOME}/deviceid", f"{_ORT_HOME}/onnxruntime.db"},
    "tmp": {".ses"},
    "cwd": set(),
}  # fmt: skip


def test_commands_write_only_where_they_are_told(tmp_path, classifier, glue_dir):
    """HOME, the temporary folder and the working folder hold nothing of ours afterwards (only what
    importing onnxruntime writes): everything lands in --out and --json."""
    home, temp, cwd = (tmp_path / name for name in ("home", "tmp", "cwd"))
    for folder in (home, temp, cwd):
        folder.mkdir()
    data = cut_glue(glue_dir, "SST-2", tmp_path / "SST-2", 16, 16)
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(temp), "XDG_CACHE_HOME": str(home / ".cache")}
    env.pop("HF_HOME", None)
    run = [sys.executable, "-m", "codir_edge.cli"]
    bundle = tmp_path / "bundle"
    steps = [
        ["export", str(classifier), "--out", str(bundle), "--task", "sst2", "--data", str(data), "--no-ort"],
        ["verify", str(bundle)],
        [
            "profile",
            str(bundle),
            "--runs",
            "3",
            "--warmup",
            "1",
            "--seq-lens",
            "8",
            "--threads",
            "1",
            "--batch-sizes",
            "1",
            "--json",
            str(tmp_path / "report.json"),
        ],  # fmt: skip
        ["evaluate", str(classifier), "--task", "sst2", "--data", str(data)],
    ]
    for step in steps:
        done = subprocess.run(run + step, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    for folder in (home, temp, cwd):
        written = {str(p.relative_to(folder)) for p in folder.rglob("*")}
        assert written <= _ONNXRUNTIME_OWN[folder.name], (folder.name, sorted(written - _ONNXRUNTIME_OWN[folder.name]))
    assert not list(tmp_path.glob(".bundle.tmp-*"))
