"""Distillation quality on SST-2: the fine-tuned MiniLM teacher into a 3-layer student.

Phase ``sweep``: contrastive weight, temperature and K, one at a time around the release defaults,
on a seeded subset (one seed). Phase ``final``: ``none``, ``kd``, ``mse`` and ``codir`` (with the
sweep's best setting) on the full training set, same epochs and max length 64 for every objective,
over several seeds. Every run goes through the ``codir-edge compress`` command and shares one
cached teacher bank (``--cache-from``).

    python benchmarks/compress_quality.py [--phase all|sweep|final] [--seeds 1 2] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _models import ROOT, WORK, teacher_folder, write_result

OUT = WORK / "compress"
SST2 = ROOT.parent / "shared" / "data" / "glue" / "SST-2"
CENTER = {"contrastive_weight": 0.1, "contrastive_temperature": 0.07, "negatives": 100}
SWEEP = [
    {},
    {"contrastive_weight": 0.03},
    {"contrastive_weight": 0.3},
    {"contrastive_weight": 1.0},
    {"contrastive_temperature": 0.2},
    {"negatives": 25},
]


def compress(name: str, objective: str, seed: int, args, extra: dict, train_samples: int | None) -> dict:
    out = OUT / name
    report = OUT / f"{name}.json"
    if report.is_file():  # a finished run is kept: re-running the script resumes the benchmark
        return json.loads(report.read_text())
    command = [
        sys.executable, "-m", "codir_edge", "compress",
        "--teacher", str(args.teacher), "--task", "sst2", "--data", str(SST2), "--out", str(out),
        "--objective", objective, "--student-layers", "3", "--epochs", str(args.epochs),
        "--max-length", "64", "--seed", str(seed), "--overwrite", "--quiet", "--json", str(report),
        "--checkpoint-every", "0",
    ]  # fmt: skip
    for other in sorted(OUT.glob("*")):
        if other.is_dir() and (other / "cache").is_dir():
            command += ["--cache-from", str(other)]
    if train_samples:
        command += ["--max-train-samples", str(train_samples)]
    for key, value in extra.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    result = json.loads(report.read_text())
    result["command_seconds"] = time.perf_counter() - started
    report.write_text(json.dumps(result, indent=2))
    print(f"{name}: {result['student_score']:.4f} ({result['command_seconds']:.0f} s)", flush=True)
    return result


def sweep(args) -> dict:
    runs = []
    for change in SWEEP:
        setting = {**CENTER, **change}
        name = "sweep-" + "-".join(f"{k}{v}" for k, v in setting.items())
        result = compress(name, "codir", args.sweep_seed, args, setting, args.sweep_samples)
        runs.append({"setting": setting, "accuracy": result["student_score"], "seconds": result["wall_time_s"]})
    kd = compress("sweep-kd", "kd", args.sweep_seed, args, {}, args.sweep_samples)
    best = max(runs, key=lambda r: r["accuracy"])
    print(f"\n{'weight':>7} {'tau':>6} {'K':>5} {'accuracy':>9}")
    for run in runs:
        weight, tau, k = (run["setting"][key] for key in ("contrastive_weight", "contrastive_temperature", "negatives"))
        print(f"{weight:>7} {tau:>6} {k:>5} {run['accuracy']:>9.4f}")
    print(f"kd on the same subset: {kd['student_score']:.4f}; best codir setting: {best['setting']}")
    payload = {"train_samples": args.sweep_samples, "seed": args.sweep_seed, "epochs": args.epochs, "runs": runs}
    payload |= {"kd_accuracy": kd["student_score"], "best": best["setting"]}
    write_result("compress_sweep", payload)
    return best["setting"]


def final(args, setting: dict) -> None:
    rows = {}
    for objective in ("none", "kd", "mse", "codir"):
        extra = setting if objective == "codir" else {}
        results = [compress(f"final-{objective}-s{seed}", objective, seed, args, extra, None) for seed in args.seeds]
        scores = [r["student_score"] for r in results]
        rows[objective] = {
            "accuracy": scores,
            "mean": statistics.mean(scores),
            "spread": (max(scores) - min(scores)) / 2,
            "examples_per_s": statistics.mean(r["train_examples_per_s"] for r in results),
            "seconds": [r["wall_time_s"] for r in results],
        }
    teacher = results[0]["teacher_score"]
    print(f"\nteacher (6 layers): {teacher:.4f}")
    print(f"{'objective':<8} {'mean':>7} {'± half-range':>13} {'of teacher':>11} seeds")
    for objective, row in rows.items():
        seeds = " ".join(f"{a:.4f}" for a in row["accuracy"])
        print(f"{objective:<8} {row['mean']:>7.4f} {row['spread']:>13.4f} {row['mean'] / teacher:>11.3%} {seeds}")
    write_result(
        "compress_quality",
        {
            "teacher_accuracy": teacher,
            "student_layers": 3,
            "epochs": args.epochs,
            "max_length": 64,
            "seeds": args.seeds,
            "codir_setting": setting,
            "objectives": rows,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=("all", "sweep", "final"), default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--sweep-samples", type=int, default=16000)
    parser.add_argument("--sweep-seed", type=int, default=1)
    parser.add_argument("--teacher", type=Path, default=None)
    args = parser.parse_args()
    args.teacher = args.teacher or teacher_folder()
    OUT.mkdir(parents=True, exist_ok=True)
    setting = sweep(args) if args.phase in ("all", "sweep") else CENTER
    if args.phase in ("all", "final"):
        final(args, setting)


if __name__ == "__main__":
    main()
