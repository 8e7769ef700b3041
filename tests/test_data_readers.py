"""The data layer against the real GLUE files and their quirks, custom formats, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codir_edge.core.errors import InputError
from codir_edge.data import TASKS, DataSpec, get_task, load_split, load_train_dev
from codir_edge.data.readers import read_file, read_split
from codir_edge.data.split import Columns

# Rows per split as stated in ../shared/data/README.md (checked against the official GLUE sizes).
SHARED_SIZES = {
    "sst2": (67349, 872),
    "mrpc": (3668, 408),
    "rte": (2490, 277),
    "cola": (8551, 1043),
    "stsb": (5749, 1500),
}


@pytest.mark.parametrize("task", sorted(SHARED_SIZES))
def test_real_glue_files_load_with_official_sizes(glue_dir, task):
    train, dev, labels = load_train_dev(get_task(task), DataSpec(str(glue_dir)))
    assert (len(train), len(dev)) == SHARED_SIZES[task]
    assert all(isinstance(t, str) for t in train.texts)
    spec = get_task(task)
    assert (train.text_pairs is not None) == spec.is_pair
    if spec.is_regression:
        assert labels == [] and min(train.targets) >= 0.0 and max(train.targets) <= 5.0
    else:
        assert set(train.targets) == set(range(len(labels)))


def test_qnli_dev_only(glue_dir):
    dev = load_split(get_task("qnli"), DataSpec(str(glue_dir / "QNLI")), "dev", list(get_task("qnli").labels))
    assert len(dev) == 5463
    with pytest.raises(InputError, match="no train split"):
        load_train_dev(get_task("qnli"), DataSpec(str(glue_dir)))


def test_glue_quirks(glue_dir):
    mrpc = load_split(get_task("mrpc"), DataSpec(str(glue_dir)), "dev", ["0", "1"])
    # the BOM does not corrupt the header, and quotes are literal text, not CSV quoting
    assert mrpc.text_pairs[0].startswith('" The foodservice pie business')
    cola = load_split(get_task("cola"), DataSpec(str(glue_dir)), "dev", ["0", "1"])
    assert cola.texts[0] == "The sailors rode the breeze clear of the rocks."  # no header row to skip


# Every registered GLUE task, in its own file layout: a registry entry without a reader test fails here.
GLUE_LAYOUTS = {
    "sst2": ("sentence\tlabel", "a fine film\t1"),
    "mrpc": ("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String", '1\t1\t2\t" He said so .\tHe said it .'),
    "rte": ("index\tsentence1\tsentence2\tlabel", "0\tA man sleeps.\tA man rests.\tentailment"),
    "cola": (None, "gj04\t1\t\tThe dog barked."),
    "stsb": (
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
        "0\tmain\tf\t2012\t0\tnone\tnone\tA plane.\tA jet.\t3.800",
    ),
    "qnli": ("index\tquestion\tsentence\tlabel", "0\tWho?\tHim.\tnot_entailment"),
    "qqp": ("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", "0\t1\t2\tWhy?\tHow come?\t1"),
    "mnli": (
        "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
        "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label",
        "0\t1\t1g\tgov\t(a)\t(b)\t(A)\t(B)\tCats purr.\tCats are loud.\tneutral\tneutral",
    ),
    "wnli": ("index\tsentence1\tsentence2\tlabel", "0\tI put the cake away.\tThe cake was put away.\t1"),
}


def test_every_glue_task_has_a_layout_test():
    assert set(GLUE_LAYOUTS) == {name for name, task in TASKS.items() if task.is_glue}


@pytest.mark.parametrize("task_name", sorted(GLUE_LAYOUTS))
def test_each_glue_task_reads_its_own_layout(tmp_path, task_name):
    task = get_task(task_name)
    header, row = GLUE_LAYOUTS[task_name]
    folder = tmp_path / task.folder
    folder.mkdir()
    text = "\n".join(([header] if header else []) + [row, row]) + "\n"
    for name in set(task.split_files.values()):
        (folder / name).write_text(text, encoding="utf-8")
    train, dev, labels = load_train_dev(task, DataSpec(str(tmp_path)))
    assert len(train) == len(dev) == 2
    assert train.texts[0].strip() and (train.text_pairs is not None) == task.is_pair
    assert labels == list(task.labels)


def test_task_names_are_forgiving_and_unknown_lists_known():
    assert get_task("SST-2").name == "sst2" and get_task("sts_b").name == "stsb"
    with pytest.raises(InputError, match="unknown task 'imdb': use one of sst2, mrpc"):
        get_task("imdb")


def test_custom_csv_jsonl_tsv(tmp_path):
    (tmp_path / "d.csv").write_text('text,label\n"hello, ""world""",pos\nbye,neg\n', encoding="utf-8")
    raw = read_file(tmp_path / "d.csv", Columns("text", None, "label"))
    assert raw.texts == ['hello, "world"', "bye"] and raw.labels == ["pos", "neg"]
    (tmp_path / "d.jsonl").write_text('{"q": "a?", "a": "b", "y": 1}\n\n{"q": "c?", "a": "d", "y": 0}\n')
    raw = read_file(tmp_path / "d.jsonl", Columns("q", "a", "y"))
    assert raw.text_pairs == ["b", "d"] and raw.labels == ["1", "0"]
    (tmp_path / "d.tsv").write_text('x\ty\n"quoted\tno\n')
    assert read_file(tmp_path / "d.tsv", Columns("x", None, "y")).texts == ['"quoted']


