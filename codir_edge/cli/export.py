"""``codir-edge export`` and ``codir-edge verify``: options from ``export/options.py``; one summary each."""

from __future__ import annotations

from dataclasses import asdict

import typer

from codir_edge.cli.generate import Args, command
from codir_edge.cli.options import command_line, write_json
from codir_edge.export.options import EXPORT, VERIFY


@command(EXPORT, context=True)
def export(args: Args) -> None:
    """Export a classifier to an ONNX bundle: fp32 held to PyTorch, INT8, mobile .ort and a manifest.

    Parity beyond --atol and an accuracy drop beyond --max-accuracy-drop fail the export (exit 1).
    Graph candidates (plain, fused, fused without attention; their INT8 forms) are timed here at each
    --tune-threads and --tune-lengths, and each thread count ships its fastest; manifest.json's
    deployment table says which file to load at which thread count.
    """
    from codir_edge.data.options import data_spec
    from codir_edge.export.config import ExportConfig
    from codir_edge.export.run import run_export
    from codir_edge.models.hub_ids import resolve_model_dir

    model_dir = resolve_model_dir(args.model_dir, "MODEL_DIR")
    config = args.config(ExportConfig)
    spec = data_spec(args) if args.data else None
    out = args.out
    report = run_export(
        model_dir, out, config, spec, overwrite=args.overwrite, command=command_line(args.ctx),
        show_progress=not args.quiet,
    )  # fmt: skip
    name_width = max((len(v["name"]) for v in report.variants), default=0)  # columns as wide as the longest
    file_width = max((len(v["file"]) for v in report.variants), default=0)  # entry (fp32-fused-noattn)
    for variant in report.variants:
        size = (out / variant["file"]).stat().st_size / 1e6
        name, file = f"{variant['name']:<{name_width}}", f"{variant['file']:<{file_width}}"
        typer.echo(f"{name} {file} {size:7.1f} MB  {variant_line(variant)}")
    parity = report.parity
    if "min_cosine" in parity:
        agreement = f", embeddings' cosine at least {parity['min_cosine']:.6f}"
    elif "label_agreement" in parity:
        agreement = f", labels agree {parity['label_agreement']:.2%}"
    else:  # per-token logits (--task ner): the difference is the check
        agreement = f" over {len(parity['cases'])} batches of per-token logits"
    typer.echo(
        f"parity: max |diff| {parity['max_abs_diff']:.2e}{agreement}; "
        f"fused {report.fused_operators.get('Attention', 0)} Attention"
    )
    for line in deployment_lines(report.deployment, report.tuning):
        typer.echo(line)
    typer.echo(f"bundle: {report.out_dir} ({report.wall_time_s:.0f} s)")
    write_json(args.json_path, asdict(report))
    if args.json_path is not None:
        typer.echo(f"report: {args.json_path}")


def variant_line(variant: dict) -> str:
    """A variant's accuracy, or its agreement with tokenizer + model for the strings graph."""
    accuracy, agreement = variant.get("accuracy"), variant.get("agreement")
    if accuracy:  # --task ner's per-type precision and recall stay in the manifest
        from codir_edge.data.ner_metrics import headline

        shown = ", ".join(f"{k} {v:.4f}" for k, v in headline(accuracy).items())
    elif agreement:
        worst = agreement["max_abs_diff"]
        ties, texts = agreement.get("equal_score_ties", 0), agreement["texts"]
        shown = f"agrees with tokenizer + model on {texts - ties} of {texts} texts (max |diff| {worst:.1e})"
        if ties:
            shown += f"; {ties} split differently between equal-score pieces (known gap)"
    else:
        shown = "not scored"
    if variant.get("agreement_with_fp32") is not None:
        shown += f"; argmax label equal to fp32 on {variant['agreement_with_fp32']:.2%} of probe pieces"
    if variant.get("cosine_to_fp32"):
        shown += f"; cosine to fp32 at least {variant['cosine_to_fp32']['min']:.4f}"
    if variant.get("keep_float"):
        shown += f"; {len(variant['keep_float'])} MatMul(s) kept in fp32 for accuracy"
    return shown


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
            if "scores" not in choice:  # not timed: the accuracy-aware search's graph, the one left
                parts.append(f"{kind} -> {variant} [{choice['chosen'].removeprefix('int8:')}] ({choice['by']})")
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
    for name, reason in tuning.get("unusable", {}).items():
        lines.append(f"not shipped: {name} ({reason})")
    return lines


@command(VERIFY)
def verify(args: Args) -> None:
    """Re-check a bundle: every file's hash and size, no path outside the bundle, every model loads.

    Given one model file, checks that file (and its external data) against its bundle's manifest.
    Exit 0 when everything matches, 1 on any mismatch (all of them listed), 2 when it is not a bundle.
    """
    from codir_edge.bundle.verify import verify_bundle

    checked = verify_bundle(args.bundle)
    files = "file matches its hash" if checked.files == 1 else f"{checked.files} files match their hashes"
    models = "1 model loads" if checked.models == 1 else f"{checked.models} models load"
    typer.echo(f"{args.bundle}: {files}; {models}")
