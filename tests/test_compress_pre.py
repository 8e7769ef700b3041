"""``codir-edge compress --stage pre`` (CoDIR-Pre): real tiny backbones and masked LMs, the real
tokenizer, real GLUE sentences; corpus reading, BERT masking and the negatives it draws."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import (
    assert_one_line_error,
    interrupt_after_first_checkpoint,
    invoke,
    invoke_one_thread,
    max_difference,
    read_log,
    weights_of,
)
from conftest import build_tiny_bert, cut_glue
from hypothesis import given, settings
from hypothesis import strategies as st

from codir_edge.compress.masking import IGNORE, mask_tokens
from codir_edge.core.errors import InputError
from codir_edge.data.corpus import read_corpus


def tiny_backbone(folder: Path, backbone_dir: Path, mlm: bool = False, layers: int = 4, dropout: bool = True) -> Path:
    """A random 4-layer BertModel, or BertForMaskedLM, with the real MiniLM tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

    torch.manual_seed(0)
    drop = 0.1 if dropout else 0.0
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=drop,
                        attention_probs_dropout_prob=drop)  # fmt: skip
    (BertForMaskedLM if mlm else BertModel)(config).save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(backbone_dir)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def backbone(tmp_path_factory, backbone_dir) -> Path:
    return tiny_backbone(tmp_path_factory.mktemp("backbone") / "b", backbone_dir)


@pytest.fixture(scope="module")
def masked_lm(tmp_path_factory, backbone_dir) -> Path:
    return tiny_backbone(tmp_path_factory.mktemp("mlm") / "m", backbone_dir, mlm=True)


@pytest.fixture()
def corpus(tmp_path, glue_dir) -> Path:
    """200 real SST-2 sentences as a .txt corpus, one per line."""
    lines = (glue_dir / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:201]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(line.split("\t")[0] for line in lines) + "\n", encoding="utf-8")
    return path


def pre_args(teacher: Path, data: Path, out: Path, *extra) -> list:
    return ["compress", "--stage", "pre", "--teacher", teacher, "--data", data, "--out", out, "--max-length",
            "32", "--batch-size", "8", "--epochs", "1", "--negatives", "5", "--held-out", "16", "--quiet",
            *extra]  # fmt: skip


# ---- the stage end to end -------------------------------------------------------------------------


