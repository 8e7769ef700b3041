"""Errors users can act on.

Library code raises these with a message that names the problem *and* the fix, in one line. Only
the CLI edge turns them into an exit code, so the library stays usable from Python and from
tests without catching ``SystemExit``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class CodirError(Exception):
    """Base of every error the user can fix; ``exit_code`` is what the CLI exits with."""

    exit_code = 2


class InputError(CodirError):
    """Bad usage or bad input (a path, a file, an option): exit code 2."""

    exit_code = 2


class MissingExtraError(InputError):
    """A command needs an optional dependency group that is not installed."""

    def __init__(self, what: str, extra: str, module: str):
        super().__init__(
            f"{what} needs the '{module}' package, which is not installed: "
            f"run pip install 'codir-edge[{extra}]' (add -c constraints.txt for the tested versions)"
        )
        self.extra = extra
        self.module = module


class CheckFailedError(CodirError):
    """A check the user asked for ran and failed (parity, accuracy, a budget): exit code 1."""

    exit_code = 1


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's first line, cut to ``limit`` characters (its type's name when it has no text):
    third-party errors (onnxruntime's pybind ones, the hub's) run to many lines, a user error is one."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class StepFailedError(CodirError):
    """A step failed on this model for a reason that is not the user's input (a converter or a
    quantizer that does not handle it): exit code 1, with the option that skips the step."""

    exit_code = 1


@contextlib.contextmanager
def avoidable(step: str, fix: str) -> Iterator[None]:
    """Inside, an unexpected failure becomes a :class:`StepFailedError` that names the step, its cause
    and ``fix`` (the option that avoids the step), instead of an internal error with no way round."""
    try:
        yield
    except (CodirError, MemoryError):
        raise
    except Exception as exc:
        cause = f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__
        raise StepFailedError(f"{step} failed on this model ({cause}): {fix}, and please report the model") from exc


class DeviceFault(InputError):
    """A device, this machine included, could not be measured; the message starts with its name. The
    other devices go on."""
