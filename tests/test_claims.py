"""Timing claims come from one place: the README, ``demo --help`` and RESULTS.md quote the result
files that ``benchmarks/demo_run.py`` and ``benchmarks/test_suite.py`` write, and say on what
machine and load they were measured. Re-running a benchmark without updating its quotes fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer.main

from codir_edge.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def result(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def readme_top() -> str:
    """Everything above the README's first rule: what a newcomer reads before running anything."""
    return (ROOT / "README.md").read_text(encoding="utf-8").split("\n---\n", 1)[0]


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_demo_time_is_quoted_from_its_result_file() -> None:
    demo = result("demo")
    quoted = f"{minutes(demo['wall_s'])} minutes"
    assert demo.get("load_average_before") and demo.get("cpus"), "the result must say how busy the machine was"
    top = flat(readme_top())
    assert quoted in top and "demo.json" in top
    readme = flat((ROOT / "README.md").read_text(encoding="utf-8"))
    assert f"**`codir-edge demo`**: {quoted} end to end" in readme
    assert f"load average {demo['load_average_before'][0]:.2f} before it started" in readme
    demo_help = flat(typer.main.get_command(app).commands["demo"].help or "")
    assert quoted in demo_help and "demo.json" in demo_help
    assert f"Wall time **{minutes(demo['wall_s'])} min**" in (ROOT / "benchmarks" / "RESULTS.md").read_text()


def test_test_command_time_is_quoted_from_its_result_file() -> None:
    suite = result("test_suite")
    top = flat(readme_top())
    assert f"set-up {minutes(suite['setup_s'])} min" in top and f"tests {minutes(suite['checks_s'])} min" in top
    assert "test_suite.json" in top and f"{suite['counts']['passed']} passed" in top
    assert f"load average {suite['load_average_before'][0]:.2f} before the start" in top
    assert f"lint and suite **{minutes(suite['checks_s'])} min**" in (ROOT / "benchmarks" / "RESULTS.md").read_text()
    assert suite["counts"].get("failed", 0) == 0


@pytest.mark.parametrize("claim", [r"about \d+ min", r"a few minutes"])
def test_no_vague_timing_claims_remain(claim: str) -> None:
    demo_help = typer.main.get_command(app).commands["demo"].help or ""
    for where, text in (("README", readme_top()), ("demo --help", demo_help)):
        assert not re.search(claim, text), f"{where} still says '{claim}'"
