"""Smaller in width as well as depth: depth-only students against width-pruned ones, accuracy and INT8 latency.

SST-2, the MiniLM teacher (all-MiniLM-L6-v2 fine-tuned here once: 1 epoch at max length 64, kept
under benchmarks/.work), students distilled for 1 epoch on a seeded ``--train-samples`` of the
training set (0: all of it) at max length 64, each with ``codir`` and ``kd``, over ``--seeds``:

- depth only: 2, 3 and 4 layers at full width;
- width-pruned (``--heads-keep``/``--ffn-keep``): 4 layers and 3 layers with heads and FFN halved
  (``--only`` also takes 3L-f50, FFN halved, and 6L-h50-f25, every layer with half the heads and a
  quarter of the FFN).

Latency: each shape's first-seed ``codir`` student is exported (``export --quantize dynamic``, tuned
at 1 thread on real sentences, so it ships its fastest INT8 graph) and profiled at 1 thread, batch 1,
on real dev sentences and at length 128, in ``--rounds`` rounds over all bundles (the median per
bundle is kept: a shared machine drifts, and rounds spread the drift over every bundle alike). The
Pareto plot is accuracy (mean over seeds) against INT8 p50 on real sentences.

    python benchmarks/width_pruning.py [--seeds 1 2] [--train-samples 16000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from _models import RESULTS, ROOT, WORK, write_result
from _models import run_command as run

from codir_edge.bundle import layout

OUT = WORK / "width"
GLUE = ROOT.parent / "shared" / "data" / "glue"
# name -> (layers, heads kept, FFN kept), in the order they run (the comparisons that matter first)
STUDENTS = {
    "3L": (3, 1.0, 1.0),
    "2L": (2, 1.0, 1.0),
    "4L-h50-f50": (4, 0.5, 0.5),
    "3L-h50-f50": (3, 0.5, 0.5),
    "4L": (4, 1.0, 1.0),
}
# further shapes for --only (not in the recorded run: the machine's day was spent on the five above)
MORE = {"3L-f50": (3, 1.0, 0.5), "6L-h50-f25": (6, 0.5, 0.25)}
OBJECTIVES = ("codir", "kd")


def teacher() -> Path:
    """The benchmark's own teacher, fine-tuned once (942 s on 2 cores, 89.91% on dev) and kept."""
    out = WORK / "teacher-sst2-1ep"
    if not (out / "metrics.json").is_file():
        run([sys.executable, "-m", "codir_edge", "finetune", "--task", "sst2", "--data", str(GLUE), "--out", str(out),
             "--epochs", "1", "--max-length", "64", "--seed", "42", "--quiet", "--overwrite"], "teacher")  # fmt: skip
    return out


def compress(name: str, shape: tuple, objective: str, seed: int, args) -> dict:
    out, report = OUT / name, OUT / f"{name}.json"
    if report.is_file():  # a finished run is kept: re-running the script resumes the benchmark
        return json.loads(report.read_text())
    layers, heads_keep, ffn_keep = shape
    command = [
        sys.executable, "-m", "codir_edge", "compress", "--teacher", str(args.teacher), "--task", "sst2",
        "--data", str(GLUE), "--out", str(out), "--objective", objective, "--student-layers", str(layers),
        "--heads-keep", str(heads_keep), "--ffn-keep", str(ffn_keep), "--epochs", "1", "--max-length", "64",
        "--seed", str(seed), "--overwrite", "--quiet", "--json", str(report), "--checkpoint-every", "0",
    ]  # fmt: skip
    if args.train_samples:
        command += ["--max-train-samples", str(args.train_samples)]
    for other in sorted(OUT.glob("*")):
        if other.is_dir() and (other / "cache").is_dir():
            command += ["--cache-from", str(other)]
    seconds = run(command, name)
    result = json.loads(report.read_text()) | {"command_seconds": seconds}
    report.write_text(json.dumps(result, indent=2))
    print(f"{name}: {result['student_score']:.4f} ({seconds:.0f} s, {result['student_parameters'] / 1e6:.1f}M)",
          flush=True)  # fmt: skip
    return result


def export(name: str) -> Path:
    bundle = OUT / f"bundle-{name}"
    if not (bundle / "manifest.json").is_file():
        run([sys.executable, "-m", "codir_edge", "export", str(OUT / name), "--out", str(bundle), "--quantize",
             "dynamic", "--task", "sst2", "--data", str(GLUE), "--max-length", "64", "--tune-threads", "1",
             "--tune-lengths", "real", "--no-ort", "--no-tokenizer-in-graph", "--overwrite"],
            f"export {name}")  # fmt: skip
    return bundle


def int8_file(name: str, bundle: Path) -> Path:
    """The bundle's INT8 graph under a name of its own (profile tells targets apart by file name), beside
    the bundle's tokenizer and config."""
    named = bundle / f"{name}.int8.onnx"
    if not named.exists():
        named.hardlink_to(bundle / layout.INT8)
    return named


