"""Progress on stderr (stdout stays clean for results), readable in a terminal and in a CI log.

In a terminal: live bars. Without one (output redirected, every CI job): a plain line per bar at most
every ``LOG_EVERY_S`` seconds and one when it ends, so a log shows a long stage moving instead of a
single line after it finished. Both show the same figures: count of total, the rate over the bar's
whole run (not a recent window, so that it means what the command's summary means) and the ETA
from that rate; stages add their own free text (loss terms, the step running).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.table import Column
from rich.text import Text

stderr_console = Console(stderr=True)
LOG_EVERY_S = 30.0


def clock(seconds: float | None) -> str:
    """0:07, 12:34 or 1:02:03; '?' while there is nothing to estimate from."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class Bar:
    """One bar's figures; ``first`` is where it started (a resumed run does not count its old steps
    in its rate). ``work_total`` / ``work_done``, when set, measure the cost of the items (tokens of
    length-sorted batches, short ones first) so that the ETA does not assume every item costs the same."""

    description: str
    total: int
    unit: str
    completed: int = 0
    stats: str = ""
    started: float = field(default_factory=lambda: time.monotonic())
    first: int = 0
    work_total: float | None = None
    work_done: float = 0.0

    def rate(self, now: float) -> float | None:
        elapsed = now - self.started
        done = self.completed - self.first
        return done / elapsed if done > 0 and elapsed > 0 else None

    def eta(self, now: float) -> float | None:
        if self.work_total:
            elapsed = now - self.started
            done = self.work_done
            return max(self.work_total - done, 0) * elapsed / done if done > 0 and elapsed > 0 else None
        rate = self.rate(now)
        return max(self.total - self.completed, 0) / rate if rate else None

    def figures(self, now: float) -> str:
        """'63/625 steps, 1.40 steps/s, 0:45 elapsed, ETA 6:41': the part a log line and a bar share."""
        rate = self.rate(now)
        shown = (
            "-" if rate is None else f"{rate:.0f}" if rate >= 100 else f"{rate:.1f}" if rate >= 10 else f"{rate:.2f}"
        )
        return (
            f"{self.completed}/{self.total} {self.unit}, {shown} {self.unit}/s, {clock(now - self.started)} elapsed, "
            f"ETA {clock(self.eta(now))}"
        )


