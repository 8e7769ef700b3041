"""CoDIR against KD, paired: one MiniLM teacher fine-tuned per task, 3-layer students distilled with
each objective over several seeds, every arm with one seed drawing the same batches and dropout
masks (the heads have their own generator), scored on the task's held-out test split.

Per task and arm: test accuracy per seed and its mean, the paired per-seed difference against
``kd``, McNemar's exact test on the pooled test predictions (discordant pairs against ``kd``), the
contrastive term at the end of training (top-1, gradient share: is it still teaching?), wall time
and examples per second. Choices were made on dev (the defaults); test is only reported.

    python benchmarks/codir_paired.py [--task banking77] [--seeds 1,2,3] [--arms kd,mse,codir,codir-hard]
                                      [--teacher-epochs 3]

Arms ending in ``-backbone`` start from an unsolved student: the bundled backbone's own layers (the skip
mapping of its 6 onto 3, before any fine-tuning) with a new head, passed as ``--student``, instead of the
fine-tuned teacher's layers; they are paired with the ``kd`` arm like every other one.

Each finished arm (and the teacher) is saved under benchmarks/.work/codir_paired and skipped when re-run,
so the benchmark can be stopped and continued. Writes results/codir_paired_<task>.json, or
codir_paired_<task>_teacher<E>ep.json for a teacher fine-tuned E epochs instead of finetune's default 3.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from _models import ROOT, WORK, write_result
from _models import run_cli as run

SAVED = WORK / "codir_paired"
TASKS = {  # name -> (--task, data folder, extra arguments)
    "banking77": ("classification", ROOT.parent / "shared" / "data" / "banking77",
                  ["--labels", ",".join((ROOT.parent / "shared/data/banking77/labels.txt").read_text().split())]),
}  # fmt: skip
HARD = ["--negative-sampling", "hard"]
ARMS = {  # name -> compress arguments
    "kd": ["--objective", "kd"],
    "mse": ["--objective", "mse"],
    "codir": ["--objective", "codir"],
    "codir-hard": ["--objective", "codir", *HARD],
    "codir-hard-each": ["--objective", "codir", *HARD, "--layer-contrast", "each"],
    "kd-backbone": ["--objective", "kd", "--student", "BACKBONE"],
    "codir-hard-each-backbone": ["--objective", "codir", *HARD, "--layer-contrast", "each", "--student", "BACKBONE"],
}
DEFAULT_TEACHER_EPOCHS = 3  # finetune's default


def work_dir(task: str, teacher_epochs: int) -> Path:
    return SAVED / (task if teacher_epochs == DEFAULT_TEACHER_EPOCHS else f"{task}-teacher{teacher_epochs}ep")


def teacher(task: str, teacher_epochs: int) -> Path:
    from codir_edge.models.checkpoint import default_backbone

    kind, data, extra = TASKS[task]
    out = work_dir(task, teacher_epochs) / "teacher"
    if not (out / "config.json").is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        seconds = run(["finetune", "--model", default_backbone(), "--task", kind, "--data", data, *extra, "--out", out,
                       "--epochs", teacher_epochs, "--overwrite", "--quiet"], out.parent / "teacher.log")  # fmt: skip
        (out.parent / "teacher_seconds.json").write_text(json.dumps(seconds))
    return out


def backbone_student(folder: Path, layers: int = 3) -> Path:
    """The bundled backbone's own layers, skip-mapped onto ``layers`` (no fine-tuning): a student that
    starts unsolved, as a `--student` folder (compress gives it a new classifier head)."""
    from transformers import AutoModel, AutoTokenizer

    from codir_edge.compress.student import skip_student
    from codir_edge.models.checkpoint import default_backbone

    out = folder / f"backbone-{layers}l"
    if not (out / "config.json").is_file():
        skip_student(AutoModel.from_pretrained(default_backbone()), layers).save_pretrained(out)
        AutoTokenizer.from_pretrained(default_backbone()).save_pretrained(out)
    return out


def test_predictions(model: Path, task: str) -> list[bool]:
    """Whether the model gets each test example right (batch 128, PyTorch, max length 128)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from codir_edge.data import DataSpec, get_task, load_split

    kind, data, extra = TASKS[task]
    labels = extra[extra.index("--labels") + 1].split(",")
    examples = load_split(get_task(kind), DataSpec(str(data)), "test", labels)
    tokenizer = AutoTokenizer.from_pretrained(model)
    classifier = AutoModelForSequenceClassification.from_pretrained(model).eval()
    order = [classifier.config.label2id[name] for name in labels]  # the model's ids in the task's label order
    right = []
    with torch.inference_mode():
        for start in range(0, len(examples), 128):
            batch = tokenizer(list(examples.texts[start : start + 128]), padding=True, truncation=True,
                              max_length=128, return_tensors="pt")  # fmt: skip
            predicted = classifier(**batch).logits.argmax(-1).tolist()
            targets = list(examples.targets[start : start + 128])
            right += [predicted[i] == order[int(t)] for i, t in enumerate(targets)]
    return right