def test_a_backbone_distils_into_a_general_student_that_both_fine_stages_accept(
    tmp_path, backbone, corpus, backbone_dir, glue_dir
):
    from transformers import AutoModel

    out = tmp_path / "general"
    result = invoke(*pre_args(backbone, corpus, out, "--json", tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    assert "pre: held-out CKA with the teacher" in result.output and "over 16 texts" in result.output
    student = AutoModel.from_pretrained(out)
    assert type(student).__name__ == "BertModel" and student.config.num_hidden_layers == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["compress_stage"] == "pre" and metrics["mlm"] is False and metrics["layer_map"] == [2, 4]
    assert metrics["train_examples"] + metrics["held_out_examples"] == metrics["corpus"]["texts"]
    assert 0 <= metrics["dev"]["retrieval_top1"] <= 1 and "mlm_accuracy" not in metrics["dev"]
    assert 0 < metrics["initial_dev"]["cka"] <= 1 and 0 < metrics["dev"]["cka"] <= 1
    steps = [row for row in read_log(out) if "lr" in row]
    assert steps and set(steps[-1]) == {"contrastive", "contrastive_top1", "step", "epoch", "lr", "examples_per_s"}
    assert len(list((out / "cache").glob("teacher-bank-*.safetensors"))) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["retrieval_top1"] == metrics["dev"]["retrieval_top1"] and report["mlm_accuracy"] is None
    assert not list(tmp_path.glob(".general*")), "the working folder was left behind"

    # The frozen pooler is the teacher's, untouched; the blocks trained.
    teacher = AutoModel.from_pretrained(backbone)
    assert torch.equal(student.pooler.dense.weight, teacher.pooler.dense.weight)
    assert not torch.equal(student.encoder.layer[0].attention.self.query.weight,
                           teacher.encoder.layer[1].attention.self.query.weight)  # fmt: skip

    # CoDIR-Fine from the general student, and plain fine-tuning from it.
    sst2 = cut_glue(glue_dir, "SST-2", tmp_path / "SST-2", 48, 16)
    fine_teacher = build_tiny_bert(tmp_path / "ft", backbone_dir, num_labels=2, layers=4, id2label={0: "0", 1: "1"})
    fine = invoke("compress", "--teacher", fine_teacher, "--task", "sst2", "--data", sst2, "--out", tmp_path / "s",
                  "--student", out, "--max-length", "32", "--batch-size", "8", "--epochs", "1", "--negatives", "4",
                  "--quiet")  # fmt: skip
    assert fine.exit_code == 0, fine.output
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["student_init"] == str(out)
    tuned = invoke("finetune", "--model", out, "--task", "sst2", "--data", sst2, "--out", tmp_path / "f",
                   "--max-length", "32", "--epochs", "1", "--quiet")  # fmt: skip
    assert tuned.exit_code == 0, tuned.output


def test_a_masked_lm_teacher_adds_the_mlm_loss_and_its_kd(tmp_path, masked_lm, corpus):
    from transformers import AutoModelForMaskedLM

    out = tmp_path / "general"
    result = invoke(*pre_args(masked_lm, corpus, out))
    assert result.exit_code == 0, result.output
    assert "masked-LM accuracy" in result.output
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert type(model).__name__ == "BertForMaskedLM" and model.config.num_hidden_layers == 2
    assert model.cls.predictions.decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mlm"] is True and 0 <= metrics["dev"]["mlm_accuracy"] <= 1
    assert 0 <= metrics["teacher_dev"]["mlm_accuracy"] <= 1
    steps = [row for row in read_log(out) if "lr" in row]
    assert {"contrastive", "mlm", "mlm_kd"} <= set(steps[-1])
    assert all(np.isfinite(row[name]) for row in steps for name in ("contrastive", "mlm", "mlm_kd"))


def test_an_mlm_student_learns_to_fill_masks_from_its_teacher(tmp_path, backbone_dir):
    """On a corpus of one repeated pattern with a random word, a few epochs take the student's
    held-out masked-token accuracy well above what it starts with."""
    import random

    rng = random.Random(0)
    words = ["red", "green", "blue", "small", "large", "quiet", "loud", "warm", "cold", "bright"]
    texts = [f"the {rng.choice(words)} house by the old river {i}" for i in range(300)]
    corpus = tmp_path / "pattern.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    teacher = tiny_backbone(tmp_path / "t", backbone_dir, mlm=True)
    common = ("--held-out", "30", "--batch-size", "16", "--mlm-probability", "0.3")  # later flags win
    untrained = invoke(*pre_args(teacher, corpus, tmp_path / "one", *common, "--lr", "1e-9"))
    assert untrained.exit_code == 0, untrained.output
    trained = invoke(*pre_args(teacher, corpus, tmp_path / "many", *common, "--lr", "3e-3", "--epochs", "6"))
    assert trained.exit_code == 0, trained.output
    before = json.loads((tmp_path / "one" / "metrics.json").read_text())["dev"]["mlm_accuracy"]
    after = json.loads((tmp_path / "many" / "metrics.json").read_text())["dev"]["mlm_accuracy"]
    assert after > before + 0.2, (before, after)


def test_glue_folders_are_read_with_labels_dropped(tmp_path, backbone, glue_dir):
    folder = tmp_path / "glue"
    folder.mkdir()
    cut_glue(glue_dir, "MRPC", folder / "MRPC", 60, 10)
    cut_glue(glue_dir, "CoLA", folder / "CoLA", 60, 10)
    out = tmp_path / "general"
    result = invoke(*pre_args(backbone, folder, out))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["corpus"]["files"]) == 4  # train and dev of both tasks


def test_interrupted_and_killed_runs_resume_to_the_same_weights(tmp_path, masked_lm, corpus):
    """Masks, random negatives and dropout all come back: MLM teacher, with dropout."""
    common = ["--batch-size", "4", "--epochs", "2", "--checkpoint-every", "3"]

    def args(out: Path, *extra) -> list:
        base = [a for a in pre_args(masked_lm, corpus, out) if a not in ("--epochs", "1")]
        return [a for a in base if a not in ("--batch-size", "8")] + common + list(extra)

    reference = tmp_path / "uninterrupted"
    done = invoke_one_thread(*args(reference))
    assert (reference / "model.safetensors").is_file(), done.output
    killed = tmp_path / "killed"
    crash = interrupt_after_first_checkpoint(args(killed), tmp_path / ".killed.partial", signal.SIGKILL)
    assert crash.returncode == -signal.SIGKILL and not killed.exists()
    resumed = invoke_one_thread(*args(killed, "--resume"))
    assert resumed.exit_code == 0, resumed.output
    assert max_difference(weights_of(reference), weights_of(killed)) < 1e-6

    stopped = tmp_path / "stopped"
    interrupted = interrupt_after_first_checkpoint(args(stopped), tmp_path / ".stopped.partial", signal.SIGINT)
    assert interrupted.returncode == 130, interrupted.stderr
    changed = invoke(*args(stopped, "--resume", "--mlm-probability", "0.2"))
    assert_one_line_error(changed, 2, "was made with --mlm-probability 0.15")
    finished = invoke_one_thread(*args(stopped, "--resume"))
    assert finished.exit_code == 0, finished.output
    assert max_difference(weights_of(reference), weights_of(stopped)) < 1e-6


def test_two_gloo_processes_match_one_process(tmp_path, backbone_dir, corpus):
    """In-batch negatives span the global batch, so two ranks train exactly what one process does."""
    teacher = tiny_backbone(tmp_path / "t", backbone_dir, dropout=False)
    single = invoke_one_thread(*pre_args(teacher, corpus, tmp_path / "one", "--device", "cpu", "--epochs", "2"))
    assert single.exit_code == 0, single.output
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp_args = pre_args(teacher, corpus, tmp_path / "two", "--device", "cpu", "--epochs", "2")
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
              "-m", "codir_edge", *map(str, ddp_args)]  # fmt: skip
    done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["world_size"] == 2
    assert max_difference(weights_of(tmp_path / "one"), weights_of(tmp_path / "two")) < 1e-4


