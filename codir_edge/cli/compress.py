"""``codir-edge compress``: declares options and calls :func:`codir_edge.compress.run.run_compress`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from codir_edge.cli.errors import handle_errors
from codir_edge.cli.options import (
    CHECKPOINT_PANEL,
    DATA_PANEL,
    TRAIN_PANEL,
    CheckpointEveryOpt,
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
    TextColumnOpt,
    TextPairColumnOpt,
    TrustRemoteCodeOpt,
    checkpoint_steps,
    train_data_specs,
    write_json,
)
from codir_edge.compress.config import CompressConfig  # light: the defaults live there, once

LOSS_PANEL = "Objective"
SHAPE_PANEL = "Student shape"


class Stage(str, Enum):
    fine = "fine"
    pre = "pre"


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
        Path,
        typer.Option(
            "--teacher",
            help="--stage fine: a fine-tuned encoder classifier (a finetune output, or a folder or hub id of bert, "
            "roberta, xlm-roberta, camembert, distilbert, electra, albert, mpnet, deberta-v2, modernbert). --stage "
            "pre: a pretrained backbone (a BertModel folder such as all-MiniLM-L6-v2, or a masked-LM checkpoint).",
        ),
    ],
    data: Annotated[
        str,
        typer.Option(
            "--data",
            "-d",
            help="--stage fine: the task's data (a GLUE folder or the glue root, a .tsv/.csv/.jsonl file, a "
            "save_to_disk folder, or hf:NAME[:CONFIG]). --stage pre: unlabelled text (a .txt file with one text "
            "per line, a .jsonl with a text field, or a GLUE task folder or the glue root, labels ignored).",
            rich_help_panel=DATA_PANEL,
        ),
    ],
    out: OutOpt,
    stage: Annotated[
        Stage,
        typer.Option(
            help="fine: CoDIR-Fine, distil a fine-tuned classifier on its labelled task. pre: CoDIR-Pre, distil a "
            "pretrained backbone on unlabelled text into a general student (then --stage fine --student it)."
        ),
    ] = Stage.fine,
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            "-t",
            help="--stage fine: the teacher's GLUE task (sst2, mrpc, rte, cola, stsb, qnli, qqp, mnli, wnli) or "
            "'classification' / 'regression' for custom data.",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    student_layers: Annotated[
        int | None,
        typer.Option(help="Student depth, skip-initialised from the teacher (default: half the teacher's layers)."),
    ] = None,
    student: Annotated[
        Path | None,
        typer.Option(help="Start from this pretrained smaller model instead of skip initialisation (same tokenizer)."),
    ] = None,
    heads_keep: Annotated[
        float,
        typer.Option(
            help="Fraction of each layer's attention heads the student keeps: the teacher's most important ones "
            "(|dL/dmask| on training sentences), the rest removed. Not for deberta-v2, modernbert, mpnet.",
            rich_help_panel=SHAPE_PANEL,
        ),
    ] = CompressConfig.heads_keep,
    ffn_keep: Annotated[
        float,
        typer.Option(help="Fraction of each layer's FFN neurons the student keeps, chosen the same way.",
                     rich_help_panel=SHAPE_PANEL),
    ] = CompressConfig.ffn_keep,
    importance_samples: Annotated[
        int,
        typer.Option(help="Training sentences the head and neuron importance is scored on.",
                     rich_help_panel=SHAPE_PANEL),
    ] = CompressConfig.importance_samples,
    latency_budget: Annotated[
        float | None,
        typer.Option(
            help="INT8 p95 latency budget in ms (batch 1): times student shapes (layers x heads x FFN) with random "
            "weights on the target and distils the largest that meets it.",
            rich_help_panel=SHAPE_PANEL,
        ),
    ] = None,
    budget_threads: Annotated[
        int, typer.Option(help="onnxruntime threads the budget is measured with.", rich_help_panel=SHAPE_PANEL)
    ] = CompressConfig.budget_threads,
    budget_seq_len: Annotated[
        str,
        typer.Option(help="Sequence length the budget is measured at, or 'real' for the task's dev sentences.",
                     rich_help_panel=SHAPE_PANEL),
    ] = str(CompressConfig.budget_seq_len),
    budget_device: Annotated[
        str | None,
        typer.Option(help="Where the budget is measured: a name from --devices, ssh://user@host[:port], or local.",
                     rich_help_panel=SHAPE_PANEL),
    ] = None,
    devices: Annotated[
        Path | None,
        typer.Option(help="A devices.toml (as profile reads it) naming --budget-device.", rich_help_panel=SHAPE_PANEL),
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
        typer.Option(
            help="K negatives per example from the teacher bank: label-aware (fine), or random corpus rows on top "
            "of the rest of the batch (pre).",
            rich_help_panel=LOSS_PANEL,
        ),
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
        float,
        typer.Option(help="beta: (1 - beta) CE + beta KD (pre: on the masked-LM terms).", rich_help_panel=LOSS_PANEL),
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
    mlm_probability: Annotated[
        float,
        typer.Option(
            help="--stage pre with a masked-LM teacher: share of tokens masked (BERT's 80/10/10 split).",
            rich_help_panel=LOSS_PANEL,
        ),
    ] = CompressConfig.mlm_probability,
    held_out: Annotated[
        int,
        typer.Option(
            help="--stage pre: corpus texts kept out of training to score the student each epoch (at most a tenth).",
            rich_help_panel=DATA_PANEL,
        ),
    ] = CompressConfig.held_out,
    unlabeled: Annotated[
        Path | None,
        typer.Option(
            help="--stage fine: unlabelled in-domain text for the transfer set (a .txt with one text per line, a "
            ".jsonl with a --text-column field, default 'text', and --text-pair-column, default 'text_pair', for "
            "pair tasks, or a data folder whose labels are ignored). The "
            "teacher labels it: KD and contrastive terms only, negatives by the teacher's argmax. Texts that are "
            "labelled or dev examples are dropped and counted.",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    unlabeled_per_epoch: Annotated[
        int | None,
        typer.Option(
            help="Rows without a label an epoch trains on (default: all); they rotate over epochs.",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    labeled_repeat: Annotated[
        int,
        typer.Option(
            help="Times each labelled example is seen per epoch: raises CE's share beside a large transfer set.",
            rich_help_panel=DATA_PANEL,
        ),
    ] = CompressConfig.labeled_repeat,
    augment: Annotated[
        int,
        typer.Option(
            help="--stage fine: new sentences made from each labelled one (token dropout, span deletion, swaps "
            "with the teacher's nearest vocabulary words), labelled by the teacher only. 0: off.",
            rich_help_panel=DATA_PANEL,
        ),
    ] = CompressConfig.augment,
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
    resume: ResumeOpt = False,
    checkpoint_every: CheckpointEveryOpt = CompressConfig.checkpoint_every,
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
    """Distil a BERT teacher into a smaller student with CoDIR, in either of its two stages.

    --stage fine (default): a fine-tuned classifier on its task (or kd, mse, none to compare). One
    pass of the teacher fills a memory bank (cached under --out/cache, reused when teacher and data
    match); training then needs no teacher.

    --stage pre: a pretrained backbone on unlabelled text, into a general student for --stage fine
    --student (or finetune --model); masked-LM terms join in when the teacher has an MLM head.

    Writes a Hugging Face folder with metrics.json and train_log.jsonl. Several GPUs or CPUs:

    \b
      torchrun --nproc-per-node N -m codir_edge compress ...
    """
    from codir_edge.core.errors import InputError
    from codir_edge.models.hub_ids import resolve_model_dir

    teacher = resolve_model_dir(teacher, "--teacher")
    student = resolve_model_dir(student, "--student") if student is not None else None
    config = CompressConfig(
        task=task,
        stage=stage.value,
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
        mlm_probability=mlm_probability,
        held_out=held_out,
        unlabeled=str(unlabeled) if unlabeled is not None else None,
        unlabeled_per_epoch=unlabeled_per_epoch,
        labeled_repeat=labeled_repeat,
        augment=augment,
        heads_keep=heads_keep,
        ffn_keep=ffn_keep,
        importance_samples=importance_samples,
        latency_budget=latency_budget,
        budget_threads=budget_threads,
        budget_seq_len=_seq_len(budget_seq_len),
        budget_device=budget_device,
        devices=str(devices) if devices is not None else None,
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
    common = {
        "overwrite": overwrite,
        "resume": resume,
        "cache_from": tuple(cache_from or ()),
        "show_progress": not quiet,
    }
    if stage is Stage.pre:
        fine_only = {
            "--student": student,
            "--eval-data": eval_data,
            "--text-pair-column": text_pair_column,
            "--label-column": label_column,
            "--labels": labels,
        }
        for flag, value in fine_only.items():
            if value is not None:
                raise InputError(f"{flag} applies to --stage fine only: drop it (--stage pre reads unlabelled text)")
        _pretrain(teacher, data, out, config, text_column, json_path, common)
        return
    from codir_edge.compress.run import run_compress

    train_spec, eval_spec = train_data_specs(data, eval_data, text_column, text_pair_column, label_column, labels)
    report = run_compress(teacher, train_spec, out, config, student_dir=student, eval_data=eval_spec, **common)
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
    if report.transfer_set is not None:
        typer.echo(transfer_line(report.transfer_set))
    if report.shape_search is not None:
        typer.echo(shape_line(report.shape_search))
    if report.pruning is not None:
        typer.echo(pruning_line(report.pruning))
    write_json(json_path, report.summary())


def _seq_len(value: str) -> int | str:
    from codir_edge.core.errors import InputError

    if value == "real":
        return value
    try:
        return int(value)
    except ValueError:
        raise InputError(f"--budget-seq-len must be a length or 'real', got {value!r}") from None


def shape_line(search: dict) -> str:
    chosen = search["chosen"]
    return (
        f"latency budget {search['budget_ms']:g} ms (INT8 p95, {search['threads']} thread(s), sequence length "
        f"{search['seq_len']}, on {search['device']}): chose {chosen['layers']} layers, {chosen['heads']} heads, "
        f"FFN {chosen['ffn']} at p95 {chosen['p95_ms']:.2f} ms; {search['timed']} of {len(search['candidates'])} "
        "shapes timed"
    )


def pruning_line(pruning: dict) -> str:
    return (
        f"pruned: {pruning['heads_per_layer']} of {pruning['teacher_heads']} heads and {pruning['ffn_width']} of "
        f"{pruning['teacher_ffn_width']} FFN neurons per layer kept, ranked on {pruning['importance_samples']} "
        f"training sentences in {pruning['importance_seconds']:.1f} s"
    )


def transfer_line(transfer: dict) -> str:
    """What the teacher alone labelled, and what was kept out of it."""
    parts = []
    if transfer["unlabeled"]:
        u = transfer["unlabeled"]
        parts.append(
            f"{u['kept']} unlabelled texts of {u['read']} read (dropped: {u['dropped_dev']} dev, "
            f"{u['dropped_labeled']} labelled, {u['dropped_repeats']} repeats)"
        )
    if transfer["augmented"]:
        a = transfer["augmented"]
        parts.append(f"{a['kept']} augmented sentences ({a['per_example']} per labelled example asked)")
    return (
        f"transfer set: {transfer['labeled_rows']} labelled rows + "
        + " + ".join(parts)
        + f"; {transfer['rows_per_epoch']} rows per epoch; their negatives follow the teacher's argmax"
    )


def _pretrain(teacher: Path, data: str, out: Path, config, text_field: str | None, json_path, common: dict) -> None:
    from codir_edge.compress.run import run_compress

    report = run_compress(teacher, data, out, config, text_field=text_field, **common)
    if report.rank != 0:
        return
    bank = "reused" if report.bank.reused_from else f"built in {report.bank.build_seconds:.0f} s"
    figures = report.summary()
    mlm = ""
    if figures["mlm_accuracy"] is not None:
        mlm = f", masked-LM accuracy {figures['mlm_accuracy']:.4f} (teacher {figures['teacher_mlm_accuracy']:.4f})"
    typer.echo(
        f"pre: held-out CKA with the teacher {figures['cka']:.4f} (skip init {figures['initial_cka']:.4f}), "
        f"retrieval top-1 {figures['retrieval_top1']:.4f} over {report.held_out_examples} texts{mlm}; "
        f"{report.train_examples} training texts; {report.student_layers} of {report.teacher_layers} layers, "
        f"{report.student_parameters / 1e6:.1f}M parameters; bank {bank}; "
        f"{report.train_examples_per_s:.0f} examples/s on {report.device} {report.precision}; "
        f"{report.wall_time_s:.0f} s; general student in {report.out_dir}"
    )
    write_json(json_path, figures)
