"""CoDIR-Fine's transfer set: unlabelled text and augmented sentences, labelled by the teacher only.

Real tiny teachers, the real tokenizer, real SST-2 and MRPC rows, through the CLI where a user
would meet the behaviour; the loss, the epoch order and the augmentation through their functions.
"""

from __future__ import annotations

import json
import math
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
    weights_of,
)
from conftest import build_tiny_bert, cut_glue, tiny_teacher
from hypothesis import given, settings
from hypothesis import strategies as st


def sst2_column(glue_dir: Path, split: str, start: int, stop: int) -> list[str]:
    lines = (glue_dir / "SST-2" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0] for line in lines[start:stop]]


@pytest.fixture()
def unlabeled_txt(tmp_path, glue_dir) -> Path:
    """160 SST-2 training sentences that sst2_small does not label, one per line."""
    path = tmp_path / "reviews.txt"
    path.write_text("\n".join(sst2_column(glue_dir, "train", 1000, 1160)) + "\n", encoding="utf-8")
    return path


def same_text(text: str) -> str:
    return " ".join(text.lower().split())


def test_unlabelled_text_trains_with_the_teacher_and_dev_or_labelled_copies_are_dropped_and_counted(
    tmp_path, teacher, sst2_small, unlabeled_txt, glue_dir
):
    dev, labelled = sst2_column(glue_dir, "dev", 0, 32), sst2_column(glue_dir, "train", 0, 64)
    texts = unlabeled_txt.read_text(encoding="utf-8").splitlines()
    planted = [dev[0].upper(), "  " + dev[5].replace(" ", "   "), labelled[3], texts[0], ""]  # a leak, a copy, a repeat
    unlabeled_txt.write_text("\n".join(texts + planted) + "\n", encoding="utf-8")
    known_dev, known_train = {same_text(t) for t in dev}, {same_text(t) for t in labelled}
    expected_dev = sum(same_text(t) in known_dev for t in texts) + 2
    expected_labelled = sum(same_text(t) in known_train and same_text(t) not in known_dev for t in texts) + 1
    out = tmp_path / "student"

    result = invoke(
        *compress_args(teacher, sst2_small, out, "--unlabeled", unlabeled_txt, "--json", tmp_path / "r.json")
    )

    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    counts = metrics["transfer_set"]["unlabeled"]
    assert counts["read"] == 164 and counts["dropped_dev"] == expected_dev
    assert counts["dropped_labeled"] == expected_labelled and counts["dropped_repeats"] >= 1
    assert counts["kept"] == 164 - expected_dev - expected_labelled - counts["dropped_repeats"]
    assert f"dropped: {expected_dev} dev" in result.output and "transfer set: 64 labelled rows" in result.output
    assert "their negatives follow the teacher's argmax" in result.output  # codir: its label-aware negatives
    assert metrics["train_examples"] == 64 and metrics["bank"]["examples"] == 64 + counts["kept"]
    assert json.loads((tmp_path / "r.json").read_text())["transfer_set"] == metrics["transfer_set"]
    assert metrics["history"][-1]["step"] == math.ceil((64 + counts["kept"]) / 8)
    steps = [row for row in read_log(out) if "lr" in row]
    assert {"ce", "kd", "contrastive"} <= set(steps[-1])


def test_augmented_sentences_join_and_the_epoch_options_set_the_steps(tmp_path, teacher, sst2_small, unlabeled_txt):
    out = tmp_path / "student"
    extra = ["--objective", "kd", "--unlabeled", unlabeled_txt, "--unlabeled-per-epoch", "50", "--labeled-repeat", "2",
             "--augment", "3", "--epochs", "2"]  # fmt: skip
    result = invoke(*compress_args(teacher, sst2_small, out, *extra))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    transfer = metrics["transfer_set"]
    augmented = transfer["augmented"]
    assert augmented["per_example"] == 3 and 100 < augmented["kept"] <= augmented["made"] <= 192
    assert sum(augmented["by_edit"].values()) == augmented["made"]
    assert f"{augmented['kept']} augmented sentences" in result.output
    assert metrics["bank"]["examples"] == 64 + transfer["unlabeled_rows"] + augmented["kept"]
    assert transfer["rows_per_epoch"] == 2 * 64 + 50  # the 50 drawn from unlabelled and augmented rows alike
    assert [h["step"] for h in metrics["history"]] == [23, 46]  # ceil(178 / 8) per epoch


