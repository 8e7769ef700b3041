"""Progress bars on stderr (stdout stays clean for results), silent when asked or when not a terminal
in CI logs beyond a final line."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

stderr_console = Console(stderr=True)


def stage_progress(enabled: bool = True) -> Progress:
    """A bar per phase with a free-text ``stats`` field for loss terms, learning rate and examples/s."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[stats]}"),
        console=stderr_console,
        disable=not enabled,
        transient=False,
    )
