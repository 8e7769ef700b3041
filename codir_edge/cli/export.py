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
    int_list,
    seq_lens_list,
    write_json,
)

QUANT_PANEL = "Quantization"
GRAPH_PANEL = "Graph"
TUNE_PANEL = "Tuning"


class Quantize(str, Enum):
    auto = "auto"
    dynamic = "dynamic"
    static = "static"
    none = "none"


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
            help="INT8 candidates: auto (dynamic, plus static QDQ and per-tensor weights when --data can score "
            "them), dynamic, static (QDQ, calibrated on --data) or none. The fastest within --max-accuracy-drop "
            "ships; when none holds it, the most sensitive MatMuls stay in fp32.",
            rich_help_panel=QUANT_PANEL,
        ),
    ] = Quantize.auto,
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
    tune_threads: Annotated[
        str | None,
        typer.Option(
            help="Thread counts the bundle will run at; each gets the graph fastest there, e.g. 1,4.",
            rich_help_panel=TUNE_PANEL,
            show_default="1 and this machine's cores",
        ),
    ] = None,
    tune_lengths: Annotated[
        str | None,
        typer.Option(
            help="Input lengths to time candidates at, 'real' for dev sentences at their own length, e.g. 16,128,real.",
            rich_help_panel=TUNE_PANEL,
            show_default="real with --data, else 16,128",
        ),
    ] = None,
    fixed_shape: Annotated[
        str,
        typer.Option(
            help="Also write model.int8.fixed.onnx (and .ort) with static BxL inputs and QDQ u8 INT8 for NNAPI "
            "and Core ML, e.g. 1x64; auto: with --ort, batch 1 and the dev data's 99th-percentile length "
            "(128 without data); off.",
            rich_help_panel=TUNE_PANEL,
        ),
    ] = "auto",
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
    Graph candidates (plain, fused, fused without attention; their INT8 forms) are timed here at each
    --tune-threads and --tune-lengths, and each thread count ships its fastest; manifest.json's
    deployment table says which file to load at which thread count.
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
        tune_threads=int_list(tune_threads, "--tune-threads") or (),
        tune_lengths=seq_lens_list(tune_lengths, "--tune-lengths") or (),
        fixed_shape=fixed_shape,
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
        if variant.get("keep_float"):
            shown += f"; {len(variant['keep_float'])} MatMul(s) kept in fp32 for accuracy"
        typer.echo(f"{variant['name']:<10} {variant['file']:<22} {size:7.1f} MB  {shown}")
    typer.echo(
        f"parity: max |diff| {report.parity['max_abs_diff']:.2e}, labels agree {report.parity['label_agreement']:.2%}; "
        f"fused {report.fused_operators.get('Attention', 0)} Attention"
    )
    for line in deployment_lines(report.deployment, report.tuning):
        typer.echo(line)
    typer.echo(f"bundle: {report.out_dir} ({report.wall_time_s:.0f} s)")
    write_json(json_path, asdict(report))
    if json_path is not None:
        typer.echo(f"report: {json_path}")


def deployment_lines(deployment: dict, tuning: dict) -> list[str]:
    """'1 thread: fp32 plain, int8 plain.dynamic (1.00; fused.dynamic 1.08, ...)': per thread count
    the variant to load and each candidate's score (its median over the best, geometric mean over
    the tuned lengths)."""
    per_threads = tuning.get("per_threads", {})
    lines = []
    for count, picks in deployment["threads"].items():
        parts = []
        for kind, variant in picks.items():
            choice = per_threads.get(count, {}).get(kind)
            if not choice:
                parts.append(f"{kind} {variant}")
                continue
            scores = sorted(choice["scores"].items(), key=lambda kv: kv[1])
            shown = ", ".join(f"{n.removeprefix('int8:')} {s:.2f}" for n, s in scores[:4])
            parts.append(f"{kind} -> {variant} [{choice['chosen'].removeprefix('int8:')}] ({shown})")
        plural = "s" * (count != "1")
        lines.append(f"{count} thread{plural}: " + "; ".join(parts))
    if tuning.get("timed"):
        lengths = ", ".join(str(n) for n in deployment["tuned_on"]["lengths"])
        lines.append(f"tuned at lengths {lengths}, batch 1 (score: median over the fastest, 1.00 = fastest)")
    for name, drop in tuning.get("rejected_int8", {}).items():
        lines.append(f"not shipped: {name} loses {drop:.2f} points")
    return lines


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
