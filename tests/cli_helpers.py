"""Helpers shared by the CLI tests: run a command in-process and check the one-line error contract."""

from __future__ import annotations

import signal

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


def default_sigint() -> None:
    """``preexec_fn`` for commands the tests interrupt: a shell that starts jobs in the background
    (``cmd &``) hands them SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
