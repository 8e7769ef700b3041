"""``codir-edge compress`` through the CLI: real tiny teachers, the real tokenizer and real SST-2 rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import (
    assert_one_line_error,
    compress_args,
    interrupt_after_first_checkpoint,
    invoke,
    invoke_one_thread,
    max_difference,
    read_log,
    run_cli,
    weights_of,
)
from conftest import build_tiny_bert, cut_glue, tiny_teacher

CODIR_TERMS = {"contrastive", "contrastive_top1", "contrastive_grad_share"}  # the term, and whether it still teaches
TERMS = {"none": {"ce"}, "kd": {"ce", "kd"}, "mse": {"ce", "kd", "pkd"}, "codir": {"ce", "kd", *CODIR_TERMS}}


@pytest.fixture()
def sst2_400(tmp_path, glue_dir) -> Path:
    """400 real SST-2 train rows and 40 dev rows: enough steps to interrupt a run in the middle."""
    return cut_glue(glue_dir, "SST-2", tmp_path / "SST-2-400", 400, 40)


@pytest.mark.parametrize("objective", ["codir", "kd", "mse", "none"])
def test_each_objective_writes_a_loadable_student(tmp_path, teacher, sst2_small, objective):
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "student"
    result = invoke(*compress_args(teacher, sst2_small, out, "--objective", objective, "--json", tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    assert f"sst2 {objective}: student dev accuracy" in result.output
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_hidden_layers == 2  # half the teacher's 4
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["objective"] == objective and metrics["layer_map"] == [2, 4]
    assert 0 <= metrics["dev"]["accuracy"] <= 1 and 0 <= metrics["teacher_dev"]["accuracy"] <= 1
    assert metrics["config"]["negatives"] == 5 and metrics["config"]["kd_temperature"] == 2.0
    assert metrics["student_parameters"] < metrics["teacher_parameters"] and metrics["wall_time_s"] > 0
    steps = [row for row in read_log(out) if "lr" in row]
    assert steps and set(steps[-1]) == TERMS[objective] | {"step", "epoch", "lr", "examples_per_s"}
    banks = list((out / "cache").glob("teacher-bank-*.safetensors"))
    assert len(banks) == (0 if objective == "none" else 1)  # plain fine-tuning skips the teacher pass
    assert (out / "tokenizer.json").is_file() and (out / "model.safetensors").is_file()
    assert not list(tmp_path.glob(".student*")), "the working folder was left behind"
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["student_score"] == metrics["dev"]["accuracy"]
    if objective == "codir":  # every window says whether the term still teaches, and metrics.json the last one
        assert all(set(row) >= CODIR_TERMS for row in steps)
        assert metrics["contrastive_end"] == {name: steps[-1][name] for name in CODIR_TERMS}
        assert 0 <= steps[-1]["contrastive_top1"] <= 1 and steps[-1]["contrastive_grad_share"] > 0
    else:
        assert "contrastive_end" not in metrics


def test_hard_negatives_are_drawn_reproducibly_and_say_what_they_cost(tmp_path, teacher, sst2_small):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        result = invoke(*compress_args(teacher, sst2_small, out, "--negative-sampling", "hard"))
        assert result.exit_code == 0, result.output
    assert max_difference(weights_of(outs[0]), weights_of(outs[1])) == 0.0  # the lists and draws are seeded
    metrics = json.loads((outs[0] / "metrics.json").read_text())
    assert metrics["hard_negatives"]["method"] == "exact cosine" and metrics["hard_negatives"]["per_row"] == 20
    assert metrics["hard_negatives"]["seconds"] >= 0 and metrics["config"]["negative_sampling"] == "hard"
    label = tmp_path / "label"
    assert invoke(*compress_args(teacher, sst2_small, label)).exit_code == 0
    assert max_difference(weights_of(outs[0]), weights_of(label)) > 0  # the negatives changed what it learnt


def test_instance_negatives_train_another_student_and_are_refused_without_codir(tmp_path, teacher, sst2_small):
    out = tmp_path / "instance"
    result = invoke(*compress_args(teacher, sst2_small, out, "--negative-sampling", "instance"))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["negative_sampling"] == "instance" and metrics["hard_negatives"]["per_row"] == 20
    hard = tmp_path / "hard"
    assert invoke(*compress_args(teacher, sst2_small, hard, "--negative-sampling", "hard")).exit_code == 0
    assert max_difference(weights_of(out), weights_of(hard)) > 0  # same-label rows are negatives now
    refused = invoke(*compress_args(teacher, sst2_small, tmp_path / "kd", "--negative-sampling", "instance",
                                    "--objective", "kd"))  # fmt: skip
    assert refused.exit_code != 0 and "--negative-sampling instance draws codir's negatives" in refused.output
    assert not (tmp_path / "kd").exists()


def test_each_layer_contrast_trains_its_own_heads_per_layer_and_logs_the_term(tmp_path, teacher, sst2_small):
    each, joint = tmp_path / "each", tmp_path / "joint"
    result = invoke(*compress_args(teacher, sst2_small, each, "--layer-contrast", "each", "--negative-sampling",
                                   "hard"))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert invoke(*compress_args(teacher, sst2_small, joint, "--negative-sampling", "hard")).exit_code == 0
    assert max_difference(weights_of(each), weights_of(joint)) > 0  # another term, another student
    metrics = json.loads((each / "metrics.json").read_text())
    assert metrics["config"]["layer_contrast"] == "each"
    assert 0 <= metrics["contrastive_end"]["contrastive_top1"] <= 1
    assert metrics["contrastive_end"]["contrastive_grad_share"] > 0
    wrong = invoke(*compress_args(teacher, sst2_small, tmp_path / "x", "--layer-contrast", "every"))
    assert wrong.exit_code != 0 and "--layer-contrast" in wrong.output and "Traceback" not in wrong.output


def test_codir_at_contrastive_weight_zero_is_kd_bit_for_bit(tmp_path, teacher, sst2_small):
    """The heads come from their own draw, so kd and codir with one seed see the same batches and
    dropout masks: a paired comparison measures the contrastive term and nothing else."""
    outs = {}
    arms = {"kd": ["--objective", "kd"], "codir0": ["--objective", "codir", "--contrastive-weight", "0"]}
    for name, extra in arms.items():
        outs[name] = tmp_path / name
        assert invoke(*compress_args(teacher, sst2_small, outs[name], *extra)).exit_code == 0
    assert weights_of(outs["kd"]) and max_difference(weights_of(outs["kd"]), weights_of(outs["codir0"])) == 0.0
    codir = json.loads((outs["codir0"] / "metrics.json").read_text())
    assert codir["dev"] == json.loads((outs["kd"] / "metrics.json").read_text())["dev"]
    assert codir["contrastive_end"]["contrastive_grad_share"] == 0.0  # weight 0: it drives nothing


def test_the_bank_is_reused_only_when_teacher_data_and_length_match(tmp_path, teacher, sst2_small, monkeypatch):
    first = tmp_path / "first"
    assert invoke(*compress_args(teacher, sst2_small, first)).exit_code == 0

    import codir_edge.compress.bank.build as bank_module

    def no_teacher_pass(*args, **kwargs):
        raise AssertionError("the teacher ran although the bank was cached")

    monkeypatch.setattr(bank_module, "write_bank", no_teacher_pass)
    again = invoke(*compress_args(teacher, sst2_small, tmp_path / "kd", "--objective", "kd", "--cache-from", first))
    assert again.exit_code == 0 and "bank reused" in again.output, again.output
    monkeypatch.undo()
    longer = invoke(*compress_args(teacher, sst2_small, tmp_path / "l", "--cache-from", first, "--max-length", "48"))
    assert longer.exit_code == 0 and "bank built" in longer.output, longer.output


def test_killed_or_interrupted_runs_resume_to_the_sameweights_of(tmp_path, backbone_dir, sst2_400):
    teacher = tiny_teacher(tmp_path / "teacher", backbone_dir)  # with dropout: the RNG states must come back too
    common = ["--batch-size", "4", "--epochs", "2", "--checkpoint-every", "3", "--negatives", "5"]

    def args(out: Path, *extra) -> list:
        return [a for a in compress_args(teacher, sst2_400, out) if a not in ("--epochs", "1")] + common + list(extra)

    reference = tmp_path / "uninterrupted"
    done = invoke_one_thread(*args(reference))
    assert (reference / "model.safetensors").is_file(), done.output

    killed = tmp_path / "killed"
    partial = tmp_path / ".killed.partial"
    crash = interrupt_after_first_checkpoint(args(killed), partial, signal.SIGKILL)
    assert crash.returncode == -signal.SIGKILL and not killed.exists()
    state = sorted((partial / "checkpoints").glob("step-*"))[-1].name
    assert int(state.split("-")[1]) < 100, "the kill should land in the first epoch"
    assert_one_line_error(invoke(*args(killed)), 2, "pass --resume to continue it")
    resumed = invoke_one_thread(*args(killed, "--resume"))
    assert resumed.exit_code == 0, resumed.output
    assert max_difference(weights_of(reference), weights_of(killed)) < 1e-6
    assert not partial.exists()
    steps = [row["step"] for row in read_log(killed) if "lr" in row]
    assert steps == sorted(set(steps)), "the log repeats or skips steps after the resume"

    stopped = tmp_path / "stopped"
    interrupted = interrupt_after_first_checkpoint(args(stopped), tmp_path / ".stopped.partial", signal.SIGINT)
    assert interrupted.returncode == 130, interrupted.stderr
    message = [line for line in interrupted.stderr.splitlines() if line.startswith("error:")]
    assert len(message) == 1 and "checkpoint saved" in message[0] and "--resume" in message[0]
    assert "Traceback" not in interrupted.stderr
    assert_one_line_error(invoke(*args(stopped, "--resume", "--lr", "3e-4")), 2, "was made with --lr 0.0001")
    finished = invoke_one_thread(*args(stopped, "--resume"))
    assert finished.exit_code == 0, finished.output
    assert max_difference(weights_of(reference), weights_of(stopped)) < 1e-6


def test_two_gloo_processes_match_one_process(tmp_path, backbone_dir, sst2_small):
    teacher = tiny_teacher(tmp_path / "teacher", backbone_dir, dropout=False)
    single = invoke_one_thread(*compress_args(teacher, sst2_small, tmp_path / "one", "--device", "cpu", "--epochs", 2))
    assert single.exit_code == 0, single.output
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp_args = compress_args(teacher, sst2_small, tmp_path / "two", "--device", "cpu", "--epochs", "2")
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
              "-m", "codir_edge", *map(str, ddp_args)]  # fmt: skip
    done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert max_difference(weights_of(tmp_path / "one"), weights_of(tmp_path / "two")) < 1e-4


def other_tokenizer_model(folder: Path) -> Path:
    """A tiny BERT with a real but different tokenizer (a word-level vocabulary built here)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")  # fmt: skip
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def bad_cases(tmp_path: Path, teacher: Path, backbone_dir: Path) -> dict:
    three_way = build_tiny_bert(tmp_path / "three", backbone_dir, num_labels=3, id2label={0: "a", 1: "b", 2: "c"})
    return {
        "not a classifier": (["--teacher", backbone_dir], "not a sequence classifier", "finetune"),
        "student as deep as teacher": (["--student-layers", "4"], "between 1 and 3", "4 layers"),
        "zero student layers": (["--student-layers", "0"], "must be at least 1"),
        "other tokenizer": (["--student", other_tokenizer_model(tmp_path / "other")], "different tokenizer"),
        "labels differ": (["--teacher", three_way], "predicts a, b, c"),
        "both depths": (["--student", teacher, "--student-layers", "1"], "give only one"),
        "negative checkpoint interval": (["--checkpoint-every", "-1"], "--checkpoint-every must not be negative"),
        "bad kd weight": (["--kd-weight", "2"], "--kd-weight must be in [0, 1]"),
        "hard negatives without codir": (["--objective", "kd", "--negative-sampling", "hard"],
                                         "--negative-sampling hard", "--objective codir"),
    }


