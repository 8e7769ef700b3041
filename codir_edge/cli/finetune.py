"""``codir-edge finetune``: declares options and calls :func:`codir_edge.finetune.trainer.run_finetune`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from codir_edge.cli.errors import handle_errors
from codir_edge.cli.options import (
    TRAIN_PANEL,
    DataOpt,
    DeviceOpt,
    JsonOpt,
    LabelColumnOpt,
    LabelsOpt,
    MaxLengthOpt,
    OutOpt,
    OverwriteOpt,
    PrecisionOpt,
    QuietOpt,
    SeedOpt,
    TaskOpt,
    TextColumnOpt,
    TextPairColumnOpt,
    TrustRemoteCodeOpt,
    parse_labels,
    write_json,
)
from codir_edge.finetune.config import FinetuneConfig  # light: the defaults live there, once


@handle_errors
def finetune(
    task: TaskOpt,
    data: DataOpt,
    out: OutOpt,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", "-m", help="BERT-family model folder to fine-tune (default: the bundled all-MiniLM-L6-v2)."
        ),
    ] = None,
    eval_data: Annotated[
        str | None, typer.Option(help="Dev data when --data is a single file (same formats).", rich_help_panel="Data")
    ] = None,
    text_column: TextColumnOpt = None,
    text_pair_column: TextPairColumnOpt = None,
    label_column: LabelColumnOpt = None,
    labels: LabelsOpt = None,
    epochs: Annotated[
        int, typer.Option(help="Passes over the training set.", rich_help_panel=TRAIN_PANEL)
    ] = FinetuneConfig.epochs,
    lr: Annotated[
        float, typer.Option(help="Peak learning rate (AdamW, linear warm-up and decay).", rich_help_panel=TRAIN_PANEL)
    ] = FinetuneConfig.lr,
    batch_size: Annotated[
        int, typer.Option(help="Examples per optimizer step.", rich_help_panel=TRAIN_PANEL)
    ] = FinetuneConfig.batch_size,
    max_length: MaxLengthOpt = FinetuneConfig.max_length,
    max_train_samples: Annotated[
        int | None, typer.Option(help="Train on a seeded random subset of this size.", rich_help_panel=TRAIN_PANEL)
    ] = None,
    max_eval_samples: Annotated[
        int | None, typer.Option(help="Evaluate on a seeded random subset of this size.", rich_help_panel=TRAIN_PANEL)
    ] = None,
    seed: SeedOpt = FinetuneConfig.seed,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    overwrite: OverwriteOpt = False,
    json_path: JsonOpt = None,
    quiet: QuietOpt = False,
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """Fine-tune a BERT-family checkpoint as a sequence classifier: the teacher for `compress`.

    Writes a Hugging Face folder (safetensors weights, tokenizer, config with labels) holding the
    best epoch by dev metric, plus metrics.json and train_log.jsonl.
    """
    from codir_edge.data import DataSpec
    from codir_edge.finetune.trainer import run_finetune

    columns = {
        "text_column": text_column,
        "text_pair_column": text_pair_column,
        "label_column": label_column,
        "labels": parse_labels(labels),
    }
    config = FinetuneConfig(
        task=task,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        max_length=max_length,
        max_train_samples=max_train_samples,
        max_eval_samples=max_eval_samples,
        seed=seed,
        device=getattr(device, "value", device),
        precision=getattr(precision, "value", precision),
        trust_remote_code=trust_remote_code,
    )
    report = run_finetune(
        model,
        DataSpec(data, **columns),
        out,
        config,
        eval_data=DataSpec(eval_data, **columns) if eval_data else None,
        overwrite=overwrite,
        show_progress=not quiet,
    )
    typer.echo(
        f"{report.task}: dev {report.metric} {report.best_score:.4f} (epoch {report.best_epoch}); "
        f"{report.train_examples} examples at {report.train_examples_per_s:.0f}/s on {report.device} "
        f"{report.precision}; {report.wall_time_s:.0f} s; model in {report.out_dir}"
    )
    write_json(json_path, asdict(report))
