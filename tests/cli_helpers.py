"""Helpers shared by the CLI tests: run a command in-process and check the one-line error contract."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from typer.testing import CliRunner

from codir_edge.cli.app import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


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
