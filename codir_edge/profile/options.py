"""What ``codir-edge profile`` takes: :class:`ProfileConfig` and the command's own inputs (targets, the
devices and budgets files, the reports), in the order its help lists them. The CLI and the pipeline
both read this declaration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.command_options import OutputOptions
from codir_edge.core.settings import DATA, CommandSpec, like, setting
from codir_edge.data.options import ColumnOptions
from codir_edge.profile.config import DEVICES, REPORTS, ProfileConfig


@dataclass(frozen=True, kw_only=True)
class ProfileInputs(ColumnOptions):
    targets: list[Path] = setting(
        help="ONNX files, bundle folders (every variant), or Hugging Face folders (PyTorch baseline, needs torch).",
        argument=True,
        metavar="TARGET",
    )
    devices: Path | None = setting(
        None,
        help="Devices TOML, one device table each (name, host, user, port, identity_file, python, workdir, env); "
        "measures on every device in it unless --device picks some.",
        panel=DEVICES,
    )
    device: list[str] | None = setting(
        None,
        help="Measure on this device (repeatable): a name from --devices, ssh://user@host:port, or local (this "
        "machine, the default).",
        panel=DEVICES,
        metavar="NAME",
    )
    data: str | None = setting(
        None, help="Task data; its dev split gives real inputs and accuracy.", flags=("--data", "-d"), panel=DATA
    )
    budgets: Path | None = setting(
        None, help="Budgets TOML ([[budget]] tables); exit 1 when one fails.", panel=REPORTS
    )
    json_path: Path | None = like(OutputOptions, "json_path", help="Write every figure as JSON.", panel=REPORTS)
    junit: Path | None = setting(None, help="Write JUnit XML, one test case per budget.", panel=REPORTS)
    markdown: Path | None = setting(None, help="Write a Markdown summary (CI job summary).", panel=REPORTS)
    plot: Path | None = setting(
        None,
        help="Write a PNG of latency against sequence length for every configuration, and beside it "
        "NAME-accuracy.png (accuracy against p95, Pareto front) when accuracy is known.",
        panel=REPORTS,
    )
    quiet: bool = like(OutputOptions, "quiet", help="No progress bar.")


PROFILE = CommandSpec(
    (ProfileInputs, ProfileConfig),
    order=(
        "targets", "threads", "batch_sizes", "seq_lens", "runs", "duration_s", "warmup", "provider", "cpus",
        "repeat", "timeout_s", "devices", "device", "clean_device", "task", "data", "text_column",
        "text_pair_column", "label_column", "max_eval_samples", "budgets", "json_path", "keep_samples", "junit",
        "markdown", "plot", "quiet",
    ),
)  # fmt: skip
