"""A setting declared once, on its config field, is a flag with its help, type, choices and section.

A toy config stands in for a stage's: adding a field with ``setting()`` is all a new option takes,
and the generated command parses, validates and builds the config from it. The real commands' help
is held unchanged by ``test_cli_help.py``; this file holds the generator to its contract.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from codir_edge.cli.generate import Args, command
from codir_edge.cli.help import SectionedCommand
from codir_edge.core.errors import InputError
from codir_edge.core.settings import DATA, TRAINING, CommandSpec, int_list, like, options_of, setting


def _threads(value: str | None) -> tuple[int, ...]:
    return int_list(value, "--threads") or ()


@dataclass(frozen=True, kw_only=True)
class ToyConfig:
    epochs: int = setting(3, help="Passes over the training set.", panel=TRAINING)
    pooling: str = setting("mean", help="How token vectors become one.", choices=("mean", "cls"), panel=TRAINING)
    fused: bool = setting(True, help="Use fused kernels.")
    threads: tuple[int, ...] = setting((), help="Thread counts, e.g. 1,4.", cli_type=str | None, cli_default=None,
                                       parse=_threads, show_default="all cores")  # fmt: skip
    task: str = setting(help="Task name.", panel=DATA, flags=("--task", "-t"))


@dataclass(frozen=True, kw_only=True)
class OtherConfig:
    epochs: int = like(ToyConfig, "epochs", 5, help="Passes, here.")


SPEC = CommandSpec((ToyConfig,), order=("task", "epochs"))


def _app(spec: CommandSpec = SPEC) -> tuple[typer.Typer, list]:
    seen: list = []
    app = typer.Typer()

    @command(spec)
    def toy(args: Args) -> None:
        """A toy command."""
        seen.append((args.config(ToyConfig), args.given("epochs")))

    app.command("toy", cls=SectionedCommand)(toy)
    app.command("other")(lambda: None)  # two commands, so "toy" is a subcommand as in the real app
    return app, seen


def _invoke(*args: str):
    app, seen = _app()
    return CliRunner().invoke(app, ["toy", *args], terminal_width=200), seen


def test_a_declared_field_becomes_a_flag_with_its_help_default_and_section():
    result, _ = _invoke("--help")
    assert result.exit_code == 0
    text = re.sub(r"\s+", " ", result.output.replace("│", " "))
    assert "--epochs <int> Passes over the training set. [default: 3]" in text
    assert "--fused --no-fused <bool> Use fused kernels. [default: fused]" in text
    assert "[default: (all cores)]" in text and "<mean|cls>" in text and "--task -t <str> Task name. [required]" in text
    sections = [line.strip(" ╭─╮") for line in result.output.splitlines() if line.startswith("╭")]
    assert sections.index("Data") < sections.index("Training")


def test_values_are_parsed_into_the_config_and_given_is_known():
    result, seen = _invoke("-t", "sst2", "--pooling", "cls", "--no-fused", "--threads", "1,4")
    assert result.exit_code == 0, result.output
    assert seen == [(ToyConfig(pooling="cls", fused=False, threads=(1, 4), task="sst2"), False)]
    result, seen = _invoke("--task", "sst2", "--epochs", "3")
    assert seen == [(ToyConfig(task="sst2"), False)]  # the default, typed: not a choice the user made
    result, seen = _invoke("--task", "sst2", "--epochs", "4")
    assert seen[0][1] is True


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--task", "sst2", "--pooling", "max"], "'max' is not one of"),
        (["--task", "sst2", "--threads", "1,x"], "--threads '1,x' must be comma-separated integers"),
        (["--pooling", "cls"], "Missing option '--task'"),
    ],
)
def test_bad_values_are_refused_before_the_body_runs(args, expected):
    result, seen = _invoke(*args)
    assert result.exit_code == 2 and not seen
    assert expected in re.sub(r"\s+", " ", result.output.replace("│", " ")).replace("' .", "'.")


def test_like_reuses_a_declaration_with_changes_and_a_clash_is_caught():
    toy, other = options_of(ToyConfig)["epochs"], options_of(OtherConfig)["epochs"]
    assert (other.default, other.flag.help, other.flag.panel) == (5, "Passes, here.", TRAINING)
    assert toy.flag.help == "Passes over the training set."
    with pytest.raises(AssertionError, match="epochs is declared twice"):
        CommandSpec((ToyConfig, OtherConfig)).options()
    with pytest.raises(AssertionError, match="undeclared"):
        CommandSpec((ToyConfig,), order=("nothing",)).options()


@given(st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=8))
def test_int_lists_round_trip(values):
    assert int_list(",".join(map(str, values)), "--threads") == tuple(values)


@given(st.text(alphabet="0123456789,-x ", max_size=12))
def test_int_lists_parse_or_refuse_in_one_line(text):
    try:
        parsed = int_list(text, "--threads")
    except InputError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("--threads")
    else:
        assert parsed and all(v >= 1 for v in parsed)


@pytest.mark.parametrize("stage", ["finetune", "compress", "export", "profile"])
def test_a_pipeline_table_takes_exactly_the_commands_flags(stage):
    """The pipeline reads the stage's declarations, not the CLI: both must still agree on every name."""
    from typer.main import get_command

    from codir_edge.cli.app import app
    from codir_edge.pipeline.options import stage_options

    params = get_command(app).commands[stage].params
    flags = {o for p in params for o in p.opts if o.startswith("--")} - {"--help"}
    flags |= {o for p in params for o in p.secondary_opts}
    declared = {spec.flag for spec in stage_options(stage).values() if spec.flag}
    declared |= {spec.off_flag for spec in stage_options(stage).values() if spec.off_flag}
    assert declared == flags
