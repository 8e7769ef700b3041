"""Helpers shared by the CLI tests: run a command in-process and check the one-line error contract."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from codir_edge.cli.app import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def invoke_one_thread(*args):
    """``invoke`` with torch on one thread, as ``run_cli``'s children run: a run here computes what a
    child computes bit for bit, so the tests that kill a child start it only for the run they kill
    (each child pays seconds of imports)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return invoke(*args)
    finally:
        torch.set_num_threads(before)


def compress_args(teacher: Path, data: Path, out: Path, *extra) -> list:
    """A short CoDIR-Fine run on SST-2 rows: the arguments the compress tests start from."""
    return ["compress", "--teacher", teacher, "--task", "sst2", "--data", data, "--out", out, "--max-length", "32",
            "--batch-size", "8", "--epochs", "1", "--negatives", "5", "--quiet", *extra]  # fmt: skip


def read_log(folder: Path) -> list[dict]:
    """A training run's train_log.jsonl, one dict per line."""
    import json

    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


def assert_one_line_error(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def interrupt_when_started(cmd: list[str], log: Path, started: str, folder: Path, sig: int, settle: float = 0.0) -> int:
    """Run ``cmd`` (output to ``log``), send ``sig`` once ``folder.glob(started)`` matches, and return
    its exit status; the command must still be running when its marker appears."""
    with open(log, "w") as handle:
        proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, preexec_fn=default_sigint)
    deadline = time.time() + 120
    while time.time() < deadline and not list(folder.glob(started)):
        assert proc.poll() is None, log.read_text()
        time.sleep(0.05)
    time.sleep(settle)
    proc.send_signal(sig)
    return proc.wait(timeout=60)


def default_sigint() -> None:
    """``preexec_fn`` for commands the tests interrupt: a shell that starts jobs in the background
    (``cmd &``) hands them SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(args: list, **kwargs) -> subprocess.Popen:
    """``python -m codir_edge ARGS`` in a child process with one thread, interruptible by SIGINT."""
    env = {**os.environ, "CODIR_EDGE_DEBUG": "0", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "codir_edge", *map(str, args)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    return subprocess.Popen(command, env=env, text=True, preexec_fn=default_sigint, **pipes, **kwargs)


def interrupt_after_first_checkpoint(args: list, partial: Path, sig: int) -> subprocess.CompletedProcess:
    """Run ``args``, send ``sig`` as soon as the working folder ``partial`` holds a checkpoint."""
    process = run_cli(args)
    deadline = time.monotonic() + 120
    while not list((partial / "checkpoints").glob("step-*")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    process.send_signal(sig)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def weights_of(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)
