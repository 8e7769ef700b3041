"""Errors users can act on.

Library code raises these with a message that names the problem *and* the fix, in one line. Only
the CLI edge turns them into an exit code, so the library stays usable from Python and from
tests without catching ``SystemExit``.
"""

from __future__ import annotations


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


class DeviceFault(InputError):
    """A device, this machine included, could not be measured; the message starts with its name. The
    other devices go on."""
