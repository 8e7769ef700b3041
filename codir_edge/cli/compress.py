"""``codir-edge compress``: declares options and calls :func:`codir_edge.distill.trainer.run_compress`."""

from __future__ import annotations

from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from codir_edge.cli.errors import handle_errors
from codir_edge.cli.options import (
    TRAIN_PANEL,
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
    SeedOpt,
    TaskOpt,
    TextColumnOpt,
    TextPairColumnOpt,
    TrustRemoteCodeOpt,
    train_data_specs,
    write_json,
)
from codir_edge.distill.config import CompressConfig  # light: the defaults live there, once

LOSS_PANEL = "Objective"
CHECKPOINT_PANEL = "Checkpoints"


class Objective(str, Enum):
    codir = "codir"
    kd = "kd"
    mse = "mse"
    none = "none"


class Pooling(str, Enum):
    mean = "mean"
    cls = "cls"


class Contrastive(str, Enum):
    infonce = "infonce"
    nce = "nce"


@handle_errors
def compress(
    teacher: Annotated[
        Path, typer.Option("--teacher", help="Fine-tuned BERT-family sequence classifier (a finetune output).")
    ],
    task: TaskOpt,
    data: DataOpt,
    out: OutOpt,
    student_layers: Annotated[
        int | None,
        typer.Option(help="Student depth, skip-initialised from the teacher (default: half the teacher's layers)."),
    ] = None,
    student: Annotated[
        Path | None,
        typer.Option(help="Start from this pretrained smaller model instead of skip initialisation (same tokenizer)."),
    ] = None,
    objective: Annotated[
        Objective,
        typer.Option(
            help="codir: contrastive on intermediate layers + KD; kd: logits only; mse: BERT-PKD [CLS] MSE + KD; "
            "none: plain fine-tuning of the same student.",
            rich_help_panel=LOSS_PANEL,
        ),
    ] = Objective(CompressConfig.objective),
    pooling: Annotated[
        Pooling,
        typer.Option(
            help="Layer summary: masked mean of tokens (paper) or [CLS] (release).", rich_help_panel=LOSS_PANEL
        ),
    ] = Pooling(CompressConfig.pooling),
    contrastive: Annotated[
        Contrastive,
        typer.Option(help="InfoNCE (softmax, paper) or binary NCE (CRD, release).", rich_help_panel=LOSS_PANEL),
    ] = Contrastive(CompressConfig.contrastive),
    negatives: Annotated[
        int,
        typer.Option(help="K label-aware negatives per example, from the teacher bank.", rich_help_panel=LOSS_PANEL),
    ] = CompressConfig.negatives,
    contrastive_temperature: Annotated[
        float, typer.Option(help="tau of the contrastive scores.", rich_help_panel=LOSS_PANEL)
    ] = CompressConfig.contrastive_temperature,
    projection_dim: Annotated[
        int, typer.Option(help="Output width p of the two projection heads.", rich_help_panel=LOSS_PANEL)
    ] = CompressConfig.projection_dim,
    contrastive_weight: Annotated[
        float, typer.Option(help="lambda, the weight of the contrastive term.", rich_help_panel=LOSS_PANEL)
    ] = CompressConfig.contrastive_weight,
    kd_temperature: Annotated[
        float, typer.Option(help="T of the logit distillation.", rich_help_panel=LOSS_PANEL)
    ] = CompressConfig.kd_temperature,
    kd_weight: Annotated[
        float, typer.Option(help="beta: (1 - beta) CE + beta KD.", rich_help_panel=LOSS_PANEL)
    ] = CompressConfig.kd_weight,
    mse_weight: Annotated[
        float, typer.Option(help="Weight of BERT-PKD's [CLS] MSE (objective mse).", rich_help_panel=LOSS_PANEL)
    ] = CompressConfig.mse_weight,
    negative_margin: Annotated[
        float | None,
        typer.Option(
            help="Regression tasks: targets further apart than this are negatives (default: 20% of the target range).",
            rich_help_panel=LOSS_PANEL,
        ),
    ] = None,
    epochs: EpochsOpt = CompressConfig.epochs,
    lr: LrOpt = CompressConfig.lr,
    batch_size: Annotated[
        int,
        typer.Option(help="Examples per optimizer step, over all processes together.", rich_help_panel=TRAIN_PANEL),
    ] = CompressConfig.batch_size,
    max_length: MaxLengthOpt = CompressConfig.max_length,
    max_train_samples: MaxTrainSamplesOpt = None,
    max_eval_samples: MaxEvalSamplesOpt = None,
    seed: SeedOpt = CompressConfig.seed,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue an interrupted run from its last checkpoint (same command otherwise).",
            rich_help_panel=CHECKPOINT_PANEL,
        ),
    ] = False,
    checkpoint_every: Annotated[
        int,
        typer.Option(
            help="Save a checkpoint every this many steps (and at each epoch end); 0: epoch ends only.",
            rich_help_panel=CHECKPOINT_PANEL,
        ),
    ] = CompressConfig.checkpoint_every,
    cache_from: Annotated[
        list[Path] | None,
        typer.Option(
            help="An earlier compress output whose cached teacher bank may be reused (used only if its key matches).",
            rich_help_panel=CHECKPOINT_PANEL,
        ),
    ] = None,
    eval_data: EvalDataOpt = None,
    text_column: TextColumnOpt = None,
    text_pair_column: TextPairColumnOpt = None,
    label_column: LabelColumnOpt = None,
    labels: LabelsOpt = None,
    overwrite: OverwriteOpt = False,
    json_path: JsonOpt = None,
    quiet: QuietOpt = False,
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """Distil a fine-tuned teacher into a smaller student with CoDIR (or kd, mse, none to compare).

    One pass of the teacher fills a memory bank (cached under --out/cache, reused when teacher and
    data match); training then needs no teacher. Writes a Hugging Face folder with metrics.json and
    train_log.jsonl. Several GPUs or CPUs: torchrun --nproc-per-node N -m codir_edge compress ...
    """
    from codir_edge.distill.trainer import run_compress
    from codir_edge.errors import InputError

    if checkpoint_every < 0:
        raise InputError(f"--checkpoint-every must not be negative, got {checkpoint_every}: pass 0 or more steps")
    train_spec, eval_spec = train_data_specs(data, eval_data, text_column, text_pair_column, label_column, labels)
    config = CompressConfig(
        task=task,
        student_layers=student_layers,
        objective=objective.value,
        pooling=pooling.value,
        contrastive=contrastive.value,
        negatives=negatives,
        contrastive_temperature=contrastive_temperature,
        projection_dim=projection_dim,
        contrastive_weight=contrastive_weight,
        kd_temperature=kd_temperature,
        kd_weight=kd_weight,
        mse_weight=mse_weight,
        negative_margin=negative_margin,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        max_length=max_length,
        max_train_samples=max_train_samples,
        max_eval_samples=max_eval_samples,
        seed=seed,
        device=getattr(device, "value", device),
        precision=getattr(precision, "value", precision),
        checkpoint_every=checkpoint_every or None,
        trust_remote_code=trust_remote_code,
    )
    report = run_compress(
        teacher,
        train_spec,
        out,
        config,
        student_dir=student,
        eval_data=eval_spec,
        overwrite=overwrite,
        resume=resume,
        cache_from=tuple(cache_from or ()),
        show_progress=not quiet,
    )
    if report.rank != 0:
        return  # under torchrun, rank 0 speaks for the run
    if report.objective == "none":
        bank = "not needed"
    else:
        bank = "reused" if report.bank.reused_from else f"built in {report.bank.build_seconds:.0f} s"
    typer.echo(
        f"{report.task} {report.objective}: student dev {report.metric} {report.student_score:.4f} "
        f"(teacher {report.teacher_score:.4f}), {report.student_layers} of {report.teacher_layers} layers, "
        f"{report.student_parameters / 1e6:.1f}M parameters; bank {bank}; "
        f"{report.train_examples_per_s:.0f} examples/s on {report.device} {report.precision}; "
        f"{report.wall_time_s:.0f} s; student in {report.out_dir}"
    )
    write_json(json_path, asdict(report))
