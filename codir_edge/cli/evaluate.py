"""``codir-edge evaluate``: the task metric of a model on a split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codir_edge.cli.errors import handle_errors
from codir_edge.cli.options import (
    DataOpt,
    DeviceOpt,
    JsonOpt,
    LabelColumnOpt,
    MaxLengthOpt,
    SeedOpt,
    TaskOpt,
    TextColumnOpt,
    TextPairColumnOpt,
    write_json,
)


@handle_errors
def evaluate(
    model: Annotated[
        Path,
        typer.Argument(
            metavar="MODEL",
            help="A fine-tuned model folder (from finetune or compress, scored in PyTorch), a bundle from export "
            "(each variant scored in onnxruntime) or one .onnx/.ort file with tokenizer.json beside it.",
        ),
    ],
    task: TaskOpt,
    data: DataOpt,
    split: Annotated[str, typer.Option(help="Which split to score: dev or train.")] = "dev",
    text_column: TextColumnOpt = None,
    text_pair_column: TextPairColumnOpt = None,
    label_column: LabelColumnOpt = None,
    max_length: MaxLengthOpt = 128,
    batch_size: Annotated[int, typer.Option(help="Examples per inference batch.")] = 128,
    max_samples: Annotated[int | None, typer.Option(help="Score a seeded random subset of this size.")] = None,
    seed: SeedOpt = 42,
    device: DeviceOpt = "auto",
    json_path: JsonOpt = None,
) -> None:
    """Score MODEL on a task split with the task's metrics (accuracy, F1, Matthews, Pearson/Spearman).

    ONNX models run on this machine's CPU with every core (--device applies to PyTorch folders). The
    --json file holds one report, or for a bundle {"bundle", "task", "split", "variants": [reports]}.
    """
    from codir_edge.data import DataSpec
    from codir_edge.evaluate import run_evaluate
    from codir_edge.models.hub_ids import resolve_model_dir

    if model.suffix not in (".onnx", ".ort"):  # a missing file.onnx is not a hub id to fetch
        model = resolve_model_dir(model, "MODEL")
    spec = DataSpec(data, text_column, text_pair_column, label_column)
    reports = run_evaluate(
        model,
        task,
        spec,
        split,
        max_length=max_length,
        batch_size=batch_size,
        max_samples=max_samples,
        device=getattr(device, "value", device),
        seed=seed,
    )
    for report in reports:
        figures = "  ".join(f"{name} {value:.4f}" for name, value in report.metrics.items())
        name = f"{report.variant:<6} " if report.variant else ""
        typer.echo(f"{name}{report.task} {report.split} ({report.examples} examples, {report.runtime}): {figures}")
    first = reports[0]
    if first.variant is None:
        write_json(json_path, first.to_dict())
    else:
        variants = [r.to_dict() for r in reports]
        write_json(json_path, {"bundle": str(model), "task": first.task, "split": first.split, "variants": variants})
    if json_path is not None:
        typer.echo(f"report: {json_path}")
