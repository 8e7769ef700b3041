"""``codir-edge profile``: on-device latency, memory, size and accuracy, gated by budgets.

Exit codes: 0 every budget holds, 1 a budget failed, 2 bad usage or input. Nothing here imports
torch or transformers (a PyTorch-folder target is measured in its own worker process).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from codir_edge.cli.errors import handle_errors
from codir_edge.cli.options import (
    DATA_PANEL,
    LabelColumnOpt,
    TextColumnOpt,
    TextPairColumnOpt,
    int_list,
    seq_lens_list,
    write_json,
)
from codir_edge.core.errors import InputError

SWEEP = "Sweep"
DEVICES = "Devices"
REPORTS = "Reports"


def _cpu_list(value: str | None, local_only: bool) -> tuple[int, ...] | None:
    """CPU ids start at 0; here they must be ones this process may run on (a remote device's are
    checked against its own preflight)."""
    items = int_list(value, "--cpus", minimum=0)
    if items is None or not local_only:
        return items
    from codir_edge.core.machine import usable_cpus

    if any(c not in usable_cpus() for c in items):
        raise InputError(f"--cpus '{value}' names CPUs this process cannot use (usable: {usable_cpus()})")
    return items


def _write_text(path: Path, text: str, option: str) -> None:
    from codir_edge.core.atomic import atomic_write_text

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    except OSError as exc:
        raise InputError(f"cannot write {option} {path} ({exc.strerror}): choose a writable path") from exc


@handle_errors
def profile(
    targets: Annotated[
        list[Path],
        typer.Argument(
            metavar="TARGET",
            help="ONNX files, bundle folders (every variant), or Hugging Face folders (PyTorch baseline, needs torch).",
        ),
    ],
    threads: Annotated[
        str | None, typer.Option(help="Intra-op thread counts, e.g. 1,2.", show_default="1,2", rich_help_panel=SWEEP)
    ] = None,
    batch_sizes: Annotated[
        str | None, typer.Option(help="Batch sizes, e.g. 1,8.", show_default="1,8", rich_help_panel=SWEEP)
    ] = None,
    seq_lens: Annotated[
        str | None,
        typer.Option(
            help="Sequence lengths, 'real' for real sentences from --data.",
            show_default="16,64,128, plus real with --data",
            rich_help_panel=SWEEP,
        ),
    ] = None,
    runs: Annotated[int, typer.Option(help="Timed runs per configuration.", rich_help_panel=SWEEP)] = 200,
    duration: Annotated[
        float | None,
        typer.Option(help="Time each configuration for this many seconds instead of --runs.", rich_help_panel=SWEEP),
    ] = None,
    warmup: Annotated[int, typer.Option(help="Untimed runs before timing.", rich_help_panel=SWEEP)] = 20,
    provider: Annotated[
        str,
        typer.Option(
            help="Execution provider: cpu, xnnpack, cuda, coreml, nnapi, ... or a full onnxruntime provider name.",
            rich_help_panel=SWEEP,
        ),
    ] = "cpu",
    cpus: Annotated[
        str | None, typer.Option(help="Pin each measurement to these CPU ids, e.g. 0 or 0,1.", rich_help_panel=SWEEP)
    ] = None,
    repeat: Annotated[
        int,
        typer.Option(
            help="Measure each configuration N times in fresh processes; budgets are judged on the median.",
            rich_help_panel=SWEEP,
        ),
    ] = 1,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds one configuration may take on a device before that device is given up.",
            rich_help_panel=SWEEP,
        ),
    ] = 600.0,
    devices: Annotated[
        Path | None,
        typer.Option(
            help="Devices TOML, one device table each (name, host, user, port, identity_file, python, workdir, "
            "env); measures on every device in it unless --device picks some.",
            rich_help_panel=DEVICES,
        ),
    ] = None,
    device: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME",
            help="Measure on this device (repeatable): a name from --devices, ssh://user@host:port, or local "
            "(this machine, the default).",
            rich_help_panel=DEVICES,
        ),
    ] = None,
    clean_device: Annotated[
        bool,
        typer.Option(help="Empty each device's cache of models and inputs after measuring.", rich_help_panel=DEVICES),
    ] = False,
    task: Annotated[
        str | None,
        typer.Option("--task", "-t", help="Task of --data (real inputs and accuracy).", rich_help_panel=DATA_PANEL),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data", "-d", help="Task data; its dev split gives real inputs and accuracy.", rich_help_panel=DATA_PANEL
        ),
    ] = None,
    text_column: TextColumnOpt = None,
    text_pair_column: TextPairColumnOpt = None,
    label_column: LabelColumnOpt = None,
    max_eval_samples: Annotated[
        int | None, typer.Option(help="Score accuracy on a seeded subset of this size.", rich_help_panel=DATA_PANEL)
    ] = None,
    budgets: Annotated[
        Path | None,
        typer.Option(help="Budgets TOML ([[budget]] tables); exit 1 when one fails.", rich_help_panel=REPORTS),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write every figure as JSON.", rich_help_panel=REPORTS)
    ] = None,
    raw_samples: Annotated[
        bool, typer.Option(help="Include every latency sample in the JSON.", rich_help_panel=REPORTS)
    ] = False,
    junit: Annotated[
        Path | None, typer.Option(help="Write JUnit XML, one test case per budget.", rich_help_panel=REPORTS)
    ] = None,
    markdown: Annotated[
        Path | None, typer.Option(help="Write a Markdown summary (CI job summary).", rich_help_panel=REPORTS)
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Write a PNG of latency against sequence length for every configuration, and beside it "
            "NAME-accuracy.png (accuracy against p95, Pareto front) when accuracy is known.",
            rich_help_panel=REPORTS,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Measure latency percentiles, cold start, memory, size and accuracy of each TARGET on this
    machine or on devices over SSH, each configuration in a fresh process, and check them against
    --budgets. Exit 0: every budget holds; 1: a budget failed; 2: bad input, or a device could not
    be measured (the others are still reported)."""
    from dataclasses import asdict

    from rich.console import Console

    from codir_edge.core.progress import stage_progress
    from codir_edge.data import DataSpec
    from codir_edge.devices.spec import select_devices
    from codir_edge.profile.budgets import read_budgets
    from codir_edge.profile.report import print_table, to_json, to_junit, to_markdown
    from codir_edge.profile.run import ProfileConfig, run_profile

    budget_list = tuple(read_budgets(budgets)) if budgets is not None else ()
    chosen = select_devices(devices, device)
    sweep_given = budgets is None or any(v is not None for v in (threads, batch_sizes, seq_lens))
    spec = DataSpec(data, text_column, text_pair_column, label_column) if data is not None else None
    default_seq = ProfileConfig.seq_lens + (("real",) if data is not None else ())
    config = ProfileConfig(
        threads=int_list(threads, "--threads") or ProfileConfig.threads,
        batch_sizes=int_list(batch_sizes, "--batch-sizes") or ProfileConfig.batch_sizes,
        seq_lens=seq_lens_list(seq_lens, "--seq-lens") or default_seq,
        runs=runs,
        duration_s=duration,
        warmup=warmup,
        provider=provider,
        cpus=_cpu_list(cpus, all(d.is_local for d in chosen)),
        repeat=repeat,
        task=task,
        data=spec,
        max_eval_samples=max_eval_samples,
        keep_samples=raw_samples,
        budgets=budget_list,
        sweep_given=sweep_given,
        devices=tuple(chosen),
        timeout_s=timeout,
        clean_device=clean_device,
    )
    with stage_progress(not quiet) as progress:
        report = run_profile(targets, config, progress)
    wide = sys.stdout.isatty() or "COLUMNS" in os.environ  # else a CI log, which is not 80 wide
    print_table(report, Console(width=None if wide else 200))
    for name, sent in report.uploaded_bytes.items():
        if name in report.devices and name != "local":
            typer.echo(f"{name}: uploaded {sent / 1e6:.2f} MB" if sent else f"{name}: uploaded nothing (cache hit)")
    config_dict = asdict(config)
    config_dict["budgets"] = [asdict(b) for b in budget_list]
    config_dict["devices"] = [{**asdict(d), "address": d.address} for d in config.devices]
    write_json(json_path, to_json(report, config_dict))
    if junit is not None:
        _write_text(junit, to_junit(report), "--junit")
    if markdown is not None:
        _write_text(markdown, to_markdown(report), "--markdown")
    pictures = []
    if plot is not None:
        from codir_edge.profile.plot import write_plot

        pictures = write_plot(report, plot)
    written = [str(path) for path in (json_path, junit, markdown, *pictures) if path is not None]
    if written:
        typer.echo(f"reports: {', '.join(written)}")
    _exit(report)


def _exit(report) -> None:
    """130 when interrupted, 2 when a device could not be measured, 1 when a budget failed."""
    from codir_edge.profile.report import budget_rows

    for message in report.failures.values():
        typer.echo(f"error: {message}", err=True)
    if report.interrupted:
        raise typer.Exit(130)
    if report.failures:
        raise typer.Exit(2)
    if not report.passed:
        rows = budget_rows(report)
        failed = sum(1 for row in rows if not row.passed)
        typer.echo(f"{failed} of {len(rows)} budget(s) failed", err=True)
        raise typer.Exit(1)
