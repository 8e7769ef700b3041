"""Output folders appear whole or not at all, whatever happens to the process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from cli_helpers import interrupt_when_started

from codir_edge.core.atomic import staged_output_dir
from codir_edge.core.errors import InputError


def test_staged_output_replaces_only_on_success(tmp_path):
    out = tmp_path / "artifact"
    with staged_output_dir(out) as stage:
        (stage / "a.txt").write_text("v1")
    assert (out / "a.txt").read_text() == "v1" and oct(out.stat().st_mode & 0o777) != "0o700"
    with pytest.raises(RuntimeError), staged_output_dir(out, overwrite=True) as stage:
        (stage / "a.txt").write_text("v2")
        raise RuntimeError("crash mid-write")
    assert (out / "a.txt").read_text() == "v1"  # the earlier artifact survives a failed overwrite
    with pytest.raises(InputError, match="already exists"), staged_output_dir(out):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]


def test_stale_staging_of_a_dead_process_is_swept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".artifact.tmp-{int(dead.stdout)}-abc"
    stale.mkdir()
    (stale / "half.bin").write_bytes(b"x")
    with staged_output_dir(tmp_path / "artifact") as stage:
        (stage / "ok").write_text("1")
    assert not stale.exists() and (tmp_path / "artifact" / "ok").exists()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 130), (signal.SIGKILL, -9)])
def test_interrupted_finetune_leaves_nothing_at_out(tmp_path, tiny_backbone, glue_dir, sig, code):
    out = tmp_path / "teacher"
    log = tmp_path / "log.txt"
    cmd = [
        sys.executable,
        "-m",
        "codir_edge.cli",
        "finetune",
        "--model",
        str(tiny_backbone),
        "--task",
        "sst2",
        "--data",
        str(glue_dir),
        "--out",
        str(out),
        "--epochs",
        "50",
        "--max-train-samples",
        "2000",
        "--max-eval-samples",
        "16",
        "--max-length",
        "32",
        "--quiet",
    ]
    # signal once training has started writing into its working folder
    status = interrupt_when_started(cmd, log, ".teacher.partial/train_log.jsonl", tmp_path, sig, settle=0.5)
    assert status == code, log.read_text()
    assert not out.exists()
    assert not list(tmp_path.glob(".teacher.tmp-*"))  # the output is staged only once training is done
    if sig != signal.SIGKILL:  # Ctrl-C and SIGTERM save a checkpoint that --resume continues from
        assert "error: interrupted at step" in log.read_text() and "--resume" in log.read_text()
        assert list((tmp_path / ".teacher.partial" / "checkpoints").glob("step-*/state.pt"))


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_honour_the_umask(tmp_path, umask, mode):
    """Reports, pipeline files and stamps (all written through atomic_write_text) get what ``open``
    would give them, not mkstemp's 0600."""
    from codir_edge.core.atomic import atomic_write_text
    from codir_edge.pipeline.demo import DemoSettings, write_demo_pipeline

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "report.json", "{}\n")
        toml = write_demo_pipeline(tmp_path / "demo", str(tmp_path), DemoSettings())
    finally:
        os.umask(old)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == mode
    assert toml.stat().st_mode & 0o777 == mode
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


def test_two_runs_with_one_out_never_both_succeed(tmp_path):
    """Both start before either finishes: the first to finish publishes, the second is refused with
    the usual line and the first's output stays as it was."""
    out = tmp_path / "artifact"
    first, second = staged_output_dir(out), staged_output_dir(out)
    first_stage, second_stage = first.__enter__(), second.__enter__()  # both pass the check: nothing exists yet
    (first_stage / "who").write_text("first")
    (second_stage / "who").write_text("second")
    first.__exit__(None, None, None)
    with pytest.raises(InputError, match="already exists and is not empty .another run finished first.*--overwrite"):
        second.__exit__(None, None, None)
    assert (out / "who").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]  # the loser's staging folder is gone