def unlabelled_terms(backbone_dir: Path, tmp_path: Path):
    """A tiny student, a bank of 6 rows whose last 3 have no label, and a function of the loss terms."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from codir_edge.compress.bank.table import TeacherBank
    from codir_edge.compress.config import FineConfig
    from codir_edge.compress.objectives import Distiller

    folder = build_tiny_bert(tmp_path / "student", backbone_dir, num_labels=2, layers=2)
    student = AutoModelForSequenceClassification.from_pretrained(folder).eval()  # no dropout: comparable passes
    tokenizer = AutoTokenizer.from_pretrained(folder)
    sentences = ["a fine film", "dull and long", "warm , funny", "not good", "great fun", "a mess"]
    inputs = dict(tokenizer(sentences, padding=True, return_tensors="pt"))
    generator = torch.Generator().manual_seed(0)
    bank = TeacherBank(torch.randn(6, 64, generator=generator).half(), torch.randn(6, 2, generator=generator).half(),
                       torch.tensor([0, 1, 0, 1, 1, 0]))  # fmt: skip
    negatives = torch.tensor([[1, 3], [0, 2], [1, 5], [0, 2], [0, 5], [1, 4]])
    config = FineConfig(task="sst2", negatives=2)

    def terms(labeled_rows, targets):
        torch.manual_seed(0)  # the same projection heads for every distiller
        distiller = Distiller(student, bank, config, False, 32, 32, labeled_rows=labeled_rows)
        total, parts = distiller(inputs, torch.arange(6), targets, negatives)
        return float(total.detach()), {k: float(v) for k, v in parts.items()}

    return terms, bank, student, inputs


def test_unlabelled_rows_change_the_kd_and_contrastive_terms_but_never_ce(tmp_path, backbone_dir):
    import torch
    from torch.nn import functional as F

    terms, bank, student, inputs = unlabelled_terms(backbone_dir, tmp_path)
    targets = torch.tensor([0, 1, 0, 1, 1, 0])
    total, parts = terms(3, targets)
    with torch.no_grad():
        logits = student(**inputs).logits
    assert parts["ce"] == pytest.approx(float(F.cross_entropy(logits[:3], targets[:3])), rel=1e-5)

    flipped = targets.clone()
    flipped[3:] = 1 - flipped[3:]  # what an unlabelled row's target says cannot matter
    assert terms(3, flipped) == (total, parts)

    bank.logits[4] = -bank.logits[4]  # another teacher prediction for an unlabelled row
    changed_total, changed = terms(3, targets)
    assert changed["kd"] != pytest.approx(parts["kd"]) and changed["ce"] == parts["ce"]
    bank.features[5] = -bank.features[5]  # another teacher summary for an unlabelled row
    assert terms(3, targets)[1]["contrastive"] != pytest.approx(changed["contrastive"])

    every_row, _ = terms(6, targets)  # every row labelled: the plain (1 - beta) CE + beta KD of a labelled run
    assert every_row == pytest.approx(terms(None, targets)[0], rel=1e-6)


def test_a_regression_teacher_labels_unlabelled_pairs_with_its_own_scores(tmp_path, backbone_dir, glue_dir):
    import torch

    from codir_edge.compress.transfer import teacher_targets

    folder = cut_glue(glue_dir, "STS-B", tmp_path / "STS-B", 80, 24)
    rows = (glue_dir / "STS-B" / "train.tsv").read_text(encoding="utf-8").splitlines()[200:260]
    unlabeled = tmp_path / "pairs.jsonl"
    records = [{"text": r.split("\t")[7], "text_pair": r.split("\t")[8]} for r in rows]
    unlabeled.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    teacher = build_tiny_bert(tmp_path / "reg", backbone_dir, num_labels=1, layers=2)
    out = tmp_path / "o"
    result = invoke("compress", "--teacher", teacher, "--task", "stsb", "--data", folder, "--out", out,
                    "--max-length", "48", "--batch-size", "8", "--epochs", "1", "--negatives", "8",
                    "--negative-margin", "1.0", "--unlabeled", unlabeled, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["transfer_set"]["unlabeled"]["read"] == 60 and metrics["bank"]["examples"] > 80
    assert all(row["contrastive"] > 0 for row in read_log(out) if "lr" in row)

    logits = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.0, 3.0], [5.0, 1.0]])
    assert teacher_targets(torch.tensor([1, 1, -1, -1]), logits, 2, False).tolist() == [1, 1, 1, 0]
    scores = torch.tensor([[0.5], [4.0], [2.5]])
    assert teacher_targets(torch.tensor([3.0, -1.0, -1.0]), scores, 1, True).tolist() == [3.0, 4.0, 2.5]


@settings(max_examples=60, deadline=None)
@given(
    labeled=st.integers(1, 30),
    others=st.integers(0, 50),
    per_epoch=st.one_of(st.none(), st.integers(1, 60)),
    repeat=st.integers(1, 3),
    batch_size=st.integers(1, 8),
    seed=st.integers(0, 5),
)
def test_an_epoch_holds_each_labelled_row_repeat_times_and_rotates_the_others(
    labeled, others, per_epoch, repeat, batch_size, seed
):
    import numpy as np

    from codir_edge.compress.config import FineConfig
    from codir_edge.compress.transfer import TransferSet, epoch_order

    transfer = TransferSet(labeled, unlabeled=others)
    config = FineConfig(task="sst2", labeled_repeat=repeat, batch_size=batch_size, seed=seed,
                            unlabeled="x.txt" if per_epoch else None, unlabeled_per_epoch=per_epoch)  # fmt: skip
    lengths = np.random.default_rng(seed).integers(2, 30, size=labeled + others)
    drawn = others if per_epoch is None else min(per_epoch, others)
    seen: set[int] = set()
    epochs = math.ceil(others / drawn) if drawn else 1
    for epoch in range(1, epochs + 1):
        batches = epoch_order(lengths, transfer, config, epoch)
        assert [b.tolist() for b in batches] == [b.tolist() for b in epoch_order(lengths, transfer, config, epoch)]
        assert all(0 < len(b) <= batch_size for b in batches)
        rows = np.concatenate(batches)
        assert len(rows) == transfer.epoch_rows(config) == labeled * repeat + drawn
        assert (np.bincount(rows[rows < labeled], minlength=labeled) == repeat).all()
        unlabelled = rows[rows >= labeled]
        assert len(set(unlabelled.tolist())) == len(unlabelled) == drawn
        seen |= set(unlabelled.tolist())
    assert seen == set(range(labeled, labeled + others)), "the rotation left rows out"


def test_augmentation_edits_with_the_teachers_nearest_words_and_is_seeded(backbone_dir):
    import numpy as np
    from transformers import AutoTokenizer

    from codir_edge.compress.augment import augment, word_neighbours
    from codir_edge.data.examples import Examples

    tokenizer = AutoTokenizer.from_pretrained(str(backbone_dir))
    vocab = tokenizer.get_vocab()
    embeddings = np.random.default_rng(0).normal(size=(len(vocab), 16)).astype(np.float32)
    embeddings[vocab["great"]] = embeddings[vocab["good"]] + 0.01  # the teacher thinks these are close
    neighbours = word_neighbours(tokenizer, embeddings, {"good", "film", "##ing", "[CLS]"})
    assert neighbours["good"][0] == "great" and len(neighbours["good"]) == 8
    assert set(neighbours) == {"good", "film"}  # word pieces and special tokens are not words
    assert all(not w.startswith("##") and w.isalpha() for options in neighbours.values() for w in options)

    examples = Examples(["a good film about good people"] * 20, ["the second text"] * 20, [1] * 20, "x")
    first = augment(examples, 3, seed=7, neighbours=neighbours)
    assert first == augment(examples, 3, seed=7, neighbours=neighbours)
    assert first.made == len(first.texts) == len(first.text_pairs) and sum(first.by_edit.values()) == first.made
    for text, pair in zip(first.texts, first.text_pairs, strict=True):
        assert (text, pair) != (examples.texts[0], examples.text_pairs[0])
        assert text == examples.texts[0] or pair == examples.text_pairs[0], "both texts of a pair were edited"
    swapped = {w for t in first.texts for w in t.split()} - set(examples.texts[0].split())
    assert swapped <= set(neighbours["good"]) | set(neighbours["film"])


@pytest.mark.parametrize("family", ["bert", "roberta", "xlm-roberta", "deberta-v2"])
def test_word_swaps_use_whole_words_of_each_kind_of_vocabulary(glue_dir, family):
    """WordPiece marks continuations (##), byte-level BPE (Ġ) and SentencePiece (▁) mark word starts:
    a swap must put in a whole word of the teacher's vocabulary, never a piece of one."""
    import numpy as np
    from families import _sentences, build_tokenizer

    from codir_edge.compress.augment import word_neighbours

    tokenizer = build_tokenizer(family, _sentences(glue_dir))
    vocab = tokenizer.get_vocab()
    embeddings = np.random.default_rng(0).normal(size=(len(vocab), 8)).astype(np.float32)
    neighbours = word_neighbours(tokenizer, embeddings, {"film", "movie", "the", "funny"})
    assert neighbours and set(neighbours) <= {"film", "movie", "the", "funny"}
    for options in neighbours.values():
        for word in options:
            assert word.isalpha() and len(word) > 1
            ids = tokenizer(" " + word if family != "bert" else word, add_special_tokens=False)["input_ids"]
            assert len(ids) == 1, f"{word!r} is not one whole-word token of the {family} vocabulary"


def test_unlabelled_files_of_each_kind_are_read_with_their_labels_ignored(tmp_path, glue_dir):
    from codir_edge.data.tasks import get_task
    from codir_edge.data.unlabeled import read_unlabeled

    sst2, mrpc = get_task("sst2"), get_task("mrpc")
    jsonl = tmp_path / "logs.jsonl"
    jsonl.write_text('{"body": "first"}\n\n{"body": "second", "label": "x"}\n', encoding="utf-8")
    assert read_unlabeled(jsonl, sst2, text_column="body") == (["first", "second"], None)
    folder = cut_glue(glue_dir, "SST-2", tmp_path / "SST-2", 10, 5)
    texts, pairs = read_unlabeled(folder, sst2)
    assert len(texts) == 10 and pairs is None  # the train split, labels dropped
    mrpc_folder = cut_glue(glue_dir, "MRPC", tmp_path / "MRPC", 6, 3)
    texts, pairs = read_unlabeled(mrpc_folder, mrpc)
    assert len(texts) == len(pairs) == 6
    pairs_file = tmp_path / "pairs.jsonl"
    pairs_file.write_text('{"text": "a", "second": "b", "text_pair": "c"}\n', encoding="utf-8")
    assert read_unlabeled(pairs_file, mrpc, text_pair_column="second") == (["a"], ["b"])
    assert read_unlabeled(pairs_file, mrpc) == (["a"], ["c"])


def bad_unlabelled(tmp_path: Path, glue_dir: Path) -> dict:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    binary = tmp_path / "weights.txt"
    binary.write_bytes(b"\x00\x01\x02PK\x03\x04" * 64)
    dev_only = tmp_path / "dev.txt"
    dev_only.write_text("\n".join(sst2_column(glue_dir, "dev", 0, 10)) + "\n", encoding="utf-8")
    text = tmp_path / "fine.txt"
    text.write_text("a sentence\n", encoding="utf-8")
    mrpc = cut_glue(glue_dir, "MRPC", tmp_path / "MRPC", 16, 8)
    document = tmp_path / "notes.docx"
    document.write_text("a sentence\n", encoding="utf-8")
    return {
        "empty file": (["--unlabeled", empty], "is empty"),
        "binary file": (["--unlabeled", binary], "binary file"),
        "missing file": (["--unlabeled", tmp_path / "nope.txt"], "does not exist"),
        "unsupported type": (["--unlabeled", document], "unsupported file type '.docx'"),
        "objective none": (["--unlabeled", text, "--objective", "none"], "--objective none"),
        "augment with none": (["--augment", "2", "--objective", "none"], "--augment needs a teacher term"),
        "only dev sentences": (["--unlabeled", dev_only], "every text in --unlabeled"),
        "per epoch without text": (["--unlabeled-per-epoch", "10"], "applies with --unlabeled only"),
        "negative augment": (["--augment", "-1"], "--augment must not be negative"),
        "zero repeat": (["--labeled-repeat", "0"], "--labeled-repeat must be at least 1"),
        "pair task from a txt": (["--unlabeled", text, "--task", "mrpc", "--data", mrpc], "reads text pairs"),
        "pre stage": (["--unlabeled", text, "--stage", "pre", "--task", None], "applies to --stage fine only"),
    }


BAD = ["empty file", "binary file", "missing file", "unsupported type", "objective none", "augment with none",
       "only dev sentences", "per epoch without text", "negative augment", "zero repeat", "pair task from a txt",
       "pre stage"]  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_transfer_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path, teacher, sst2_small, glue_dir, no_leftovers, case
):
    extra, fragment = bad_unlabelled(tmp_path, glue_dir)[case]
    out = tmp_path / "out"
    args = compress_args(teacher, sst2_small, out)
    for flag in ("--task", "--data"):  # a case that names its own drops the default (None: drop it outright)
        if flag in extra:
            position = args.index(flag)
            args = args[:position] + args[position + 2 :]
            value = extra[extra.index(flag) + 1]
            if value is None:
                extra = [e for i, e in enumerate(extra) if i not in (extra.index(flag), extra.index(flag) + 1)]
    result = invoke(*args, *extra)
    assert_one_line_error(result, 2, fragment)
    no_leftovers(out)
    assert not (tmp_path / ".out.partial" / "checkpoints").exists()


