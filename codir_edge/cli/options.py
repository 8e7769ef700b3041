"""Options shared by several commands, declared once so their names and help never drift apart."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from codir_edge.core.errors import InputError

DATA_PANEL = "Data"
TRAIN_PANEL = "Training"
RUNTIME_PANEL = "Runtime"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


TaskOpt = Annotated[
    str,
    typer.Option(
        "--task",
        "-t",
        help="GLUE task (sst2, mrpc, rte, cola, stsb, qnli, qqp, "
        "mnli, wnli) or 'classification' / 'regression' for custom data.",
        rich_help_panel=DATA_PANEL,
    ),
]
DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        help="A GLUE folder (task folder or the glue root), a "
        ".tsv/.csv/.jsonl file, a save_to_disk folder, or hf:NAME[:CONFIG].",
        rich_help_panel=DATA_PANEL,
    ),
]
TextColumnOpt = Annotated[
    str | None,
    typer.Option(
        help="Column (or JSON field) holding the text; a number for headerless files.", rich_help_panel=DATA_PANEL
    ),
]
TextPairColumnOpt = Annotated[
    str | None, typer.Option(help="Column holding the second text of pair tasks.", rich_help_panel=DATA_PANEL)
]
LabelColumnOpt = Annotated[
    str | None, typer.Option(help="Column holding the label or regression target.", rich_help_panel=DATA_PANEL)
]
LabelsOpt = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated label order for custom classification data (default: sorted labels of the train split).",
        rich_help_panel=DATA_PANEL,
    ),
]
MaxLengthOpt = Annotated[int, typer.Option(help="Truncate inputs to this many tokens.", rich_help_panel=DATA_PANEL)]
SeedOpt = Annotated[
    int, typer.Option(help="Random seed for initialisation, data order and subsampling.", rich_help_panel=TRAIN_PANEL)
]
DeviceOpt = Annotated[
    Device, typer.Option(help="Where to run: auto picks CUDA when a GPU is visible.", rich_help_panel=RUNTIME_PANEL)
]
PrecisionOpt = Annotated[
    Precision,
    typer.Option(
        help="auto: bf16 autocast on GPUs with bf16 (fp16 with loss scaling otherwise), fp32 on CPU.",
        rich_help_panel=RUNTIME_PANEL,
    ),
]
OutOpt = Annotated[
    Path,
    typer.Option(
        "--out", "-o", help="Output folder; written atomically (nothing appears there unless the command succeeds)."
    ),
]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace an existing --out folder once the new one is complete.")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the result as JSON to this file.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
TrustRemoteCodeOpt = Annotated[
    bool,
    typer.Option(
        help="Allow model folders to run their own Python code (off by default: only for folders you trust).",
        rich_help_panel=RUNTIME_PANEL,
    ),
]


EpochsOpt = Annotated[int, typer.Option(help="Passes over the training set.", rich_help_panel=TRAIN_PANEL)]
LrOpt = Annotated[
    float, typer.Option(help="Peak learning rate (AdamW, linear warm-up and decay).", rich_help_panel=TRAIN_PANEL)
]
MaxTrainSamplesOpt = Annotated[
    int | None, typer.Option(help="Train on a seeded random subset of this size.", rich_help_panel=TRAIN_PANEL)
]
MaxEvalSamplesOpt = Annotated[
    int | None, typer.Option(help="Evaluate on a seeded random subset of this size.", rich_help_panel=TRAIN_PANEL)
]
EvalDataOpt = Annotated[
    str | None, typer.Option(help="Dev data when --data is a single file (same formats).", rich_help_panel=DATA_PANEL)
]


def train_data_specs(
    data: str,
    eval_data: str | None,
    text_column: str | None,
    text_pair_column: str | None,
    label_column: str | None,
    labels: str | None,
):
    """``--data`` and ``--eval-data`` of a training command as DataSpecs sharing the column options."""
    from codir_edge.data import DataSpec

    columns = {
        "text_column": text_column,
        "text_pair_column": text_pair_column,
        "label_column": label_column,
        "labels": parse_labels(labels),
    }
    return DataSpec(data, **columns), DataSpec(eval_data, **columns) if eval_data else None


def parse_labels(labels: str | None) -> tuple[str, ...] | None:
    if labels is None:
        return None
    parts = tuple(part.strip() for part in labels.split(","))
    from codir_edge.core.errors import InputError

    if not all(parts) or len(set(parts)) != len(parts):
        raise InputError(f"--labels '{labels}' must list distinct, non-empty labels separated by commas")
    return parts


def write_json(path: Path | None, payload: dict) -> None:
    """Write a JSON report atomically (a CI job reading it never sees half a file)."""
    if path is None:
        return
    import json

    from codir_edge.core.atomic import atomic_write_text
    from codir_edge.core.errors import InputError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(payload, indent=2, default=str) + "\n")
    except OSError as exc:
        raise InputError(f"cannot write --json {path} ({exc.strerror}): choose a writable path") from exc


def command_line(ctx: typer.Context) -> str:
    """The running command rebuilt from its parsed parameters, so an artifact records a command that
    reproduces it even when it was started from Python or a test runner (where argv is not ours)."""
    import shlex

    words = ["codir-edge", ctx.info_name or ""]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or param.name == "json_path":
            continue
        value = value.value if isinstance(value, Enum) else value
        if param.param_type_name == "argument":
            words.append(str(value))
        elif isinstance(value, bool):
            flags = param.opts if value else param.secondary_opts
            if flags and value != param.default:
                words.append(flags[0])
        elif isinstance(value, (list, tuple)):
            for item in value:
                words += [param.opts[0], str(item)]
        else:
            words += [param.opts[0], str(value)]
    return shlex.join(words)


CHECKPOINT_PANEL = "Checkpoints"
ResumeOpt = Annotated[
    bool,
    typer.Option(
        help="Continue an interrupted run from its last checkpoint (same command otherwise).",
        rich_help_panel=CHECKPOINT_PANEL,
    ),
]
CheckpointEveryOpt = Annotated[
    int,
    typer.Option(
        help="Save a checkpoint every this many steps (and at each epoch end); 0: epoch ends only.",
        rich_help_panel=CHECKPOINT_PANEL,
    ),
]


def checkpoint_steps(every: int) -> int | None:
    """``--checkpoint-every`` as the configs hold it: None for epoch ends only."""
    from codir_edge.core.errors import InputError

    if every < 0:
        raise InputError(f"--checkpoint-every must not be negative, got {every}: pass 0 or more steps")
    return every or None


def int_list(value: str | None, option: str, minimum: int = 1) -> tuple[int, ...] | None:
    """'1,2' -> (1, 2); None stays None (the option was not given)."""
    if value is None:
        return None
    try:
        items = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise InputError(f"{option} '{value}' must be comma-separated integers, like 1,2") from None
    if not items or any(i < minimum for i in items):
        raise InputError(f"{option} '{value}' must list integers of at least {minimum}, like 1,2")
    return items


def seq_lens_list(value: str | None, option: str) -> tuple[int | str, ...] | None:
    """'16,128,real' -> (16, 128, 'real'); None stays None."""
    if value is None:
        return None
    items: list[int | str] = []
    for part in (p.strip() for p in value.split(",") if p.strip()):
        if part == "real":
            items.append(part)
        elif part.lstrip("-").isdigit() and int(part) >= 1:
            items.append(int(part))
        else:
            raise InputError(f"{option} '{value}' must list positive integers or 'real', like 16,128,real")
    return tuple(items) or None