def profile(bundles: dict[str, Path], rounds: int) -> dict[str, dict]:
    """name -> {"real": p50/p95 ms, "128": ..., int8 accuracy}, medians over rounds."""
    files = {name: int8_file(name, bundle) for name, bundle in bundles.items()}
    samples: dict[str, dict[str, list]] = {name: {} for name in files}
    accuracy = {}
    for round_no in range(rounds):
        report = OUT / f"profile-round{round_no}.json"
        order = list(files) if round_no % 2 == 0 else list(reversed(files))
        run([sys.executable, "-m", "codir_edge", "profile", *[str(files[n]) for n in order], "--task", "sst2",
             "--data", str(GLUE), "--threads", "1", "--batch-sizes", "1", "--seq-lens", "real,128", "--runs", "300",
             "--warmup", "20", "--quiet", "--json", str(report)],
            f"profile round {round_no}")  # fmt: skip
        figures = json.loads(report.read_text())
        names = {files[n].name: n for n in files}
        for row in figures["results"]:
            entry = samples[names[row["target"]]].setdefault(str(row["seq_len"]), [])
            entry.append({"p50_ms": row["p50_ms"], "p95_ms": row["p95_ms"]})
        for target, scored in figures.get("accuracy", {}).items():
            accuracy[names[target]] = scored.get("accuracy")
    out = {}
    for name, per_len in samples.items():
        out[name] = {length: {k: statistics.median(r[k] for r in rows) for k in ("p50_ms", "p95_ms")}
                     for length, rows in per_len.items()}  # fmt: skip
        out[name]["int8_accuracy"] = accuracy.get(name)
    return out


def summarise(results: list[dict]) -> dict:
    scores = [r["student_score"] for r in results]
    return {
        "accuracy": scores, "mean": statistics.mean(scores), "spread": (max(scores) - min(scores)) / 2,
        "parameters": results[0]["student_parameters"], "pruning": results[0].get("pruning"),
        "train_seconds": [r["wall_time_s"] for r in results],
    }  # fmt: skip


def plot(rows: dict, teacher_score: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for objective, marker in (("codir", "o"), ("kd", "s")):
        for name, row in rows.items():
            point = row[objective]
            color = "tab:blue" if name in ("2L", "3L", "4L") else "tab:orange"
            ax.errorbar(row["latency"]["real"]["p50_ms"], 100 * point["mean"], yerr=100 * point["spread"],
                        fmt=marker, color=color, alpha=0.9 if objective == "codir" else 0.5)  # fmt: skip
            if objective == "codir":
                ax.annotate(name, (row["latency"]["real"]["p50_ms"], 100 * point["mean"]), textcoords="offset points",
                            xytext=(5, 4), fontsize=8)  # fmt: skip
    ax.axhline(100 * teacher_score, color="grey", linestyle="--", linewidth=0.8, label="teacher (fp32)")
    ax.set_xlabel("INT8 p50 latency, 1 thread, batch 1, real SST-2 sentences (ms)")
    ax.set_ylabel("SST-2 dev accuracy (%)")
    ax.set_title("Depth-only (blue) and width-pruned (orange) students; o codir, s kd")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--train-samples", type=int, default=16000, help="seeded training subset (0: all 67,349)")
    parser.add_argument("--rounds", type=int, default=3, help="profile rounds over all bundles")
    parser.add_argument("--only", nargs="+", default=None, help="run only these students")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    args.teacher = teacher()
    students = {n: s for n, s in (STUDENTS | MORE).items() if (n in args.only if args.only else n in STUDENTS)}
    rows, teacher_score = {}, None
    for name, shape in students.items():
        rows[name] = {"layers": shape[0], "heads_keep": shape[1], "ffn_keep": shape[2]}
        for objective in OBJECTIVES:
            results = [compress(f"{name}-{objective}-s{seed}", shape, objective, seed, args) for seed in args.seeds]
            rows[name][objective] = summarise(results)
            teacher_score = results[0]["teacher_score"]
    bundles = {name: export(f"{name}-codir-s{args.seeds[0]}") for name in students}
    latency = profile(bundles, args.rounds)
    for name in students:
        rows[name]["latency"] = latency[name]
    print(f"\nteacher {teacher_score:.4f}")
    for name, row in rows.items():
        real, long = row["latency"]["real"]["p50_ms"], row["latency"]["128"]["p50_ms"]
        print(f"  {name:<12} codir {row['codir']['mean']:.4f} ± {row['codir']['spread']:.4f}  "
              f"kd {row['kd']['mean']:.4f}  INT8 p50 real {real:.2f} ms, 128: {long:.2f} ms  "
              f"{row['codir']['parameters'] / 1e6:.1f}M")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, teacher_score, RESULTS / "width_pruning.png")
    teacher_config = json.loads((args.teacher / "config.json").read_text())
    write_result("width_pruning", {
        "teacher": str(args.teacher), "teacher_accuracy": teacher_score,
        "teacher_heads": teacher_config["num_attention_heads"],
        "teacher_ffn": teacher_config["intermediate_size"], "epochs": 1, "max_length": 64,
        "train_samples": args.train_samples or 67349, "seeds": args.seeds, "rounds": args.rounds,
        "latency_setting": "INT8 (export --quantize dynamic, tuned at 1 thread), 1 thread, batch 1", "students": rows,
    })  # fmt: skip


if __name__ == "__main__":
    main()
