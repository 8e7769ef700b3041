"""``codir-edge export`` and ``codir-edge verify``: declare options, call the stage, print one summary."""

from __future__ import annotations

from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from codir_edge.cli.errors import handle_errors
from codir_edge.cli.options import (
    DataOpt,
    JsonOpt,
    LabelColumnOpt,
    MaxLengthOpt,
    OverwriteOpt,
    QuietOpt,
    TextColumnOpt,
    TextPairColumnOpt,
    TrustRemoteCodeOpt,
    command_line,
    write_json,
)

QUANT_PANEL = "Quantization"
GRAPH_PANEL = "Graph"


class Quantize(str, Enum):
    none = "none"
    dynamic = "dynamic"
    static = "static"


class Calibration(str, Enum):
    minmax = "minmax"
    entropy = "entropy"


class Target(str, Enum):
    native = "native"
    avx512_vnni = "avx512_vnni"
    avx2 = "avx2"
    arm64 = "arm64"
    cuda = "cuda"


@handle_errors
def export(
    ctx: typer.Context,
    model_dir: Annotated[
        Path, typer.Argument(metavar="MODEL_DIR", help="Sequence-classification folder (finetune or compress output).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder, written atomically.")],
    quantize: Annotated[
        Quantize,
        typer.Option(
            help="INT8 variant: dynamic, static (QDQ, calibrated on --data) or none.", rich_help_panel=QUANT_PANEL
        ),
    ] = Quantize.dynamic,
    task: Annotated[str | None, typer.Option("--task", "-t", help="Task of --data (its columns and metric).")] = None,
    data: Annotated[str | None, typer.Option("--data", "-d", help=DataOpt.__metadata__[0].help)] = None,
    calibration_samples: Annotated[
        int, typer.Option(help="Training sentences used to calibrate static INT8.", rich_help_panel=QUANT_PANEL)
    ] = 300,
    calibration_method: Annotated[
        Calibration,
        typer.Option(help="minmax or entropy (percentile wrecks BERT accuracy).", rich_help_panel=QUANT_PANEL),
    ] = Calibration.minmax,
    optimize: Annotated[
        bool,
        typer.Option(
            help="Try onnxruntime's offline BERT fusion; kept only if measured faster.", rich_help_panel=GRAPH_PANEL
        ),
    ] = True,
    fp16: Annotated[
        bool,
        typer.Option(
            "--fp16", help="Also write model.fp16.onnx (always for --target cuda).", rich_help_panel=QUANT_PANEL
        ),
    ] = False,
    ort: Annotated[
        bool,
        typer.Option(
            help="Write model.ort and required_operators.config for ONNX Runtime Mobile.", rich_help_panel=GRAPH_PANEL
        ),
    ] = True,
    tokenizer_in_graph: Annotated[
        bool | None,
        typer.Option(
            "--tokenizer-in-graph/--no-tokenizer-in-graph",
            help="Write model.strings.onnx: raw text in, logits and probabilities out (onnxruntime-extensions). "
            "Default: whenever the tokenizer is a WordPiece (BERT) or byte-level BPE (RoBERTa) one.",
            rich_help_panel=GRAPH_PANEL,
            show_default=False,
        ),
    ] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset.", rich_help_panel=GRAPH_PANEL)] = 17,
    atol: Annotated[float, typer.Option(help="Largest allowed |PyTorch - ONNX| on fp32 logits.")] = 1e-4,
    max_accuracy_drop: Annotated[
        float, typer.Option(help="Largest allowed drop of a variant's task metric against fp32, in points.")
    ] = 0.5,
    target: Annotated[
        Target,
        typer.Option(
            help="CPU family or accelerator the bundle is for (native: this machine).", rich_help_panel=GRAPH_PANEL
        ),
    ] = Target.native,
    max_length: MaxLengthOpt = 128,
    max_eval_samples: Annotated[
        int | None, typer.Option(help="Score variants on a seeded subset of the dev split.")
    ] = None,
    text_column: TextColumnOpt = None,
    text_pair_column: TextPairColumnOpt = None,
    label_column: LabelColumnOpt = None,
    overwrite: OverwriteOpt = False,
    json_path: JsonOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Export a classifier to an ONNX bundle: fp32 held to PyTorch, INT8, mobile .ort and a manifest.

    Parity beyond --atol and an accuracy drop beyond --max-accuracy-drop fail the export (exit 1).
    Graph variants (offline-fused or not) are timed here and the faster one is kept.
    """
    from codir_edge.data import DataSpec
    from codir_edge.export.run import ExportConfig, run_export
    from codir_edge.models.hub_ids import resolve_model_dir

    model_dir = resolve_model_dir(model_dir, "MODEL_DIR")
    config = ExportConfig(
        quantize=quantize.value,
        task=task,
        calibration_samples=calibration_samples,
        calibration_method=calibration_method.value,
        optimize=optimize,
        fp16=fp16,
        ort=ort,
        opset=opset,
        atol=atol,
        max_accuracy_drop=max_accuracy_drop,
        target=target.value,
        max_length=max_length,
        max_eval_samples=max_eval_samples,
        tokenizer_in_graph=tokenizer_in_graph,
        trust_remote_code=trust_remote_code,
    )
    spec = DataSpec(data, text_column, text_pair_column, label_column) if data else None
    report = run_export(
        model_dir, out, config, spec, overwrite=overwrite, command=command_line(ctx), show_progress=not quiet
    )
    for variant in report.variants:
        accuracy, agreement = variant.get("accuracy"), variant.get("agreement")
        if accuracy:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in accuracy.items())
        elif agreement:
            worst = agreement["max_abs_diff"]
            ties, texts = agreement.get("equal_score_ties", 0), agreement["texts"]
            shown = f"agrees with tokenizer + model on {texts - ties} of {texts} texts (max |diff| {worst:.1e})"
            if ties:
                shown += f"; {ties} split differently between equal-score pieces (known gap)"
        else:
            shown = "not scored"
        size = (out / variant["file"]).stat().st_size / 1e6
        typer.echo(f"{variant['name']:<7} {variant['file']:<18} {size:7.1f} MB  {shown}")
    typer.echo(
        f"parity: max |diff| {report.parity['max_abs_diff']:.2e}, labels agree {report.parity['label_agreement']:.2%}; "
        f"fused {report.fused_operators.get('Attention', 0)} Attention"
    )
    typer.echo(f"graphs kept: {graph_summary(report.graph_choice)}")
    typer.echo(f"bundle: {report.out_dir} ({report.wall_time_s:.0f} s)")
    write_json(json_path, asdict(report))
    if json_path is not None:
        typer.echo(f"report: {json_path}")


def graph_summary(choice: dict) -> str:
    """'fp32 plain (3.10 ms; fused 3.40 ms), int8 fused (1.20 ms; plain 1.45 ms), median at length 128,
    1 thread': which graph each variant kept and the timings it was kept on."""
    measured, threads = choice.get("median_ms_seq128_batch1", {}), choice.get("threads", 1)
    parts = []
    for variant, graph in choice["chosen"].items():
        int8 = variant == "int8"  # its candidates are timed as "<graph>.int8"
        mine = {name.removesuffix(".int8"): ms for name, ms in measured.items() if name.endswith(".int8") == int8}
        if graph not in mine:
            parts.append(f"{variant} {graph}")
            continue
        others = [f"{name} {ms:.2f} ms" for name, ms in mine.items() if name != graph]
        against = f"; {', '.join(others)}" if others else ""
        parts.append(f"{variant} {graph} ({mine[graph]:.2f} ms{against})")
    timed = f", median at length 128, batch 1, {threads} thread{'s' * (threads != 1)}" if measured else " (not timed)"
    return ", ".join(parts) + timed


@handle_errors
def verify(
    bundle: Annotated[
        Path,
        typer.Argument(
            metavar="BUNDLE",
            help="Bundle folder written by codir-edge export, or one .onnx/.ort file in it (checked against the "
            "bundle's manifest).",
        ),
    ],
) -> None:
    """Re-check a bundle: every file's hash and size, no path outside the bundle, every model loads.

    Given one model file, checks that file (and its external data) against its bundle's manifest.
    Exit 0 when everything matches, 1 on any mismatch (all of them listed), 2 when it is not a bundle.
    """
    from codir_edge.bundle.verify import verify_bundle

    checked = verify_bundle(bundle)
    files = "file matches its hash" if checked.files == 1 else f"{checked.files} files match their hashes"
    models = "1 model loads" if checked.models == 1 else f"{checked.models} models load"
    typer.echo(f"{bundle}: {files}; {models}")
