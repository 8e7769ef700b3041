"""Every command's --help, rendered as a newcomer's 80-column terminal shows it, keeps every word of
every help string and every default: a markup or cropping regression fails here, not in front of a
user."""

from __future__ import annotations

import re
from enum import Enum

import pytest
import typer.main
from typer.testing import CliRunner

from codir_edge.cli.app import app

GROUP = typer.main.get_command(app)
COMMANDS = sorted(GROUP.commands)


def _squashed(text: str) -> str:
    """Text without whitespace: wrapping (at spaces or after hyphens) must not change a word."""
    return re.sub(r"\s+", "", text.replace("\b", ""))


def _help(args: list[str], columns: int) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


def _expected_default(param) -> str | None:
    """The default a reader must see, worked out from the declaration, not from the help renderer."""
    if isinstance(param.show_default, str):
        return f"({param.show_default})"
    if param.default is None or param.show_default is False or getattr(param, "hidden", False):
        return None
    if getattr(param, "is_flag", False) and param.secondary_opts:
        names = param.opts if param.default else param.secondary_opts
        return names[0].lstrip("-")
    if getattr(param, "is_flag", False):
        return None  # a lone flag (--fp16) is off unless given
    if isinstance(param.default, Enum):
        return str(param.default.value)
    if isinstance(param.default, (list, tuple)):
        return ", ".join(map(str, param.default)) if param.default else None
    return str(param.default)


def test_every_command_is_listed_in_the_root_help() -> None:
    text = _help([], 80)
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s", text, re.MULTILINE), name


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("columns", [80, 200])
def test_help_keeps_every_word_and_default(name: str, columns: int) -> None:
    command = GROUP.commands[name]
    text = _help([name], columns)
    assert max(map(len, text.splitlines())) <= columns, "a help line is wider than the terminal"
    assert "…" not in text, "help text was cropped"
    flat = _squashed(text)
    assert _squashed(command.help or "") in flat, "the command's own help lost words"
    for param in command.params:
        if param.help:
            assert _squashed(param.help) in flat, f"{param.name}: help lost words"
        default = _expected_default(param)
        if default is not None:
            assert _squashed(f"[default: {default}]") in flat, f"{param.name}: default {default!r} not shown"


def test_bracketed_help_text_survives() -> None:
    """The texts Rich markup used to swallow (issue: help loses its own text)."""
    profile = _squashed(_help(["profile"], 80))
    assert _squashed("[default: (16,64,128, plus real with --data)]") in profile
    assert _squashed("Budgets TOML ([[budget]] tables)") in profile
    assert _squashed("[default: (../shared/data/glue/SST-2 when present)]") in _squashed(_help(["demo"], 80))
    assert _squashed("hf:NAME[:CONFIG]") in _squashed(_help(["export"], 80))