PRE_BAD = {
    "a classifier teacher": (["--teacher", "CLASSIFIER"], "is a fine-tuned classifier", "--stage fine"),
    "a task": (["--task", "sst2"], "--task sst2 does not apply to --stage pre"),
    "a student folder": (["--student", "BACKBONE"], "--student applies to --stage fine only"),
    "labels": (["--labels", "a,b"], "--labels applies to --stage fine only"),
    "another objective": (["--objective", "kd"], "--objective applies to --stage fine only"),
    "a missing corpus": (["--data", "MISSING"], "does not exist"),
    "a tiny corpus": (["--data", "TINY"], "CoDIR-Pre needs at least 20"),
    "an unknown corpus type": (["--data", "PDF"], "unsupported corpus file type '.pdf'"),
    "a bad mask share": (["--mlm-probability", "1.5"], "--mlm-probability must be in (0, 1)"),
    "too deep a student": (["--student-layers", "4"], "between 1 and 3"),
    "a masked LM with an unreadable head": (["--teacher", "DISTILBERT"], "distilbert masked LM", "bare backbone"),
}


def distilbert_mlm(folder: Path, backbone_dir: Path) -> Path:
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForMaskedLM

    config = DistilBertConfig(vocab_size=30522, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    DistilBertForMaskedLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(backbone_dir)).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("case", list(PRE_BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path, backbone, corpus, tiny_classifier, backbone_dir, no_leftovers, case
):
    extra, *fragments = PRE_BAD[case]
    (tmp_path / "tiny.txt").write_text("one\ntwo\nthree\n", encoding="utf-8")
    (tmp_path / "c.pdf").write_text("x", encoding="utf-8")
    names = {"CLASSIFIER": tiny_classifier, "BACKBONE": backbone, "MISSING": tmp_path / "nope.txt",
             "TINY": tmp_path / "tiny.txt", "PDF": tmp_path / "c.pdf"}  # fmt: skip
    if "DISTILBERT" in extra:
        names["DISTILBERT"] = distilbert_mlm(tmp_path / "distil", backbone_dir)
    extra = [names.get(str(a), a) for a in extra]
    args = pre_args(backbone, corpus, tmp_path / "out")
    for flag in ("--teacher", "--data"):
        if flag in extra:
            position = args.index(flag)
            args = args[:position] + args[position + 2 :]
    assert_one_line_error(invoke(*args, *extra), 2, *fragments)
    no_leftovers(tmp_path / "out")
    assert not (tmp_path / ".out.partial").exists(), "a refused run left a working folder"


def test_pre_only_options_are_refused_by_the_fine_stage(tmp_path, tiny_classifier, sst2_small):
    result = invoke("compress", "--teacher", tiny_classifier, "--task", "sst2", "--data", sst2_small,
                    "--out", tmp_path / "o", "--held-out", "10")  # fmt: skip
    assert_one_line_error(result, 2, "--held-out applies to --stage pre only")


# ---- corpus, masking and negatives ----------------------------------------------------------------

_LINE = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=50, deadline=None)
@given(st.lists(_LINE, min_size=1, max_size=30))
def test_a_text_file_gives_its_distinct_non_empty_lines_in_order(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("txt") / "c.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    expected = list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    if not expected:
        with pytest.raises(InputError, match="is empty: give one text per line"):
            read_corpus(path)
        return
    corpus = read_corpus(path)
    assert corpus.texts == expected
    assert corpus.duplicates == sum(1 for line in lines if line.strip()) - len(expected)


def test_jsonl_reads_its_text_field_and_names_a_missing_one(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"body": "first text", "id": 1}\n\n{"body": "second text", "id": 2}\n', encoding="utf-8")
    assert read_corpus(path, "body").texts == ["first text", "second text"]
    with pytest.raises(InputError, match="no field 'text'"):
        read_corpus(path)


def test_glue_pair_tasks_give_both_sentences_and_the_root_gives_every_task(glue_dir):
    mrpc = read_corpus(glue_dir / "MRPC" / "dev.tsv")
    first = (glue_dir / "MRPC" / "dev.tsv").read_text(encoding="utf-8-sig").splitlines()[1].split("\t")
    assert first[3] in mrpc.texts and first[4] in mrpc.texts
    assert "Quality" not in mrpc.texts and "1" not in mrpc.texts
    cola = read_corpus(glue_dir / "CoLA")  # headerless: the sentence is column 3
    assert len(cola.files) == 2 and all(not text.isdigit() for text in cola.texts[:50])
    everything = read_corpus(glue_dir)
    assert len(everything.files) >= 6 and set(mrpc.texts) <= set(everything.texts)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(2, 40), st.integers(0, 2**32 - 1))
