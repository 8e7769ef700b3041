"""The teacher bank on disk: written in any row order by streaming, read back row by row, compatible
with the safetensors format earlier versions wrote, never trusted when damaged; and training that
reads it from disk computes exactly what training from memory computes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codir_edge.compress.bank.cache import BankWriter, bank_file, open_bank
from codir_edge.compress.bank.table import FileTable, TeacherBank


def write(path, key, features: np.ndarray, logits: np.ndarray, order: np.ndarray, chunk: int) -> None:
    with BankWriter(path, key, len(features), features.shape[1], logits.shape[1]) as writer:
        for start in range(0, len(order), chunk):
            rows = order[start : start + chunk]
            writer.write(rows, features[rows], logits[rows])
        writer.commit()


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 60),
    width=st.integers(1, 9),
    classes=st.integers(0, 3),
    chunk=st.integers(1, 16),
    seed=st.integers(0, 2**16),
)
def test_rows_written_in_any_order_read_back_exactly(tmp_path_factory, rows, width, classes, chunk, seed):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((rows, width)).astype(np.float16)
    logits = rng.standard_normal((rows, classes)).astype(np.float16)
    path = tmp_path_factory.mktemp("bank") / "bank.safetensors"
    write(path, "k", features, logits, rng.permutation(rows), chunk)
    table, scores = open_bank(path, "k", rows)
    index = torch.from_numpy(rng.integers(0, rows, (3, 5)))
    assert torch.equal(table[index], torch.from_numpy(features)[index])
    assert torch.equal(scores[index], torch.from_numpy(logits)[index])
    assert torch.equal(table.to("cpu"), torch.from_numpy(features))
    from safetensors.torch import load_file  # the format earlier versions wrote and read

    stored = load_file(str(path))
    assert torch.equal(stored["features"], torch.from_numpy(features))
    assert torch.equal(stored["logits"], torch.from_numpy(logits))


def test_banks_saved_by_safetensors_itself_are_read(tmp_path):
    from safetensors.torch import save_file

    features, logits = torch.randn(7, 4).half(), torch.randn(7, 2).half()
    save_file({"features": features, "logits": logits}, str(tmp_path / "b.safetensors"), metadata={"key": "old"})
    table, scores = open_bank(tmp_path / "b.safetensors", "old", 7)
    assert torch.equal(table.to("cpu"), features) and torch.equal(scores.to("cpu"), logits)


def test_a_damaged_or_foreign_bank_is_never_trusted(tmp_path):
    rng = np.random.default_rng(0)
    path = bank_file(tmp_path, "good")
    write(path, "good", rng.standard_normal((10, 4)).astype(np.float16), np.zeros((10, 2), np.float16),
          np.arange(10), 4)  # fmt: skip
    assert open_bank(path, "good", 10) is not None
    assert open_bank(path, "other", 10) is None  # another teacher or data
    assert open_bank(path, "good", 11) is None  # another row count
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(path.read_bytes()[:-3])
    assert open_bank(truncated, "good", 10) is None
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    assert open_bank(garbage, "good", 10) is None
    assert open_bank(tmp_path / "missing.safetensors", "good", 10) is None


def test_an_interrupted_build_leaves_no_bank_under_the_cache_name(tmp_path):
    path = bank_file(tmp_path, "k")
    with pytest.raises(KeyboardInterrupt), BankWriter(path, "k", 10, 4, 2) as writer:
        writer.write(np.arange(3), np.ones((3, 4), np.float16), np.ones((3, 2), np.float16))
        raise KeyboardInterrupt
    assert not path.exists() and list(path.parent.iterdir()) == []


def test_a_bank_read_from_disk_gathers_what_one_in_memory_gathers(tmp_path):
    features, logits = torch.randn(50, 6).half(), torch.randn(50, 2).half()
    write(tmp_path / "b.safetensors", "k", features.numpy(), logits.numpy(), np.arange(50)[::-1].copy(), 7)
    table, scores = open_bank(tmp_path / "b.safetensors", "k", 50)
    on_disk, in_memory = TeacherBank(table, scores, torch.zeros(50)), TeacherBank(features, logits, torch.zeros(50))
    assert on_disk.on_disk and not in_memory.on_disk and on_disk.nbytes == in_memory.nbytes
    index = torch.tensor([[3, 3, 49], [0, 17, 3]])
    assert torch.equal(on_disk.rows(on_disk.features, index, "cpu"), in_memory.rows(features, index, "cpu"))
    assert isinstance(on_disk.features, FileTable) and on_disk.to("cpu").features.shape == (50, 6)


@pytest.mark.slow
def test_compress_from_a_bank_on_disk_trains_the_same_student(tmp_path, backbone_dir, glue_dir, monkeypatch):
    """The same run with the bank in memory and read per step from its file: identical weights."""
    from cli_helpers import max_difference, weights_of
    from conftest import build_tiny_bert, cut_glue

    import codir_edge.compress.bank.table as table_module
    from codir_edge.compress.config import FineConfig
    from codir_edge.compress.run import run_compress
    from codir_edge.data import DataSpec

    teacher = build_tiny_bert(tmp_path / "t", backbone_dir, num_labels=2, layers=4, id2label={0: "0", 1: "1"})
    data = DataSpec(str(cut_glue(glue_dir, "SST-2", tmp_path / "d", 96, 24)))
    config = FineConfig(task="sst2", student_layers=2, epochs=1, batch_size=8, max_length=32, negatives=5,
                            device="cpu")  # fmt: skip
    memory = run_compress(teacher, data, tmp_path / "memory", config, show_progress=False)
    monkeypatch.setattr(table_module, "IN_MEMORY_BYTES", 0)
    disk = run_compress(teacher, data, tmp_path / "disk", config, show_progress=False)
    assert memory.bank.location == "cpu" and disk.bank.location == "disk"
    assert max_difference(weights_of(tmp_path / "memory"), weights_of(tmp_path / "disk")) == 0.0
    assert json.loads((tmp_path / "disk" / "metrics.json").read_text())["dev"] == memory.dev
