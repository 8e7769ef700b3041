"""Progress as a terminal and as a CI log see it: the same figures (count, whole-run rate, ETA), live
bars in one, a line at most every interval and at the end in the other."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from codir_edge.core import progress as progress_module
from codir_edge.core.progress import Bars, LiveBars, LogBars, clock, stage_progress, tracked


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_clock(monkeypatch) -> Clock:
    clock_ = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock_)
    return clock_


def log_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=80), buffer


def test_log_lines_at_most_every_interval_and_at_the_end(fake_clock) -> None:
    console, buffer = log_console()
    bars = LogBars(console, every_s=30)
    bar = bars.add("finetune", 100, "steps")
    for _ in range(100):
        fake_clock.now += 1.0  # one step a second: 100 s in all
        bars.advance(bar, stats="loss 0.4000")
    bars.close()
    lines = buffer.getvalue().splitlines()
    assert lines == [
        "finetune: 30/100 steps, 1.00 steps/s, 0:30 elapsed, ETA 1:10  loss 0.4000",
        "finetune: 60/100 steps, 1.00 steps/s, 1:00 elapsed, ETA 0:40  loss 0.4000",
        "finetune: 90/100 steps, 1.00 steps/s, 1:30 elapsed, ETA 0:10  loss 0.4000",
        "finetune: 100/100 steps, 1.00 steps/s, 1:40 elapsed, ETA 0:00  loss 0.4000",
    ]


def test_a_failed_stage_leaves_its_error_alone_and_a_short_one_says_where_it_ended(fake_clock) -> None:
    console, buffer = log_console()
    with pytest.raises(KeyboardInterrupt), stage_progress(True, console) as bars:
        bar = bars.add("teacher bank", 1000, "ex")
        fake_clock.now += 4
        bars.advance(bar, 200)
        raise KeyboardInterrupt
    assert buffer.getvalue() == ""  # the command's one-line error is all a failure prints
    with stage_progress(True, console) as bars:  # a device given up: the sweep ends short of its total
        bar = bars.add("profile", 8, "runs")
        fake_clock.now += 4
        bars.advance(bar, 2)
    assert buffer.getvalue() == "profile: 2/8 runs, 0.50 runs/s, 0:04 elapsed, ETA 0:12\n"


def test_rate_counts_only_this_run_after_a_resume(fake_clock) -> None:
    bars = Bars()
    bar = bars.add("compress", 1000, "steps", completed=600)
    fake_clock.now += 10
    bars.advance(bar, 20)
    assert bars.bars[bar].figures(fake_clock.now) == "620/1000 steps, 2.00 steps/s, 0:10 elapsed, ETA 3:10"


def test_terminal_bar_keeps_count_rate_and_eta_beside_long_loss_figures() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100, color_system=None)
    bars = LiveBars(console)
    bar = bars.add("compress", 625, "steps")
    terms = "  ".join(f"{name} {0.1234:.4f}" for name in ("loss", "ce", "kd", "contrastive"))
    losses = f"{terms}  lr 1.00e-04  41 ex/s"
    for _ in range(63):
        bars.advance(bar, stats=losses)
    bars.close()
    last = buffer.getvalue().split("\r")[-1]
    assert "63/625 steps" in last and "ETA " in last and "elapsed" in last
    assert "…" not in last
    assert "contrastive" in last and "41 ex/s" in last  # wrapped under its column, not cut


def test_quiet_shows_no_bar_but_keeps_messages() -> None:
    console, buffer = log_console()
    with stage_progress(False, console) as bars:
        bar = bars.add("finetune", 3)
        for _ in range(3):
            bars.advance(bar)
        bars.print("epoch 1: dev accuracy 0.5000")
    assert buffer.getvalue() == "epoch 1: dev accuracy 0.5000\n"


def test_stage_progress_picks_live_bars_for_a_terminal_and_lines_for_a_log() -> None:
    with stage_progress(True, Console(file=io.StringIO(), force_terminal=True)) as bars:
        assert isinstance(bars, LiveBars)
    with stage_progress(True, Console(file=io.StringIO(), force_terminal=False)) as bars:
        assert type(bars) is LogBars


def test_tracked_advances_by_each_items_size(fake_clock) -> None:
    console, buffer = log_console()
    bars = LogBars(console, every_s=30)
    batches = [list(range(32))] * 3 + [list(range(4))]
    seen = []
    for batch in tracked(batches, bars, "teacher bank", 100, "ex", size=len):
        fake_clock.now += 1
        seen.append(len(batch))
    assert seen == [32, 32, 32, 4] and bars.bars[0].completed == 100
    assert buffer.getvalue().startswith("teacher bank: 100/100 ex")
    assert list(tracked([1, 2], None, "x", 2, "ex")) == [1, 2]


def test_steps_are_named_while_they_run(fake_clock) -> None:
    bars = Bars()
    bar = bars.add("export", 2, "steps")
    with bars.step(bar, "fp32 graph and parity"):
        assert bars.bars[bar].stats == "fp32 graph and parity" and bars.bars[bar].completed == 0
    assert bars.bars[bar].completed == 1


@pytest.mark.parametrize(("seconds", "shown"), [(None, "?"), (7.4, "0:07"), (754, "12:34"), (3723, "1:02:03")])
def test_clock(seconds, shown) -> None:
    assert clock(seconds) == shown


def test_eta_follows_the_work_left_when_items_differ_in_cost(fake_clock) -> None:
    """Length-sorted batches (the teacher bank) run short sentences first: half the examples are a
    tenth of the tokens, so the ETA must come from the tokens, not the example count."""
    console, buffer = log_console()
    lengths = [4] * 50 + [36] * 50  # 200 + 1800 tokens
    bars = LogBars(console, every_s=30)
    batches = [list(range(i, i + 10)) for i in range(0, 100, 10)]
    seen = tracked(batches, bars, "teacher bank", 100, "ex", size=len,
                   work=lambda rows: sum(lengths[r] for r in rows), work_total=sum(lengths))  # fmt: skip
    for index, _ in enumerate(seen):
        fake_clock.now += 1
        if index == 4:
            break
    bar = bars.bars[0]
    # 5 s in: 4 batches counted (the fifth once the next is asked for), 160 of 2000 tokens done
    assert bar.completed == 40 and bar.work_done == 160
    assert bar.eta(fake_clock.now) == pytest.approx(1840 * 5 / 160)  # 57.5 s, not the 7.5 s examples suggest
