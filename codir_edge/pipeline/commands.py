"""What ``codir-edge pipeline`` and ``codir-edge demo`` take, declared as the stages declare theirs
(``core/settings.py``), in the order their help lists them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.command_options import OutputOptions
from codir_edge.core.settings import CommandSpec, like, setting
from codir_edge.pipeline.demo import DemoSettings
from codir_edge.pipeline.options import STAGES


@dataclass(frozen=True, kw_only=True)
class FromStage:
    from_stage: str | None = setting(
        None, help="Run this stage and every later one even if unchanged.", flags=("--from",), choices=STAGES,
        show_default=False,
    )  # fmt: skip
    quiet: bool = like(OutputOptions, "quiet")


@dataclass(frozen=True, kw_only=True)
class PipelineInputs(FromStage):
    file: Path = setting(
        help="Pipeline TOML: a pipeline table of defaults, then finetune, compress, export and profile tables.",
        argument=True,
        metavar="FILE",
    )
    dry_run: bool = setting(False, help="Say which stages would run and why; run nothing.", flags=("--dry-run",))


@dataclass(frozen=True, kw_only=True)
class DemoInputs(FromStage):
    data: str | None = setting(
        None, help="SST-2 folder or file.", flags=("--data", "-d"),
        show_default="../shared/data/glue/SST-2 when present",
    )  # fmt: skip
    out: Path = setting(
        Path("runs/demo"), help="Folder for the pipeline file and every artifact.", flags=("--out", "-o")
    )


PIPELINE = CommandSpec((PipelineInputs,), order=("file", "from_stage", "dry_run", "quiet"))
DEMO = CommandSpec(
    (DemoInputs, DemoSettings),
    order=("data", "out", "teacher_samples", "student_samples", "runs", "device", "from_stage", "quiet"),
)
