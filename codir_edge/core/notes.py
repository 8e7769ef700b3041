"""One-line notes to the user on stderr, each said once per process.

A note is something the tool decided on the user's behalf that they should know about (a default
label map read in task order), not progress: it goes to stderr so ``--json -`` style output stays
clean, and it is said once however many stages ask the same question. Once per *command*: the CLI
forgets what was said when a command starts, so a second command in the same process (a notebook,
a test runner, ``CliRunner``) is told again what the first was told.
"""

from __future__ import annotations

import sys

_said: set[str] = set()


def note(message: str) -> None:
    if message not in _said:
        _said.add(message)
        print(f"note: {message}", file=sys.stderr, flush=True)


def forget_notes() -> None:
    """Start a new command: every note may be said again (called by the CLI's root callback)."""
    _said.clear()
