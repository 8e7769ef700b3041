"""Distillation where it has to beat fine-tuning: few labels plus the user's unlabelled text.

SST-2 with 1,000 and 4,000 labelled training sentences (a seeded sample; the 1,000 are inside the
4,000), the rest of SST-2's training sentences as unlabelled text with their labels dropped, the
MiniLM teacher fine-tuned on the full training set (runs/teacher-sst2 when present, else fine-tuned
here: 3 epochs, about an hour on 2 cores), 3-layer students, 1 epoch, several seeds:

- ``none``: the labels only, each seen ``--labeled-repeat`` times so that it takes as many steps as
  the runs below (a fair budget: one pass over 1,000 sentences is 32 steps);
- ``kd-labels``: KD on the labels only, the same steps (does the unlabelled text matter?);
- ``kd`` and ``codir`` with the unlabelled text (``--unlabeled-per-epoch`` of it per epoch);
- ``codir-augment``: ``codir`` with ``--augment`` copies of the labelled sentences instead.

Every run goes through ``codir-edge compress``; runs that share a bank share it (``--cache-from``).
``--contrastive-weight W`` runs the ``codir`` rows at another lambda into ``transfer_set_lambda<W>``
(a probe: is CoDIR's lambda, swept on the full labelled set, the right one for a transfer set?).

    python benchmarks/transfer_set.py [--labels 1000 4000] [--seeds 1 2 3] [--per-epoch 16000]
    python benchmarks/transfer_set.py --labels 1000 --only codir --contrastive-weight 0.5
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

from _models import ROOT, WORK, write_result
from _models import run_command as run

OUT = WORK / "transfer"
GLUE = ROOT.parent / "shared" / "data" / "glue"
SST2 = GLUE / "SST-2"


def teacher() -> Path:
    """The full-data SST-2 teacher of the other benchmarks, or one fine-tuned here once (kept)."""
    trained = ROOT / "runs" / "teacher-sst2"
    if (trained / "metrics.json").is_file():
        return trained
    out = WORK / "teacher-sst2"
    if not (out / "metrics.json").is_file():
        run([sys.executable, "-m", "codir_edge", "finetune", "--task", "sst2", "--data", str(GLUE), "--out", str(out),
             "--epochs", "3", "--max-length", "128", "--seed", "42", "--quiet", "--overwrite"], "teacher")  # fmt: skip
    return out


def split_data(budget: int) -> tuple[Path, Path]:
    """(a GLUE-style folder with ``budget`` labelled train rows and the real dev set, the unlabelled .txt)."""
    folder = OUT / f"data-{budget}"
    unlabeled = OUT / f"unlabeled-{budget}.txt"
    if (folder / "train.tsv").is_file() and unlabeled.is_file():
        return folder, unlabeled
    lines = (SST2 / "train.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)  # one order for every budget: the 1,000 lie inside the 4,000
    labeled = sorted(order[:budget])
    rest = sorted(order[budget:])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.tsv").write_text("\n".join([header, *(rows[i] for i in labeled)]) + "\n", encoding="utf-8")
    (folder / "dev.tsv").write_text((SST2 / "dev.tsv").read_text(encoding="utf-8"), encoding="utf-8")
    unlabeled.write_text("\n".join(rows[i].split("\t")[0] for i in rest) + "\n", encoding="utf-8")
    return folder, unlabeled


def compress(name: str, data: Path, objective: str, seed: int, args, extra: list[str]) -> dict:
    out = OUT / name
    report = OUT / f"{name}.json"
    if report.is_file():  # a finished run is kept: re-running the script resumes the benchmark
        return json.loads(report.read_text())
    command = [
        sys.executable, "-m", "codir_edge", "compress", "--teacher", str(args.teacher), "--task", "sst2",
        "--data", str(data), "--out", str(out), "--objective", objective, "--student-layers", "3",
        "--epochs", "1", "--max-length", str(args.max_length), "--seed", str(seed), "--overwrite", "--quiet",
        "--json", str(report), "--checkpoint-every", "0", *extra,
    ]  # fmt: skip
    for other in sorted(OUT.glob("*")):
        if other.is_dir() and (other / "cache").is_dir():
            command += ["--cache-from", str(other)]
    seconds = run(command, name)
    result = json.loads(report.read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    result |= {"command_seconds": seconds, "train_seconds": metrics["train_seconds"],
               "transfer_set": metrics.get("transfer_set"), "steps": metrics["history"][-1]["step"]}  # fmt: skip
    report.write_text(json.dumps(result, indent=2))
    print(f"{name}: {result['student_score']:.4f} ({seconds:.0f} s, bank {result['bank']['build_seconds']:.0f} s, "
          f"{result['train_examples_per_s']:.0f} ex/s)", flush=True)  # fmt: skip
    return result


def configs(budget: int, args) -> dict[str, tuple[str, list[str]]]:
    """name -> (objective, extra options); every run takes about the same number of steps."""
    repeat = max(1, round((budget + args.per_epoch) / budget))
    augment = max(1, round(args.per_epoch / budget))
    unlabeled = ["--unlabeled", str(split_data(budget)[1]), "--unlabeled-per-epoch", str(args.per_epoch)]
    weight = [] if args.contrastive_weight is None else ["--contrastive-weight", str(args.contrastive_weight)]
    return {
        "none": ("none", ["--labeled-repeat", str(repeat)]),
        "kd-labels": ("kd", ["--labeled-repeat", str(repeat)]),
        "kd": ("kd", unlabeled),
        "codir": ("codir", unlabeled + weight),
        "codir-augment": ("codir", ["--augment", str(augment)]),
    }


def summarise(results: list[dict]) -> dict:
    scores = [r["student_score"] for r in results]
    return {
        "accuracy": scores,
        "mean": statistics.mean(scores),
        "spread": (max(scores) - min(scores)) / 2,
        "examples_per_s": statistics.median(r["train_examples_per_s"] for r in results),
        "train_seconds": [r["train_seconds"] for r in results],
        "wall_seconds": [r["wall_time_s"] for r in results],
        "bank_build_seconds": max(r["bank"]["build_seconds"] for r in results),
        "steps": results[0]["steps"],
        "transfer_set": results[0]["transfer_set"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--per-epoch", type=int, default=16000, help="unlabelled rows per (single) epoch")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--only", nargs="+", default=None, help="run only these configurations")
    parser.add_argument("--contrastive-weight", type=float, default=None, help="lambda of the unlabelled-text runs")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    args.teacher = teacher()
    budgets = {}
    for budget in args.labels:
        data, _ = split_data(budget)
        rows = {}
        for name, (objective, extra) in configs(budget, args).items():
            if args.only and name not in args.only:
                continue
            probe = "" if args.contrastive_weight is None else f"-lambda{args.contrastive_weight:g}"
            tag = f"{budget}-{name}{probe}"
            results = [compress(f"{tag}-s{seed}", data, objective, seed, args, extra) for seed in args.seeds]
            rows[name] = summarise(results)
        teacher_score = results[0]["teacher_score"]
        budgets[str(budget)] = {"teacher_accuracy": teacher_score, "configs": rows}
        print(f"\n{budget} labels; teacher {teacher_score:.4f}")
        for name, row in rows.items():
            print(f"  {name:<14} {row['mean']:.4f} ± {row['spread']:.4f}  ({row['mean'] / teacher_score:.1%} of the "
                  f"teacher; {row['examples_per_s']:.0f} ex/s; {row['steps']} steps)")  # fmt: skip
    name = "transfer_set" if args.contrastive_weight is None else f"transfer_set_lambda{args.contrastive_weight:g}"
    write_result(name, {
        "teacher": str(args.teacher), "student_layers": 3, "epochs": 1, "max_length": args.max_length,
        "seeds": args.seeds, "unlabeled_per_epoch": args.per_epoch, "contrastive_weight": args.contrastive_weight,
        "budgets": budgets,
    })  # fmt: skip


if __name__ == "__main__":
    main()