def test_custom_classification_labels_from_train_or_given(tmp_path, keyword_data):
    task = get_task("classification")
    spec = DataSpec(str(keyword_data), text_column="review", label_column="sentiment")
    _, _, labels = load_train_dev(task, spec)
    assert labels == ["neg", "pos"]
    _, _, labels = load_train_dev(task, DataSpec(spec.data, "review", None, "sentiment", ("pos", "neg")))
    assert labels == ["pos", "neg"]


@pytest.mark.parametrize(
    ("content", "columns", "message"),
    [
        ("", Columns("text", None, "label"), "is empty"),
        ("text\tlabel\n", Columns("text", None, "label"), "header but no examples"),
        ("sentence\tlabel\nhi\t1\n", Columns("text", None, "label"), "no column 'text' for the text .*sentence, label"),
        ("text\tlabel\nonly-one-field\n", Columns("text", None, "label"), "line 2: 1 fields where at least 2"),
    ],
)
def test_bad_tables_name_problem(tmp_path, content, columns, message):
    path = tmp_path / "train.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_file(path, columns)


def test_bad_sources(tmp_path):
    task = get_task("sst2")
    cols = Columns.for_task(task)
    with pytest.raises(InputError, match="does not exist"):
        read_split(tmp_path / "nope", task, "train", cols)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="is empty"):
        read_split(tmp_path / "empty", task, "train", cols)
    (tmp_path / "latin1.tsv").write_bytes("sentence\tlabel\ncaf\xe9\t1\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8 .* re-save it as UTF-8"):
        read_split(tmp_path / "latin1.tsv", task, "train", cols)
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(InputError, match="unsupported data file type '.parquet'"):
        read_split(tmp_path / "x.parquet", task, "train", cols)
    (tmp_path / "bad.jsonl").write_text('{"sentence": "a", "label": 1}\n{oops\n')
    with pytest.raises(InputError, match="line 2: not valid JSON"):
        read_split(tmp_path / "bad.jsonl", task, "train", cols)