BAD_CASES = ["not a classifier", "student as deep as teacher", "zero student layers", "other tokenizer",
             "labels differ", "both depths", "negative checkpoint interval", "bad kd weight",
             "hard negatives without codir"]  # fmt: skip


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path, teacher, backbone_dir, sst2_small, no_leftovers, case
):
    extra, *fragments = bad_cases(tmp_path, teacher, backbone_dir)[case]
    out = tmp_path / "out"
    args = compress_args(teacher, sst2_small, out)
    if "--teacher" in extra:
        position = args.index("--teacher")
        args = args[:position] + args[position + 2 :]
    result = invoke(*args, *extra)
    assert_one_line_error(result, 2, *fragments)
    no_leftovers(out)
    assert not (tmp_path / ".out.partial" / "checkpoints").exists()


def test_diverging_loss_stops_and_names_the_term(tmp_path, teacher, sst2_small):
    result = invoke(*compress_args(teacher, sst2_small, tmp_path / "o", "--contrastive-temperature", "1e-45"))
    assert_one_line_error(result, 1, "the contrastive (nan) loss diverged at step 1", "--contrastive-temperature")
    assert not (tmp_path / "o").exists()


def test_more_negatives_than_a_class_holds_warns_then_samples_with_replacement(tmp_path, teacher, sst2_small):
    result = invoke(*compress_args(teacher, sst2_small, tmp_path / "o")[:-3], "--negatives", "500", "--quiet")
    assert result.exit_code == 0, result.output
    assert "warning: --negatives 500 exceeds the" in result.output and "with replacement" in result.output