def arm(task: str, name: str, seed: int, teacher_dir: Path) -> dict:
    folder = teacher_dir.parent
    saved = folder / f"{name}-s{seed}.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    kind, data, extra = TASKS[task]
    out = folder / f"{name}-s{seed}"
    banks = [x for done in sorted(folder.glob("*-s*")) if done.is_dir() for x in ("--cache-from", done)]
    options = [str(backbone_student(folder)) if a == "BACKBONE" else a for a in ARMS[name]]
    depth = [] if "--student" in options else ["--student-layers", "3"]  # a --student folder has its own depth
    seconds = run(["compress", "--teacher", teacher_dir, "--task", kind, "--data", data, *extra, *depth,
                   "--seed", seed, *options, "--out", out, *banks, "--overwrite", "--quiet"],
                  folder / f"{name}-s{seed}.log")  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    right = test_predictions(out, task)
    result = {"arm": name, "seed": seed, "wall_s": seconds, "dev": metrics["dev"],
              "test_accuracy": sum(right) / len(right), "right": right,
              "examples_per_s": metrics["train_examples_per_s"], "contrastive_end": metrics.get("contrastive_end"),
              "hard_negatives": metrics.get("hard_negatives"),
              "bank_seconds": metrics["bank"].get("build_seconds")}  # fmt: skip
    saved.write_text(json.dumps(result))
    return result


def mcnemar(ours: list[bool], kd: list[bool]) -> dict:
    """Exact two-sided McNemar test on paired predictions: the discordant pairs against a fair coin."""
    better = sum(a and not b for a, b in zip(ours, kd, strict=True))
    worse = sum(b and not a for a, b in zip(ours, kd, strict=True))
    n = better + worse
    tail = sum(math.comb(n, k) for k in range(0, min(better, worse) + 1)) / 2**n if n else 1.0
    return {"better": better, "worse": worse, "p": min(1.0, 2 * tail)}


def summary(results: dict[str, list[dict]], teacher_test: float) -> dict:
    kd = {r["seed"]: r for r in results["kd"]}
    out = {}
    for name, rows in results.items():
        rows = sorted(rows, key=lambda r: r["seed"])
        per_seed = {r["seed"]: r["test_accuracy"] for r in rows}
        entry = {"per_seed": per_seed, "mean": sum(per_seed.values()) / len(per_seed),
                 "of_teacher": sum(per_seed.values()) / len(per_seed) / teacher_test,
                 "wall_s": [r["wall_s"] for r in rows], "examples_per_s": [r["examples_per_s"] for r in rows],
                 "contrastive_end": {r["seed"]: r["contrastive_end"] for r in rows
                                     if r["contrastive_end"]}}  # fmt: skip
        if name != "kd":
            paired = [r for r in rows if r["seed"] in kd]
            entry["paired_minus_kd_points"] = {r["seed"]: 100 * (r["test_accuracy"] - kd[r["seed"]]["test_accuracy"])
                                               for r in paired}  # fmt: skip
            pooled = [x for r in paired for x in r["right"]], [x for r in paired for x in kd[r["seed"]]["right"]]
            entry["mcnemar_pooled"] = mcnemar(*pooled)
        out[name] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="banking77", choices=sorted(TASKS))
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--teacher-epochs", type=int, default=DEFAULT_TEACHER_EPOCHS)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = ["kd", *[a for a in args.arms.split(",") if a != "kd"]]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise SystemExit(f"unknown arm(s) {', '.join(unknown)}: choose from {', '.join(ARMS)}")
    teacher_dir = teacher(args.task, args.teacher_epochs)
    teacher_right = test_predictions(teacher_dir, args.task)
    teacher_test = sum(teacher_right) / len(teacher_right)
    results: dict[str, list[dict]] = {name: [] for name in arms}
    for seed in seeds:  # seed by seed, every arm: a stopped run leaves complete pairs behind
        for name in arms:
            results[name].append(arm(args.task, name, seed, teacher_dir))
            print(name, seed, results[name][-1]["test_accuracy"], flush=True)
    suffix = "" if args.teacher_epochs == DEFAULT_TEACHER_EPOCHS else f"_teacher{args.teacher_epochs}ep"
    seconds = teacher_dir.parent / "teacher_seconds.json"
    write_result(f"codir_paired_{args.task}{suffix}", {
        "task": args.task, "seeds": seeds, "teacher_test": teacher_test, "teacher_epochs": args.teacher_epochs,
        "teacher_wall_s": json.loads(seconds.read_text()) if seconds.is_file() else None,
        "arms": summary(results, teacher_test)})  # fmt: skip


if __name__ == "__main__":
    main()
