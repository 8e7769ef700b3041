"""Our bundle against the Optimum pipeline on the same model: latency, size and SST-2 dev accuracy.

The Optimum pipeline is what a user without this tool runs: ``ORTModelForSequenceClassification``
export, ``ORTOptimizer`` with ``AutoOptimizationConfig.O2()``, then ``ORTQuantizer`` with
``AutoQuantizationConfig.avx512_vnni(is_static=False)``. Ours is ``codir-edge export`` with defaults.
Every latency is taken in a fresh process with the same session settings
(``codir_edge.onnx.session.session_options``), batch 1, for sequence lengths 16 and 128 and 1 and 2
threads; the variants are interleaved round by round (rotated order) so machine noise hits all of
them, and the figure is the median over rounds of each process's median.

Target: our int8 at most 0.9x Optimum's int8 latency on the same model (never above 1.0x), with at
most 0.5 points of SST-2 dev accuracy lost to INT8.

    python benchmarks/export_latency.py [--rounds 5] [--runs 200] [--models teacher,student]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from _models import ROOT, WORK, bare_latency, layer_cut, rotated, teacher_folder, timing_parser, write_result

from codir_edge.bundle import layout

GLUE_SST2 = ROOT.parent / "shared" / "data" / "glue" / "SST-2"


def student_folder(teacher: Path) -> Path:
    """The distilled 3-layer codir student of the quality benchmark when present, else a 3-layer cut
    (latency and size do not depend on training; accuracy then is not meaningful)."""
    trained = WORK / "compress" / "final-codir-s1"
    return trained if (trained / "config.json").is_file() else layer_cut(teacher, 3)


def ours(model_dir: Path, name: str) -> tuple[Path, float]:
    out = WORK / f"bundle-{name}"
    started = time.perf_counter()
    command = [sys.executable, "-m", "codir_edge", "export", str(model_dir), "--out", str(out), "--overwrite"]
    if GLUE_SST2.is_dir():
        command += [
            "--task",
            "sst2",
            "--data",
            str(GLUE_SST2),
            "--max-accuracy-drop",
            "100",
            "--tune-lengths",
            "16,128,real",
        ]  # the lengths latency.py compares at
    subprocess.run(command, check=True, cwd=ROOT)
    return out, time.perf_counter() - started


def optimum_pipeline(model_dir: Path, name: str, feature_extraction: bool = False,
                     token_classification: bool = False) -> tuple[dict[str, Path], float]:  # fmt: skip
    """Export, O2 optimisation and avx512_vnni dynamic quantization, as Optimum's documentation shows.

    With onnxruntime 1.32, ORTQuantizer fails on the O2 graph ("Unable to find data type for
    .../attention/output/dense/MatMul_output_0": the fused contrib operators carry no inferred types,
    and Optimum passes the quantizer no DefaultTensorType). The smallest fix a user can make is
    onnxruntime's symbolic shape inference on the optimized file, so that is done here; the
    quantization of the unoptimized export is measured too, as the other path a user may take.
    ``feature_extraction``: the model as a sentence-embedding model (``ORTModelForFeatureExtraction``),
    what sentence-transformers' ONNX backend exports; ``token_classification``: a tagger
    (``ORTModelForTokenClassification``)."""
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    from optimum.onnxruntime import (
        AutoQuantizationConfig,
        ORTModelForFeatureExtraction,
        ORTModelForSequenceClassification,
        ORTModelForTokenClassification,
        ORTOptimizer,
        ORTQuantizer,
    )
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    base = WORK / f"optimum-{name}"
    started = time.perf_counter()
    config = AutoQuantizationConfig.avx512_vnni(is_static=False)
    model_class = ORTModelForFeatureExtraction if feature_extraction else ORTModelForSequenceClassification
    model_class = ORTModelForTokenClassification if token_classification else model_class
    model = model_class.from_pretrained(str(model_dir), export=True)
    exported = base / "exported"
    model.save_pretrained(exported)
    ORTQuantizer.from_pretrained(exported, file_name="model.onnx").quantize(config, base / "quantized-plain")
    optimized = base / "optimized"
    ORTOptimizer.from_pretrained(model).optimize(AutoOptimizationConfig.O2(), optimized)
    typed = SymbolicShapeInference.infer_shapes(onnx.load(str(optimized / "model_optimized.onnx")), auto_merge=True)
    onnx.save(typed, str(optimized / "model_optimized.onnx"))
    ORTQuantizer.from_pretrained(optimized, file_name="model_optimized.onnx").quantize(config, base / "quantized")
    files = {
        "optimum O2 fp32": optimized / "model_optimized.onnx",
        "optimum O2 int8": base / "quantized" / "model_optimized_quantized.onnx",
        "optimum int8 (no O2)": base / "quantized-plain" / "model_quantized.onnx",
    }
    return files, time.perf_counter() - started


def sst2_dev(tokenizer_dir: Path):
    """SST-2 dev encoded with the model's tokenizer (max length 128), or None without ../shared."""
    if not GLUE_SST2.is_dir():
        return None
    from codir_edge.data import DataSpec, get_task, load_split
    from codir_edge.data.encode import encode
    from codir_edge.models.loading import load_tokenizer

    task = get_task("sst2")
    dev = load_split(task, DataSpec(str(GLUE_SST2)), "dev", list(task.labels))
    return encode(load_tokenizer(tokenizer_dir), dev, 128)