@pytest.mark.parametrize("objective", ["codir", "mse"])
def test_a_narrower_pretrained_student_is_bridged_by_the_heads(tmp_path, teacher, backbone_dir, sst2_small, objective):
    from transformers import AutoModelForSequenceClassification

    student = build_tiny_bert(tmp_path / "small", backbone_dir, num_labels=None, layers=1, hidden=16)
    out = tmp_path / "o"
    result = invoke(*compress_args(teacher, sst2_small, out, "--student", student, "--objective", objective))
    assert result.exit_code == 0, result.output
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.hidden_size == 16 and model.config.num_hidden_layers == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["student_init"] == str(student) and metrics["layer_map"] == [4]


def test_regression_teacher_distils_with_margin_negatives(tmp_path, backbone_dir, glue_dir):
    folder = cut_glue(glue_dir, "STS-B", tmp_path / "STS-B", 80, 24)
    teacher = build_tiny_bert(tmp_path / "reg", backbone_dir, num_labels=1, layers=2)
    out = tmp_path / "o"
    result = invoke("compress", "--teacher", teacher, "--task", "stsb", "--data", folder, "--out", out,
                    "--max-length", "48", "--batch-size", "8", "--epochs", "1", "--negatives", "8",
                    "--negative-margin", "1.0", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["dev"]) >= {"pearson", "spearman"} and metrics["config"]["negative_margin"] == 1.0
    steps = [row for row in read_log(out) if "lr" in row]
    assert all(row["contrastive"] > 0 for row in steps)