class Bars:
    """The progress a stage reports through: bars added by name and advanced, and free text. This
    base class only keeps the figures and prints messages (``--quiet``); subclasses show them."""

    def __init__(self, console: Console = stderr_console) -> None:
        self.console = console
        self.bars: list[Bar] = []

    def add(
        self, description: str, total: int, unit: str = "steps", completed: int = 0, work_total: float | None = None
    ) -> int:
        self.bars.append(Bar(description, max(int(total), 0), unit, completed, first=completed, work_total=work_total))
        self._shown(len(self.bars) - 1)
        return len(self.bars) - 1

    def advance(self, bar: int, n: int = 1, stats: str | None = None, work: float = 0.0) -> None:
        self.bars[bar].completed += n
        self.bars[bar].work_done += work
        if stats is not None:
            self.bars[bar].stats = stats
        self._shown(bar)

    def note(self, bar: int, stats: str) -> None:
        """Free text after the figures (loss terms, the step now running)."""
        self.bars[bar].stats = stats
        self._shown(bar)

    def print(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    @contextmanager
    def step(self, bar: int, name: str) -> Iterator[None]:
        """One step of a bar counted in steps: named while it runs, counted when it ends."""
        self.note(bar, name)
        yield
        self.advance(bar, stats=f"{name} done")

    def _shown(self, bar: int) -> None:
        """Show bar ``bar`` after a change (nothing in quiet mode)."""

    def close(self, failed: bool = False) -> None:
        """Show the final state of every bar (in a log, not after a failure: its one-line error says
        what happened, and nothing else should share its output)."""


class LogBars(Bars):
    """Plain lines for a log: one per bar at most every ``every_s`` seconds, and one when it ends."""

    def __init__(self, console: Console = stderr_console, every_s: float | None = None) -> None:
        super().__init__(console)
        self.every_s = LOG_EVERY_S if every_s is None else every_s  # read when made: a test may shorten it
        self.last: dict[int, float] = {}
        self.ended: set[int] = set()

    def _shown(self, bar: int) -> None:
        state = self.bars[bar]
        now = time.monotonic()
        finished = state.total and state.completed >= state.total
        if bar in self.ended or not (finished or now - self.last.get(bar, state.started) >= self.every_s):
            return
        self.last[bar] = now
        if finished:
            self.ended.add(bar)
        self._line(state, now)

    def _line(self, state: Bar, now: float) -> None:
        stats = f"  {state.stats}" if state.stats else ""
        self.console.print(f"{state.description}: {state.figures(now)}{stats}", highlight=False, markup=False,
                           soft_wrap=True)  # fmt: skip

    def close(self, failed: bool = False) -> None:
        now = time.monotonic()
        for index, state in enumerate(self.bars):
            if index not in self.ended and not failed:  # ended short of its total (a device given up)
                self._line(state, now)
        self.ended.update(range(len(self.bars)))


class _FiguresColumn(ProgressColumn):
    """Count, whole-run rate, elapsed and ETA as one column that never wraps (Rich's own speed and
    remaining-time columns use a recent window and would disagree with the summary)."""

    def __init__(self, bars: list[Bar]) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self.bars = bars

    def render(self, task: Task) -> Text:
        return Text(self.bars[task.fields["index"]].figures(time.monotonic()))


class _StatsBelow(Progress):
    """Each bar on its line with its free text on the line below, so that loss figures never crowd
    the count and ETA out of a narrow terminal."""

    def get_renderables(self):
        for task in self.tasks:
            yield self.make_tasks_table([task])
            if task.fields.get("stats"):
                yield Text(f"  {task.fields['stats']}")


class LiveBars(Bars):
    """Rich bars in a terminal."""

    def __init__(self, console: Console = stderr_console) -> None:
        super().__init__(console)
        self.progress = _StatsBelow(
            TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)),
            BarColumn(bar_width=20),
            _FiguresColumn(self.bars),
            console=console,
            transient=False,
            refresh_per_second=4,
        )
        self.tasks: list = []
        self.progress.start()

    def add(
        self, description: str, total: int, unit: str = "steps", completed: int = 0, work_total: float | None = None
    ) -> int:
        # the figures exist before a refresh reads them
        index = super().add(description, total, unit, completed, work_total)
        self.tasks.append(self.progress.add_task(description, total=total, completed=completed, stats="", index=index))
        return index

    def _shown(self, bar: int) -> None:
        if bar < len(self.tasks):
            state = self.bars[bar]
            self.progress.update(self.tasks[bar], completed=state.completed, stats=state.stats)

    def print(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, markup=False)

    def close(self, failed: bool = False) -> None:
        self.progress.stop()


@contextmanager
def stage_progress(enabled: bool = True, console: Console = stderr_console) -> Iterator[Bars]:
    """Bars for a stage: live in a terminal, plain lines in a log, none when ``enabled`` is false
    (``--quiet``, or a rank other than the first)."""
    if not enabled:
        bars: Bars = Bars(console)
    elif console.is_terminal:
        bars = LiveBars(console)
    else:
        bars = LogBars(console)
    try:
        yield bars
    except BaseException:
        bars.close(failed=True)
        raise
    bars.close()


def tracked(items, bars: Bars | None, description: str, total: int, unit: str, size=lambda item: 1,
            work=None, work_total: float | None = None) -> Iterator:  # fmt: skip
    """``items`` passed through, advancing a bar by ``size(item)`` after each (and its cost by
    ``work(item)`` out of ``work_total``, for the ETA); no bar when ``bars`` is None."""
    bar = bars.add(description, total, unit, work_total=work_total) if bars is not None else None
    for item in items:
        yield item
        if bars is not None:
            bars.advance(bar, size(item), work=work(item) if work is not None else 0.0)
