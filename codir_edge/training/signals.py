"""Ctrl-C and SIGTERM during training: finish the step, save a checkpoint, exit 130."""

from __future__ import annotations

import contextlib
import signal

from codir_edge.core.errors import CodirError


class Interrupted(CodirError):
    """Ctrl-C or SIGTERM during training: a checkpoint was saved; exit 130 with how to resume."""

    exit_code = 130


class StopFlag:
    requested = False


@contextlib.contextmanager
def stop_on_signals():
    """Ctrl-C and SIGTERM only raise a flag while training: the loop then finishes its step, saves a
    checkpoint and stops, instead of dying half-way through an optimizer update."""
    flag = StopFlag()

    def request(signum, frame):  # noqa: ARG001 - signal handler signature
        flag.requested = True

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: signals stay as they were
            previous[sig] = signal.signal(sig, request)
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
