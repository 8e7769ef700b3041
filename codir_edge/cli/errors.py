"""The CLI edge: the only place where exceptions become exit codes.

Users get one line that names the problem and the fix; ``--debug`` (or CODIR_EDGE_DEBUG=1) prints the
full trace before it, with the same exit code, so scripts behave alike with and without it.
Exit codes: 0 success, 1 a check failed, 2 bad usage or input, 130 interrupted.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import TypeVar

import typer

from codir_edge.core.errors import CodirError

F = TypeVar("F", bound=Callable)
_state = {"debug": False}


def set_debug(enabled: bool) -> None:
    """Set per invocation (the root callback runs on every call, so nothing leaks between calls)."""
    _state["debug"] = enabled or os.environ.get("CODIR_EDGE_DEBUG", "") not in ("", "0")


def debug_enabled() -> bool:
    """Whether this invocation asked for traces (the pipeline passes it on to its stages)."""
    return _state["debug"]


def fail(message: str, code: int) -> typer.Exit:
    if _state["debug"]:
        traceback.print_exc(file=sys.stderr)
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _terminate(signum, frame):  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


def handle_errors(command: F) -> F:
    """Wrap a command: domain errors -> one line + exit code; SIGTERM behaves like Ctrl-C so that
    staging folders are cleaned up; unexpected errors still fit on one line unless debugging."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        previous = signal.getsignal(signal.SIGTERM)
        try:
            signal.signal(signal.SIGTERM, _terminate)
        except ValueError:  # not the main thread (some test runners)
            previous = None
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except CodirError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except MemoryError:
            raise fail("out of memory: lower --batch-size or --max-length", 1) from None
        except Exception as exc:  # a bug of ours: still one line, with the way to the trace
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise fail(
                f"internal error {type(exc).__name__}: {first} (re-run with --debug for the trace and report it)", 1
            ) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            sys.stderr.flush()

    return wrapper  # type: ignore[return-value]
