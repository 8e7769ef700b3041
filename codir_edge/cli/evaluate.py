"""``codir-edge evaluate``: the task metric of a model on a split (options in ``evaluate/options.py``)."""

from __future__ import annotations

import typer

from codir_edge.cli.generate import Args, command
from codir_edge.cli.options import write_json
from codir_edge.evaluate.options import EVALUATE


@command(EVALUATE)
def evaluate(args: Args) -> None:
    """Score MODEL on a task split with the task's metrics (accuracy, F1, Matthews, Pearson/Spearman).

    ONNX models run on this machine's CPU with every core (--device applies to PyTorch folders). The
    --json file holds one report, or for a bundle {"bundle", "task", "split", "variants": [reports]}.
    """
    from codir_edge.data.ner_metrics import headline
    from codir_edge.data.options import data_spec
    from codir_edge.evaluate import EvaluateConfig, run_evaluate
    from codir_edge.models.hub_ids import resolve_model_dir

    model = args.model
    if model.suffix not in (".onnx", ".ort"):  # a missing file.onnx is not a hub id to fetch
        model = resolve_model_dir(model, "MODEL")
    reports = run_evaluate(model, data_spec(args), args.config(EvaluateConfig))
    for report in reports:
        figures = "  ".join(f"{name} {value:.4f}" for name, value in headline(report.metrics).items())
        name = f"{report.variant:<6} " if report.variant else ""
        where = f"{report.examples} examples, {report.runtime}, batch {report.batch_size}, length {report.max_length}"
        typer.echo(f"{name}{report.task} {report.split} ({where}): {figures}")
    first = reports[0]
    if first.variant is None:
        write_json(args.json_path, first.to_dict())
    else:
        variants = [r.to_dict() for r in reports]
        write_json(args.json_path, {"bundle": str(model), "task": first.task, "split": first.split,
                                    "variants": variants})  # fmt: skip
    if args.json_path is not None:
        typer.echo(f"report: {args.json_path}")