@pytest.mark.slow
def test_a_killed_run_with_unlabelled_and_augmented_rows_resumes_to_the_same_weights(
    tmp_path, backbone_dir, sst2_small, unlabeled_txt
):
    teacher = tiny_teacher(tmp_path / "teacher", backbone_dir)  # with dropout: the RNG states must come back too
    common = ["--batch-size", "4", "--epochs", "2", "--checkpoint-every", "3", "--unlabeled", unlabeled_txt,
              "--unlabeled-per-epoch", "60", "--labeled-repeat", "2", "--augment", "1"]  # fmt: skip

    def args(out: Path, *extra) -> list:
        return [a for a in compress_args(teacher, sst2_small, out) if a not in ("--epochs", "1")] + common + list(extra)

    reference = tmp_path / "uninterrupted"
    done = invoke_one_thread(*args(reference))
    assert (reference / "model.safetensors").is_file(), done.output
    per_epoch = json.loads((reference / "metrics.json").read_text())["history"][0]["step"]

    killed = tmp_path / "killed"
    partial = tmp_path / ".killed.partial"
    crash = interrupt_after_first_checkpoint(args(killed), partial, signal.SIGKILL)
    assert crash.returncode == -signal.SIGKILL and not killed.exists()
    state = sorted((partial / "checkpoints").glob("step-*"))[-1].name
    assert int(state.split("-")[1]) < per_epoch, "the kill should land in the first epoch"
    resumed = invoke_one_thread(*args(killed, "--resume"))
    assert resumed.exit_code == 0, resumed.output
    assert max_difference(weights_of(reference), weights_of(killed)) < 1e-6


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_unlabelled_rows(tmp_path, backbone_dir, sst2_small, unlabeled_txt):
    teacher = tiny_teacher(tmp_path / "teacher", backbone_dir, dropout=False)
    extra = ["--device", "cpu", "--unlabeled", unlabeled_txt, "--unlabeled-per-epoch", "40", "--epochs", "2"]
    single = invoke_one_thread(*compress_args(teacher, sst2_small, tmp_path / "one", *extra))
    assert single.exit_code == 0, single.output
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
              "-m", "codir_edge", *map(str, compress_args(teacher, sst2_small, tmp_path / "two", *extra))]  # fmt: skip
    done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["world_size"] == 2
    assert max_difference(weights_of(tmp_path / "one"), weights_of(tmp_path / "two")) < 1e-4
