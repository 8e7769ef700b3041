"""``codir-edge pipeline`` and ``codir-edge demo``: the chain from one file, and the chain on SST-2.
Their options come from ``pipeline/commands.py``.

Exit codes as for ``profile``: 0 every stage succeeded and every budget holds, 1 a check or budget
failed, 2 bad usage or input, 130 interrupted. The failing stage has already printed its own
one-line error; the pipeline adds which stage it was and that finished stages will be skipped.
"""

from __future__ import annotations

import typer

from codir_edge.cli.errors import debug_enabled
from codir_edge.cli.generate import Args, command
from codir_edge.pipeline.commands import DEMO, PIPELINE


def _finish(report) -> None:
    failed = next((s for s in report.stages if s.exit_code), None)
    if failed is None:
        return
    what = "budgets failed" if failed.budgets_failed else "failed"
    typer.echo(
        f"error: stage {failed.name} {what} (exit {failed.exit_code}); after fixing it, re-run the same command: "
        "finished stages are skipped",
        err=True,
    )
    raise typer.Exit(failed.exit_code)


@command(PIPELINE)
def pipeline(args: Args) -> None:
    """Run finetune -> compress -> export -> profile as one file describes them.

    Each table takes the options of its command (student-layers = 3, max-length = 64); the
    pipeline table sets `work` (default runs/NAME beside the file) and defaults for every stage
    that takes them (task, data).
    "@stage" means that stage's output. A stage is skipped when its output is intact and its
    settings and inputs are unchanged since it last succeeded; --from STAGE forces it and the rest.
    """
    from codir_edge.pipeline.run import run_pipeline
    from codir_edge.pipeline.spec import read_pipeline

    spec = read_pipeline(args.file)
    report = run_pipeline(
        spec, from_stage=args.from_stage, dry_run=args.dry_run, debug=debug_enabled(), quiet=args.quiet,
        echo=typer.echo,
    )  # fmt: skip
    _finish(report)


@command(DEMO)
def demo(args: Args) -> None:
    """Fine-tune the bundled all-MiniLM-L6-v2 on SST-2, distil a 3-layer CoDIR student, export it
    (fp32, INT8), profile all three at 1 thread and batch 1, and print the comparison.

    14.0 minutes on this project's 2-core machine with nothing else running
    (benchmarks/results/demo.json in the repository). Writes OUT/pipeline.toml and runs it, so a
    re-run skips finished stages and the file can seed your own pipeline.
    """
    from codir_edge.pipeline.demo import DemoSettings, find_data, write_demo_pipeline
    from codir_edge.pipeline.run import run_pipeline
    from codir_edge.pipeline.spec import read_pipeline

    toml = write_demo_pipeline(args.out, find_data(args.data), args.config(DemoSettings))
    typer.echo(f"demo pipeline: {toml}")
    report = run_pipeline(
        read_pipeline(toml), from_stage=args.from_stage, debug=debug_enabled(), quiet=args.quiet, echo=typer.echo
    )
    _finish(report)
    _print_comparison(args.out)


def _print_comparison(out) -> None:
    """The teacher / fp32 / int8 table and the one-line verdict."""
    from rich.console import Console
    from rich.table import Table

    from codir_edge.pipeline.demo import demo_rows

    rows = demo_rows(out)
    table = Table(title="SST-2 dev, batch 1, 1 thread, real sentence lengths")
    for header in ("model", "runtime", "accuracy", "p50 ms", "p95 ms", "size MB", "artifact"):
        table.add_column(header, justify="right" if header.endswith(("ms", "MB", "accuracy")) else "left")
    for row in rows:
        table.add_row(
            row.model,
            row.runtime,
            f"{row.accuracy:.2%}" if row.accuracy is not None else "-",
            f"{row.p50_ms:.2f}" if row.p50_ms is not None else "-",
            f"{row.p95_ms:.2f}" if row.p95_ms is not None else "-",
            f"{row.size_mb:.1f}" if row.size_mb is not None else "-",
            row.artifact,
        )
    Console(width=200).print(table)
    teacher, _, int8 = rows
    if teacher.p50_ms and int8.p50_ms and teacher.size_mb and int8.size_mb:
        typer.echo(
            f"int8 student: {teacher.p50_ms / int8.p50_ms:.1f}x faster at p50 than the PyTorch teacher, "
            f"{teacher.size_mb / int8.size_mb:.1f}x smaller"
            + (
                f", {100 * (int8.accuracy - teacher.accuracy):+.2f} accuracy points"
                if teacher.accuracy is not None and int8.accuracy is not None
                else ""
            )
        )
