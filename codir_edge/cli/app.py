"""The ``codir-edge`` command. Commands import their stage lazily: ``--help`` and ``--version`` load no
torch, transformers or onnxruntime, and ``profile`` must run where only onnxruntime and numpy exist."""

from __future__ import annotations

from typing import Annotated

import typer

from codir_edge import __version__
from codir_edge.cli.compress import compress
from codir_edge.cli.errors import set_debug
from codir_edge.cli.evaluate import evaluate
from codir_edge.cli.export import export, verify
from codir_edge.cli.finetune import finetune
from codir_edge.cli.help import WIDEST, SectionedCommand
from codir_edge.cli.pipeline import demo, pipeline
from codir_edge.cli.profile import profile
from codir_edge.core.notes import forget_notes

app = typer.Typer(
    name="codir-edge",
    help="Turn a fine-tuned BERT teacher into a benchmarked, mobile-ready student: finetune, compress "
    "(CoDIR), export (ONNX bundle), profile (latency budgets).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": WIDEST},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"codir-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")] = False,
) -> None:
    set_debug(debug)
    forget_notes()


app.command("finetune", cls=SectionedCommand)(finetune)
app.command("compress", cls=SectionedCommand)(compress)
app.command("evaluate", cls=SectionedCommand)(evaluate)
app.command("export", cls=SectionedCommand)(export)
app.command("verify", cls=SectionedCommand)(verify)
app.command("profile", cls=SectionedCommand)(profile)
app.command("pipeline", cls=SectionedCommand)(pipeline)
app.command("demo", cls=SectionedCommand)(demo)


def main() -> None:
    app()