def test_masking_touches_only_real_ordinary_tokens_and_labels_exactly_those(rows, width, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, 2000, size=(rows, width))
    lengths = rng.integers(2, width + 1, size=rows)
    attention = (np.arange(width) < lengths[:, None]).astype(np.int64)
    ids[:, 0] = 101  # [CLS]
    ids[np.arange(rows), lengths - 1] = 102  # [SEP]
    ids[attention == 0] = 0  # [PAD]
    masked, labels = mask_tokens(ids, attention, np.array([0, 101, 102, 103]), 103, 30522, 0.5, rng)
    chosen = labels != IGNORE
    assert not chosen[(attention == 0) | np.isin(ids, [0, 101, 102])].any()
    assert (labels[chosen] == ids[chosen]).all()
    assert (masked[~chosen] == ids[~chosen]).all()


def test_masking_follows_berts_proportions():
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 30000, size=(400, 500))
    masked, labels = mask_tokens(ids, np.ones_like(ids), np.array([0, 101, 102, 103]), 103, 30522, 0.15, rng)
    chosen = labels != IGNORE
    assert abs(chosen.mean() - 0.15) < 0.005
    assert abs((masked[chosen] == 103).mean() - 0.8) < 0.01
    assert abs((masked[chosen] == ids[chosen]).mean() - 0.1) < 0.01  # kept (a random swap rarely lands on itself)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 50), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_random_negatives_never_draw_the_anchor_and_add_the_whole_batch(n_train, k, seed):
    from codir_edge.compress.pre import random_negatives as _negatives

    rng = np.random.default_rng(seed)
    rows = rng.permutation(n_train)[: min(n_train, 6)]
    negatives = _negatives(rows, n_train, k, rng)
    assert negatives.shape == (len(rows), k + len(rows))
    drawn = negatives[:, :k]
    assert (drawn != rows[:, None]).all() and drawn.min() >= 0 and drawn.max() < n_train
    assert (negatives[:, k:] == rows[None, :]).all()


@pytest.mark.parametrize("form", ["infonce", "nce"])
def test_the_contrastive_loss_leaves_out_the_anchor_among_its_negatives(form):
    from codir_edge.compress.bank.table import TeacherBank
    from codir_edge.compress.losses import CodirLoss

    torch.manual_seed(0)
    bank = TeacherBank(torch.randn(10, 12).half(), torch.zeros(10, 0).half(), torch.zeros(10))
    summary = torch.randn(3, 8)
    index = torch.tensor([0, 1, 2])
    others = torch.tensor([[5, 6], [7, 8], [3, 9]])
    with_self = torch.cat([others, index[:, None]], dim=1)
    losses = []
    for groups in (1, 2):  # joint, and --layer-contrast each over 2 layers
        for negatives in (others, with_self):
            torch.manual_seed(1)
            loss = CodirLoss(bank, 8, 12, projection_dim=4, temperature=0.1, form=form, groups=groups)
            losses.append(loss(summary, index, negatives)[0])
    assert torch.allclose(losses[0], losses[1], atol=1e-6) and torch.allclose(losses[2], losses[3], atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(8, 40), st.integers(2, 12), st.integers(0, 2**32 - 1))
def test_linear_cka_is_one_under_rotation_and_scale_and_low_for_unrelated_features(n, d, seed):
    from codir_edge.compress.pre_scores import linear_cka

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    assert abs(linear_cka(x, 3.0 * x @ rotation + 1.0) - 1.0) < 1e-9
    unrelated = torch.randn(400, 4, generator=gen, dtype=torch.float64)
    assert linear_cka(torch.randn(400, 4, generator=gen, dtype=torch.float64), unrelated) < 0.2