def test_a_second_run_with_the_same_out_stops_at_once(tmp_path, teacher, sst2_small):
    """A run holds its working folder's lock for its whole life: another run with the same --out
    (even with --resume or --overwrite) stops with one line naming the holder, and writes nothing."""
    import os

    from codir_edge.training.run_folder import prepare_run_dir

    out = tmp_path / "student"
    run_dir, lock = prepare_run_dir(out, overwrite=False, resume=False, command="compress")  # "another run"
    try:
        for extra in ([], ["--resume"], ["--overwrite"]):
            result = invoke(*compress_args(teacher, sst2_small, out, *extra))
            assert_one_line_error(result, 2, f"is being written by another compress run (pid {os.getpid()})")
        assert not out.exists() and [p.name for p in run_dir.iterdir()] == [".lock"]
    finally:
        lock.close()
    assert invoke(*compress_args(teacher, sst2_small, out, "--resume")).exit_code == 0  # free once it ends


def test_two_runs_started_together_leave_one_whole_student(tmp_path, teacher, sst2_small):
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "student"
    runs = [run_cli(compress_args(teacher, sst2_small, out, "--seed", str(seed))) for seed in (1, 2)]
    done = [(process.wait(300), process.communicate()[1]) for process in runs]
    assert sorted(code for code, _ in done) == [0, 2], done
    loser = next(err for code, err in done if code == 2)
    errors = [line for line in loser.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "--overwrite" in errors[0], loser
    winner_seed = next(seed for (code, _), seed in zip(done, (1, 2), strict=True) if code == 0)
    assert json.loads((out / "compress_config.json").read_text())["seed"] == winner_seed
    AutoModelForSequenceClassification.from_pretrained(out)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".student")) == []
