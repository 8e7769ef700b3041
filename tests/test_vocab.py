"""Vocabulary pruning (``compress --vocab``): every tokenizer kind of the family registry keeps tokenizing
its training text exactly as before, never gives more unknown tokens on any text, loads back as a plain
transformers tokenizer, and the pruned model computes what the full one computed.

Tokenizers are each family's own transformers class built from vocabulary files (``families.py``), as a
user's checkpoint carries them; the kinds-coverage test fails for a tokenizer kind with no case here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, invoke
from conftest import cut_glue
from families import build_base_tokenizer, build_family_classifier
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codir_edge.core.errors import InputError
from codir_edge.models.families import FAMILIES
from codir_edge.models.vocab import count_tokens, parse_vocab, plan_vocab, pruned_model, pruned_tokenizer

# one family per tokenizer kind, plus the two SentencePiece layouts and MPNet's own specials
CASES = ("bert", "mpnet", "roberta", "modernbert", "xlm-roberta", "albert", "deberta-v2")


def test_every_tokenizer_kind_has_a_pruning_case():
    assert {FAMILIES[f].tokenizer for f in FAMILIES} == {FAMILIES[f].tokenizer for f in CASES}


def _sentences(glue_dir: Path, start: int, count: int) -> list[str]:
    lines = (glue_dir / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0] for line in lines[start : start + count]]


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, glue_dir, backbone_dir):
    """family -> (full tokenizer, pruned tokenizer loaded back from its saved folder, plan, training text)."""
    from transformers import AutoTokenizer

    train = _sentences(glue_dir, 5000, 300)
    made = {}
    for family in CASES:
        work = tmp_path_factory.mktemp(family)
        full = build_base_tokenizer(family, _sentences(glue_dir, 0, 3000), backbone_dir, work)
        plan = plan_vocab(full, count_tokens(full(train)["input_ids"]), "auto")
        pruned_tokenizer(full, plan.keep).save_pretrained(work / "pruned")
        made[family] = (full, AutoTokenizer.from_pretrained(str(work / "pruned")), plan, train)
    return made


@pytest.mark.parametrize("family", CASES)
def test_training_text_tokenizes_exactly_as_before(pruned, family):
    full, small, plan, train = pruned[family]
    assert len(small) == len(plan.keep) < len(full)
    mapping = plan.id_map()
    for text in train:
        assert small(text)["input_ids"] == [mapping[i] for i in full(text)["input_ids"]], text
    pair = small(train[0], train[1])
    assert pair["input_ids"] == [mapping[i] for i in full(train[0], train[1])["input_ids"]]
    for name in ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"):
        token = getattr(full, name)
        assert getattr(small, name) == token and small.convert_tokens_to_ids(token) == mapping[
            full.convert_tokens_to_ids(token)]  # fmt: skip


@pytest.mark.parametrize("family", CASES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_any_text_gets_no_more_unknown_tokens(pruned, family, text):
    full, small, _plan, _train = pruned[family]
    before = full(text)["input_ids"].count(full.unk_token_id)
    after = small(text)["input_ids"].count(small.unk_token_id)
    # WordPiece gives a whole word one [UNK]; a dropped piece never leaves a word without its characters
    assert after <= before, (text, full.tokenize(text), small.tokenize(text))
    assert small.decode(small(text)["input_ids"], skip_special_tokens=True).replace(" ", "") == full.decode(
        full(text)["input_ids"], skip_special_tokens=True).replace(" ", "")  # fmt: skip


def test_a_row_budget_is_met_with_bpe_merge_parts_counted(pruned):
    full, _small, _plan, train = pruned["roberta"]
    counts = count_tokens(full(train)["input_ids"])
    plan = plan_vocab(full, counts, 400)
    assert len(plan.keep) == 400 and plan.used_kept < plan.used
    small = pruned_tokenizer(full, plan.keep)
    assert len(small) == 400 and small.unk_token_id is not None
    # every kept BPE token can still be built: its merge's parts are kept too
    vocab = json.loads(small.backend_tokenizer.to_str())["model"]
    assert all(len(small.tokenize(" " + t.replace("Ġ", ""))) >= 1 for t in list(vocab["vocab"])[:50])
    with pytest.raises(InputError, match="below the .* rows every text may need"):
        plan_vocab(full, counts, 100)


@pytest.mark.parametrize("value", ["0", "-3", "most", "1.5"])
def test_vocab_setting_refuses_what_it_cannot_read(value):
    with pytest.raises(InputError, match="--vocab"):
        parse_vocab(value)


@pytest.mark.parametrize("family", ["bert", "roberta", "xlm-roberta"])
def test_pruned_model_computes_what_the_full_one_did(tmp_path, glue_dir, family):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = build_family_classifier(family, tmp_path / "full", glue_dir)
    full_tok, model = AutoTokenizer.from_pretrained(folder), AutoModelForSequenceClassification.from_pretrained(folder)
    train = _sentences(glue_dir, 5000, 64)
    plan = plan_vocab(full_tok, count_tokens(full_tok(train)["input_ids"]), "auto")
    pruned_model(model, plan.keep).save_pretrained(tmp_path / "small")
    pruned_tokenizer(full_tok, plan.keep).save_pretrained(tmp_path / "small")
    small = AutoModelForSequenceClassification.from_pretrained(tmp_path / "small").eval()
    small_tok = AutoTokenizer.from_pretrained(tmp_path / "small")
    assert small.config.vocab_size == len(plan.keep) and small.config.pad_token_id == small_tok.pad_token_id
    with torch.no_grad():
        expected = model.eval()(**full_tok(train[:16], padding=True, return_tensors="pt")).logits
        got = small(**small_tok(train[:16], padding=True, return_tensors="pt")).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def sst2(tmp_path_factory, glue_dir) -> Path:
    return cut_glue(glue_dir, "SST-2", tmp_path_factory.mktemp("vocab") / "SST-2", 48, 40)


def test_compress_vocab_auto_ships_a_smaller_student_that_reads_its_training_text_as_before(
    tmp_path, glue_dir, sst2
):  # fmt: skip
    from safetensors.numpy import load_file
    from transformers import AutoTokenizer

    teacher = build_family_classifier("bert", tmp_path / "teacher", glue_dir)
    student = tmp_path / "student"
    common = ["compress", "--teacher", teacher, "--task", "sst2", "--data", sst2, "--student-layers", "2",
              "--max-length", "32", "--batch-size", "8", "--epochs", "1", "--negatives", "4", "--quiet"]  # fmt: skip
    assert invoke(*common, "--out", tmp_path / "full").exit_code == 0
    result = invoke(*common, "--out", student, "--vocab", "auto")
    assert result.exit_code == 0, result.output
    # the same training, read through the new ids: the kept rows and every other weight equal the full run's
    full, cut = load_file(str(tmp_path / "full" / "model.safetensors")), load_file(str(student / "model.safetensors"))
    full_tok, cut_tok = AutoTokenizer.from_pretrained(tmp_path / "full"), AutoTokenizer.from_pretrained(student)
    keep = full_tok.convert_tokens_to_ids(cut_tok.convert_ids_to_tokens(list(range(len(cut_tok)))))
    rows = "bert.embeddings.word_embeddings.weight"
    np.testing.assert_array_equal(cut[rows], full[rows][keep])
    assert all(np.array_equal(full[k], cut[k]) for k in full if k != rows)
    vocabulary = json.loads((student / "metrics.json").read_text())["vocabulary"]
    assert "vocabulary (auto)" in result.output and vocabulary["train_rows_retokenized"] == 0
    assert vocabulary["kept"] == json.loads((student / "config.json").read_text())["vocab_size"] < 1200
    assert vocabulary["embedding_bytes_saved_fp32"] == (1200 - vocabulary["kept"]) * 32 * 4
    assert 0 < vocabulary["dev_texts_retokenized"] <= vocabulary["dev_texts"] == 40
    assert len(AutoTokenizer.from_pretrained(student)) == vocabulary["kept"]
    assert not (student / "vocab.txt").is_file() or len(
        (student / "vocab.txt").read_text(encoding="utf-8").splitlines()) == vocabulary["kept"]  # fmt: skip
    # the rest of the chain takes it as any student: the strings-in graph holds to its tokenizer
    bundle = tmp_path / "bundle"
    result = invoke("export", student, "--out", bundle, "--quantize", "dynamic", "--task", "sst2", "--data", sst2,
                    "--max-length", "32", "--tune-threads", "1", "--tune-lengths", "16")  # fmt: skip
    assert result.exit_code == 0, result.output
    variants = {v["name"]: v for v in json.loads((bundle / "manifest.json").read_text())["variants"]}
    assert variants["strings"]["agreement"]["texts"] >= 120 and variants["strings"]["agreement"]["max_abs_diff"] == 0
    assert invoke("verify", bundle).exit_code == 0
    bundle_eval, folder_eval = tmp_path / "bundle.json", tmp_path / "folder.json"
    assert invoke("evaluate", bundle, "--task", "sst2", "--data", sst2, "--json", bundle_eval).exit_code == 0
    assert invoke("evaluate", student, "--task", "sst2", "--data", sst2, "--json", folder_eval).exit_code == 0
    fp32 = next(v for v in json.loads(bundle_eval.read_text())["variants"] if v["variant"] == "fp32")
    assert fp32["metrics"] == json.loads(folder_eval.read_text())["metrics"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["--vocab", "lots"], "--vocab must be full, auto or a row count"),
     (["--vocab", "3"], "--vocab 3 is below the"),
     (["--task", "ner", "--vocab", "3000"], "--vocab 3000 would split words into other pieces")],
)  # fmt: skip
def test_bad_vocab_settings_get_one_line(tmp_path, tiny_classifier, sst2, args, fragment, no_leftovers):
    base = ["compress", "--teacher", tiny_classifier, "--data", sst2, "--out", tmp_path / "o", "--student-layers", "1",
            "--epochs", "1", "--quiet"]  # fmt: skip
    task = [] if "--task" in args else ["--task", "sst2"]
    assert_one_line_error(invoke(*base, *task, *args), 2, fragment)
