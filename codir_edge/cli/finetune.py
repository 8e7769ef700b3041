"""``codir-edge finetune``: declares options and calls :func:`codir_edge.finetune.run.run_finetune`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from codir_edge.cli.errors import handle_errors
from codir_edge.cli.options import (
    TRAIN_PANEL,
    CheckpointEveryOpt,
    DataOpt,
    DeviceOpt,
    EpochsOpt,
    EvalDataOpt,
    JsonOpt,
    LabelColumnOpt,
    LabelsOpt,
    LrOpt,
    MaxEvalSamplesOpt,
    MaxLengthOpt,
    MaxTrainSamplesOpt,
    OutOpt,
    OverwriteOpt,
    PrecisionOpt,
    QuietOpt,
    ResumeOpt,
    SeedOpt,
    TaskOpt,
    TextColumnOpt,
    TextPairColumnOpt,
    TrustRemoteCodeOpt,
    checkpoint_steps,
    train_data_specs,
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
            "--model", "-m", help="Encoder model folder or hub id to fine-tune (default: the bundled all-MiniLM-L6-v2)."
        ),
    ] = None,
    eval_data: EvalDataOpt = None,
    text_column: TextColumnOpt = None,
    text_pair_column: TextPairColumnOpt = None,
    label_column: LabelColumnOpt = None,
    labels: LabelsOpt = None,
    epochs: EpochsOpt = FinetuneConfig.epochs,
    lr: LrOpt = FinetuneConfig.lr,
    batch_size: Annotated[
        int, typer.Option(help="Examples per optimizer step.", rich_help_panel=TRAIN_PANEL)
    ] = FinetuneConfig.batch_size,
    max_length: MaxLengthOpt = FinetuneConfig.max_length,
    max_train_samples: MaxTrainSamplesOpt = None,
    max_eval_samples: MaxEvalSamplesOpt = None,
    seed: SeedOpt = FinetuneConfig.seed,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
    checkpoint_every: CheckpointEveryOpt = FinetuneConfig.checkpoint_every,
    json_path: JsonOpt = None,
    quiet: QuietOpt = False,
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """Fine-tune an encoder checkpoint as a sequence classifier: the teacher for `compress`.

    Writes a Hugging Face folder (safetensors weights, tokenizer, config with labels) holding the
    best epoch by dev metric, plus metrics.json and train_log.jsonl. Ctrl-C saves a checkpoint that
    --resume continues from. Several GPUs or CPUs: torchrun --nproc-per-node N -m codir_edge finetune ...
    """
    from codir_edge.finetune.run import run_finetune
    from codir_edge.models.hub_ids import resolve_model_dir

    model = resolve_model_dir(model, "--model") if model is not None else None
    train_spec, eval_spec = train_data_specs(data, eval_data, text_column, text_pair_column, label_column, labels)
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
        checkpoint_every=checkpoint_steps(checkpoint_every),
        trust_remote_code=trust_remote_code,
    )
    report = run_finetune(
        model,
        train_spec,
        out,
        config,
        eval_data=eval_spec,
        overwrite=overwrite,
        show_progress=not quiet,
        resume=resume,
    )
    if report.rank != 0:
        return  # under torchrun, rank 0 speaks for the run
    typer.echo(
        f"{report.task}: dev {report.metric} {report.best_score:.4f} (epoch {report.best_epoch}); "
        f"{report.train_examples} examples at {report.train_examples_per_s:.0f}/s on {report.device} "
        f"{report.precision}; {report.wall_time_s:.0f} s; model in {report.out_dir}"
    )
    write_json(json_path, asdict(report))