def sst2_accuracy(path: Path, encoded) -> float | None:
    if encoded is None:
        return None
    from codir_edge.onnx.predict import onnx_logits

    logits = onnx_logits(path, encoded, threads=2)
    return float((logits.argmax(-1) == encoded.targets).mean())


def main() -> None:
    parser = timing_parser(__doc__.splitlines()[0], rounds=5)
    parser.add_argument("--models", default="teacher,student")
    parser.add_argument("--name", default="export_latency", help="result file name under benchmarks/results")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    teacher = teacher_folder()
    folders = {"teacher": teacher, "student": student_folder(teacher)}
    rows, builds = [], {}
    for name in args.models.split(","):
        folder = folders[name]
        bundle, our_seconds = ours(folder, name)
        optimum_files, optimum_seconds = optimum_pipeline(folder, name)
        builds[name] = {"source": str(folder), "ours_s": our_seconds, "optimum_s": optimum_seconds}
        variants = {"ours fp32": bundle / layout.FP32, "ours int8": bundle / layout.INT8, **optimum_files}
        dev = sst2_dev(folder)
        accuracy = {v: sst2_accuracy(p, dev) for v, p in variants.items()}
        for seq in (16, 128):
            for threads in thread_counts:
                samples: dict[str, list[float]] = {v: [] for v in variants}
                order = list(variants)
                for r in range(args.rounds):
                    for v in rotated(order, r):
                        samples[v].append(bare_latency(variants[v], threads, seq, args.runs, args.warmup))
                medians = {v: statistics.median(s) for v, s in samples.items()}
                for v, path in variants.items():
                    rows.append(
                        {
                            "model": name,
                            "variant": v,
                            "seq": seq,
                            "threads": threads,
                            "median_ms": medians[v],
                            "rounds_ms": samples[v],
                            "size_mb": path.stat().st_size / 1e6,
                            "sst2_dev_accuracy": accuracy[v],
                            "file": str(path.relative_to(ROOT)),
                        }
                    )
                ratio = medians["ours int8"] / medians["optimum O2 int8"]
                print(
                    f"{name:8} seq {seq:3} threads {threads}: "
                    + "  ".join(f"{v} {m:.3f}" for v, m in medians.items())
                    + f"  ours/optimum int8 {ratio:.3f}",
                    flush=True,
                )
    columns = ["ours fp32", "ours int8", "Optimum O2 fp32", "Optimum O2 int8", "Optimum int8 (no O2)"]
    print("\n| model | seq | threads | " + " | ".join(columns) + " | ours int8 / Optimum O2 int8 |")
    print("|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for name in args.models.split(","):
        for seq in (16, 128):
            for threads in thread_counts:
                got = {
                    r["variant"]: r["median_ms"]
                    for r in rows
                    if (r["model"], r["seq"], r["threads"]) == (name, seq, threads)
                }
                ratio = got["ours int8"] / got["optimum O2 int8"]
                ratios.append({"model": name, "seq": seq, "threads": threads, "ratio": ratio})
                print(
                    f"| {name} | {seq} | {threads} | {got['ours fp32']:.3f} | {got['ours int8']:.3f} | "
                    f"{got['optimum O2 fp32']:.3f} | {got['optimum O2 int8']:.3f} | {got['optimum int8 (no O2)']:.3f} "
                    f"| **{ratio:.3f}** |"
                )
    print("\n| model | variant | size MB | SST-2 dev accuracy |\n|---|---|---|---|")
    for row in rows:
        if row["seq"] == 16 and row["threads"] == 1:
            acc = row["sst2_dev_accuracy"]
            print(f"| {row['model']} | {row['variant']} | {row['size_mb']:.1f} | {acc * 100:.2f}% |" if acc is not None
                  else f"| {row['model']} | {row['variant']} | {row['size_mb']:.1f} | n/a |")  # fmt: skip
    path = write_result(
        args.name,
        {"rows": rows, "ratios": ratios, "builds": builds, "rounds": args.rounds, "runs": args.runs, "batch": 1},
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
