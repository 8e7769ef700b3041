"""``codir-edge finetune``: its options come from ``finetune/options.py``; this file prints the summary."""

from __future__ import annotations

import typer

from codir_edge.cli.generate import Args, command
from codir_edge.cli.options import write_json
from codir_edge.finetune.options import FINETUNE


@command(FINETUNE)
def finetune(args: Args) -> None:
    """Fine-tune an encoder checkpoint as a sequence classifier: the teacher for `compress`.

    Writes a Hugging Face folder (safetensors weights, tokenizer, config with labels) holding the
    best epoch by dev metric, plus metrics.json and train_log.jsonl. Ctrl-C saves a checkpoint that
    --resume continues from. Several GPUs or CPUs: torchrun --nproc-per-node N -m codir_edge finetune ...
    """
    from codir_edge.data.options import train_data_specs
    from codir_edge.finetune.config import FinetuneConfig
    from codir_edge.finetune.run import run_finetune
    from codir_edge.models.hub_ids import resolve_model_dir

    model = resolve_model_dir(args.model, "--model") if args.model is not None else None
    train_spec, eval_spec = train_data_specs(args)
    config = args.config(FinetuneConfig)
    report = run_finetune(
        model, train_spec, args.out, config, eval_data=eval_spec, overwrite=args.overwrite,
        show_progress=not args.quiet, resume=args.resume,
    )  # fmt: skip
    if report.rank != 0:
        return  # under torchrun, rank 0 speaks for the run
    typer.echo(
        f"{report.task}: dev {report.metric} {report.best_score:.4f} (epoch {report.best_epoch}); "
        f"{report.train_examples} examples at {report.train_examples_per_s:.0f}/s on {report.device} "
        f"{report.precision}; {report.wall_time_s:.0f} s; model in {report.out_dir}"
    )
    write_json(args.json_path, report.summary())