def test_label_outside_task_names_line(tmp_path):
    folder = tmp_path / "SST-2"
    folder.mkdir()
    (folder / "train.tsv").write_text("sentence\tlabel\ngood\t1\nbad\t7\n")
    (folder / "dev.tsv").write_text("sentence\tlabel\ngood\t1\n")
    with pytest.raises(InputError, match=r"train.tsv line 3: label '7' is not one of task 'sst2''s labels \(0, 1\)"):
        load_train_dev(get_task("sst2"), DataSpec(str(folder)))


def test_single_file_needs_eval_data(tmp_path, keyword_data):
    spec = DataSpec(str(keyword_data / "train.csv"), "review", None, "sentiment")
    with pytest.raises(InputError, match="single file.*--eval-data"):
        load_train_dev(get_task("classification"), spec)
    _, dev, _ = load_train_dev(
        get_task("classification"), spec, DataSpec(str(keyword_data / "dev.csv"), "review", None, "sentiment")
    )
    assert len(dev) == 40


def test_saved_hf_dataset_reads_offline(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["negative", "positive"])}
    )
    data = {"sentence": ["a dull film", "a joy"], "label": [0, 1]}
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(data, features=features),
            "validation": datasets.Dataset.from_dict(data, features=features),
        }
    )
    dd.save_to_disk(str(tmp_path / "saved"))
    train, dev, labels = load_train_dev(get_task("sst2"), DataSpec(str(tmp_path / "saved")))
    assert labels == ["0", "1"] and train.targets == [0, 1] and dev.texts == ["a dull film", "a joy"]


def test_hub_name_offline_fails_with_the_way_around(tmp_path):
    pytest.importorskip("datasets")
    with pytest.raises(InputError, match="cannot load dataset 'nyu-mll/glue:sst2'.*save_to_disk"):
        read_split("hf:nyu-mll/glue:sst2", get_task("sst2"), "train", Columns.for_task(get_task("sst2")))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=300), suffix=st.sampled_from([".tsv", ".csv", ".jsonl"]))
def test_any_bytes_give_a_split_or_one_line_error(tmp_path, content, suffix):
    path = tmp_path / f"train{suffix}"
    path.write_bytes(content)
    task = get_task("sst2")
    try:
        examples = load_split(task, DataSpec(str(path)), "train", list(task.labels))
    except InputError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    else:
        assert len(examples) >= 1 and all(t in (0, 1) for t in examples.targets)


def test_subsample_is_seeded_and_ordered(glue_dir):
    train = load_split(get_task("sst2"), DataSpec(str(glue_dir)), "dev", ["0", "1"])
    a, b = train.subsample(50, seed=1), train.subsample(50, seed=1)
    assert a.texts == b.texts and len(a) == 50 and a.texts != train.subsample(50, seed=2).texts
    positions = [train.texts.index(t) for t in a.texts]
    assert positions == sorted(positions)


def test_data_root_or_task_folder(glue_dir):
    task = get_task("rte")
    root = load_split(task, DataSpec(str(glue_dir)), "dev", list(task.labels))
    direct = load_split(task, DataSpec(str(Path(glue_dir) / "RTE")), "dev", list(task.labels))
    assert root.texts == direct.texts


def test_line_separator_characters_inside_a_text_stay_in_that_text(tmp_path):
    task = get_task("sst2")
    text = "a line\u2028separator, a\x1cfile separator and a\x85next-line"
    (tmp_path / "train.tsv").write_text(f"sentence\tlabel\n{text}\t1\n", encoding="utf-8")
    (tmp_path / "train.jsonl").write_text(json.dumps({"sentence": text, "label": 1}, ensure_ascii=False) + "\n")
    for name in ("train.tsv", "train.jsonl"):
        examples = load_split(task, DataSpec(str(tmp_path / name)), "train", list(task.labels))
        assert examples.texts == [text] and examples.targets == [1]
    (tmp_path / "blank.jsonl").write_text("\x1c\n  \n")
    with pytest.raises(InputError, match="holds no JSON records"):
        load_split(task, DataSpec(str(tmp_path / "blank.jsonl")), "train", list(task.labels))
