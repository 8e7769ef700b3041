"""``codir-edge pipeline`` and ``codir-edge demo``: the chain from one file, and the chain on SST-2.

Exit codes as for ``profile``: 0 every stage succeeded and every budget holds, 1 a check or budget
failed, 2 bad usage or input, 130 interrupted. The failing stage has already printed its own
one-line error; the pipeline adds which stage it was and that finished stages will be skipped.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from codir_edge.cli.errors import debug_enabled, handle_errors
from codir_edge.cli.options import DeviceOpt, QuietOpt
from codir_edge.pipeline.demo import DemoSettings  # light: the defaults live there, once
from codir_edge.pipeline.options import STAGES

StageName = Enum("StageName", {name: name for name in STAGES}, type=str)  # the choices of --from


FromOpt = Annotated[
    StageName | None,
    typer.Option("--from", help="Run this stage and every later one even if unchanged.", show_default=False),
]


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


@handle_errors
def pipeline(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="Pipeline TOML: a pipeline table of defaults, then finetune, compress, export and profile tables.",
        ),
    ],
    from_stage: FromOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say which stages would run and why; run nothing.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Run finetune -> compress -> export -> profile as one file describes them.

    Each table takes the options of its command (student-layers = 3, max-length = 64); the
    pipeline table sets `work` (default runs/NAME beside the file) and defaults for every stage
    that takes them (task, data).
    "@stage" means that stage's output. A stage is skipped when its output is intact and its
    settings and inputs are unchanged since it last succeeded; --from STAGE forces it and the rest.
    """
    from codir_edge.pipeline.run import run_pipeline
    from codir_edge.pipeline.spec import read_pipeline

    spec = read_pipeline(file)
    report = run_pipeline(
        spec,
        from_stage=from_stage.value if from_stage else None,
        dry_run=dry_run,
        debug=debug_enabled(),
        quiet=quiet,
        echo=typer.echo,
    )
    _finish(report)


@handle_errors
def demo(
    data: Annotated[
        str | None,
        typer.Option(
            "--data", "-d", help="SST-2 folder or file.", show_default="../shared/data/glue/SST-2 when present"
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the pipeline file and every artifact.")] = Path(
        "runs/demo"
    ),
    teacher_samples: Annotated[
        int, typer.Option(help="SST-2 training sentences for the teacher.")
    ] = DemoSettings.teacher_samples,
    student_samples: Annotated[
        int, typer.Option(help="Training sentences for distilling the student.")
    ] = DemoSettings.student_samples,
    runs: Annotated[int, typer.Option(help="Timed runs per model in the latency profile.")] = DemoSettings.runs,
    device: DeviceOpt = "auto",
    from_stage: FromOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune the bundled all-MiniLM-L6-v2 on SST-2, distil a 3-layer CoDIR student, export it
    (fp32, INT8), profile all three at 1 thread and batch 1, and print the comparison.

    14.0 minutes on this project's 2-core machine with nothing else running
    (benchmarks/results/demo.json in the repository). Writes OUT/pipeline.toml and runs it, so a
    re-run skips finished stages and the file can seed your own pipeline.
    """
    from rich.console import Console
    from rich.table import Table

    from codir_edge.pipeline.demo import demo_rows, find_data, write_demo_pipeline
    from codir_edge.pipeline.run import run_pipeline
    from codir_edge.pipeline.spec import read_pipeline

    settings = DemoSettings(teacher_samples, student_samples, runs, getattr(device, "value", device))
    toml = write_demo_pipeline(out, find_data(data), settings)
    typer.echo(f"demo pipeline: {toml}")
    report = run_pipeline(
        read_pipeline(toml),
        from_stage=from_stage.value if from_stage else None,
        debug=debug_enabled(),
        quiet=quiet,
        echo=typer.echo,
    )
    _finish(report)
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
