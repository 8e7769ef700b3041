"""Distillation quality on a GLUE task: the fine-tuned MiniLM teacher into an N-layer student.

Phase ``sweep`` (SST-2): contrastive weight, temperature and K, one at a time around the release
defaults, on a seeded subset (one seed). Phase ``final``: ``none``, ``kd``, ``mse`` and ``codir``
(with the sweep's best setting, read from ``results/compress_sweep.json`` when the sweep is not
run) on the full training set, same epochs and max length for every objective, over several
seeds. Every run goes through the ``codir-edge compress`` command and shares one cached teacher
bank (``--cache-from``). For tasks other than SST-2 the teacher is fine-tuned here first, through
``codir-edge finetune`` from the bundled all-MiniLM-L6-v2 (3 epochs, recorded in the result).

    python benchmarks/compress_quality.py [--phase all|sweep|final] [--task sst2] [--layers 3]
        [--seeds 1 2] [--epochs 1] [--max-length 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _models import RESULTS, ROOT, WORK, teacher_folder, write_result

OUT = WORK / "compress"
GLUE = ROOT.parent / "shared" / "data" / "glue"
TEACHER_EPOCHS = 3
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
        "--teacher", str(args.teacher), "--task", args.task, "--data", str(GLUE), "--out", str(out),
        "--objective", objective, "--student-layers", str(args.layers), "--epochs", str(args.epochs),
        "--max-length", str(args.max_length), "--seed", str(seed), "--overwrite", "--quiet", "--json", str(report),
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


def task_teacher(task: str) -> Path:
    """The SST-2 teacher of the other benchmarks; for other tasks one fine-tuned here once (kept)."""
    if task == "sst2":
        return teacher_folder()
    out = WORK / f"teacher-{task}"
    if not (out / "metrics.json").is_file():
        command = [
            sys.executable, "-m", "codir_edge", "finetune", "--task", task, "--data", str(GLUE),
            "--out", str(out), "--epochs", str(TEACHER_EPOCHS), "--max-length", "128", "--seed", "42",
            "--quiet", "--overwrite",
        ]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"teacher for {task} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        print(f"teacher-{task}: {time.perf_counter() - started:.0f} s", flush=True)
    return out


def chosen_setting() -> dict:
    """The sweep's best setting when the sweep has been run, else the release centre."""
    swept = RESULTS / "compress_sweep.json"
    return json.loads(swept.read_text())["best"] if swept.is_file() else CENTER


def result_name(args) -> str:
    """``compress_quality`` for the headline (SST-2, 3 layers); task and depth spelled out otherwise."""
    headline = (args.task, args.layers) == ("sst2", 3)
    return "compress_quality" if headline else f"compress_quality_{args.task}_{args.layers}l"


def final(args, setting: dict) -> None:
    rows = {}
    prefix = "final" if (args.task, args.layers) == ("sst2", 3) else f"final-{args.task}-{args.layers}l"
    for objective in ("none", "kd", "mse", "codir"):
        extra = setting if objective == "codir" else {}
        results = [compress(f"{prefix}-{objective}-s{seed}", objective, seed, args, extra, None) for seed in args.seeds]
        scores = [r["student_score"] for r in results]
        rows[objective] = {
            "accuracy": scores,  # the task's primary metric (F1 for MRPC), under its historical name
            "mean": statistics.mean(scores),
            "spread": (max(scores) - min(scores)) / 2,
            "examples_per_s": statistics.mean(r["train_examples_per_s"] for r in results),
            "seconds": [r["wall_time_s"] for r in results],
        }
    teacher = results[0]["teacher_score"]
    metric = results[0].get("metric", "accuracy")
    print(f"\n{args.task} {metric}, teacher (6 layers): {teacher:.4f}")
    print(f"{'objective':<8} {'mean':>7} {'± half-range':>13} {'of teacher':>11} seeds")
    for objective, row in rows.items():
        seeds = " ".join(f"{a:.4f}" for a in row["accuracy"])
        print(f"{objective:<8} {row['mean']:>7.4f} {row['spread']:>13.4f} {row['mean'] / teacher:>11.3%} {seeds}")
    write_result(
        result_name(args),
        {
            "task": args.task,
            "metric": metric,
            "teacher": str(args.teacher),
            "teacher_accuracy": teacher,
            "student_layers": args.layers,
            "epochs": args.epochs,
            "max_length": args.max_length,
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
    parser.add_argument("--task", default="sst2", choices=("sst2", "mrpc", "rte", "cola", "stsb"))
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    if args.phase != "final" and args.task != "sst2":
        parser.error("the sweep runs on SST-2 only: use --phase final for other tasks")
    OUT.mkdir(parents=True, exist_ok=True)
    args.teacher = args.teacher or task_teacher(args.task)
    setting = sweep(args) if args.phase in ("all", "sweep") else chosen_setting()
    if args.phase in ("all", "final"):
        final(args, setting)


if __name__ == "__main__":
    main()
