"""``codir-edge profile``: on-device latency, memory, size and accuracy, gated by budgets. Its options
come from ``profile/options.py``; this file prints the table and writes the reports.

Exit codes: 0 every budget holds, 1 a budget failed, 2 bad usage or input. Nothing here imports
torch or transformers (a PyTorch-folder target is measured in its own worker process).
"""

from __future__ import annotations

import os
import sys

import typer

from codir_edge.cli.generate import Args, command
from codir_edge.cli.options import write_json, write_report
from codir_edge.core.errors import InputError
from codir_edge.profile.options import PROFILE


@command(PROFILE)
def profile(args: Args) -> None:
    """Measure latency percentiles, cold start, memory, size and accuracy of each TARGET on this
    machine or on devices over SSH, each configuration in a fresh process, and check them against
    --budgets. Exit 0: every budget holds; 1: a budget failed; 2: bad input, or a device could not
    be measured (the others are still reported)."""
    from rich.console import Console

    from codir_edge.core.progress import stage_progress
    from codir_edge.profile.report import print_table
    from codir_edge.profile.run import run_profile

    config = _config(args)
    with stage_progress(not args.quiet) as progress:
        report = run_profile(args.targets, config, progress)
    wide = sys.stdout.isatty() or "COLUMNS" in os.environ  # else a CI log, which is not 80 wide
    print_table(report, Console(width=None if wide else 200))
    for name, sent in report.uploaded_bytes.items():
        if name in report.devices and name != "local":
            typer.echo(f"{name}: uploaded {sent / 1e6:.2f} MB" if sent else f"{name}: uploaded nothing (cache hit)")
    _write_reports(args, config, report)
    _exit(report)


def _config(args: Args):
    """The config from the parsed options: budgets and devices read from their files, the data spec,
    and the sweep's defaults that depend on other options."""
    from codir_edge.core.machine import usable_cpus
    from codir_edge.data.options import data_spec
    from codir_edge.devices.spec import select_devices
    from codir_edge.profile.budgets import read_budgets
    from codir_edge.profile.config import SEQ_LENS, ProfileConfig

    budgets = tuple(read_budgets(args.budgets)) if args.budgets is not None else ()
    chosen = select_devices(args.devices, args.device)
    # CPU ids must be ones this process may run on; a remote device's are checked after its preflight
    if args.cpus is not None and all(d.is_local for d in chosen) and any(c not in usable_cpus() for c in args.cpus):
        listed = ",".join(map(str, args.cpus))
        raise InputError(f"--cpus '{listed}' names CPUs this process cannot use (usable: {usable_cpus()})")
    sweep = ("threads", "batch_sizes", "seq_lens")
    return args.config(
        ProfileConfig,
        seq_lens=args.seq_lens or SEQ_LENS + (("real",) if args.data is not None else ()),
        data=data_spec(args) if args.data is not None else None,
        budgets=budgets,
        devices=tuple(chosen),
        sweep_given=args.budgets is None or any(args.given(name) for name in sweep),
    )


def _write_reports(args: Args, config, report) -> None:
    """--json, --junit, --markdown and --plot, each written atomically."""
    from dataclasses import asdict

    from codir_edge.profile.report import to_json, to_junit, to_markdown

    config_dict = asdict(config)
    config_dict["budgets"] = [asdict(b) for b in config.budgets]
    config_dict["devices"] = [{**asdict(d), "address": d.address} for d in config.devices]
    write_json(args.json_path, to_json(report, config_dict))
    if args.junit is not None:
        write_report(args.junit, to_junit(report), "--junit")
    if args.markdown is not None:
        write_report(args.markdown, to_markdown(report), "--markdown")
    pictures = []
    if args.plot is not None:
        from codir_edge.profile.plot import write_plot

        pictures = write_plot(report, args.plot)
    written = [str(path) for path in (args.json_path, args.junit, args.markdown, *pictures) if path is not None]
    if written:
        typer.echo(f"reports: {', '.join(written)}")


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
