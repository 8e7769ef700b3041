"""CoDIR against KD, paired: one MiniLM teacher fine-tuned per task, 3-layer students distilled with
each objective over several seeds, every arm with one seed drawing the same batches and dropout
masks (the heads have their own generator), scored on the task's held-out split: BANKING77's test
split; for the GLUE tasks (whose test splits have no labels) the dev split, on which nothing was tuned here.
Tasks: ``banking77`` (77 intents), ``sst2-1k`` (1,000 labels plus the rest of SST-2's training text,
unlabelled) and ``mrpc`` (sentence pairs).

Per task and arm: accuracy per seed and its mean, the paired per-seed difference against
``kd``, McNemar's exact test on the pooled predictions (discordant pairs against ``kd``), the
contrastive term at the end of training (top-1, gradient share: is it still teaching?), wall time
and examples per second. Choices were made on dev (the defaults); test is only reported.

    python benchmarks/codir_paired.py [--task banking77] [--seeds 1,2,3] [--arms kd,mse,codir,codir-hard]
                                      [--teacher-epochs 3]

Arms ending in ``-backbone`` start from an unsolved student: the bundled backbone's own layers (the skip
mapping of its 6 onto 3, before any fine-tuning) with a new head, passed as ``--student``, instead of the
fine-tuned teacher's layers; they are paired with ``kd-backbone``, the ``kd`` arm from the same start.

Each finished arm (and the teacher) is saved under benchmarks/.work/codir_paired and skipped when re-run,
so the benchmark can be stopped and continued; the arms an earlier result of the same teacher holds and a
run leaves out are kept in it when that run's ``kd`` scored the same on every seed. Writes
results/codir_paired_<task>.json, or codir_paired_<task>_teacher<E>ep.json for a teacher fine-tuned E epochs
instead of finetune's default 3.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

from _models import RESULTS, ROOT, WORK, write_result
from _models import run_cli as run

SAVED = WORK / "codir_paired"
SHARED = ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Task:
    """A benchmarked task: the teacher's recipe, what every student arm shares, and the split reported
    (``test``; GLUE's dev split where its test split has no labels, the choices being the defaults)."""

    kind: str  # --task of finetune and compress
    data: Path  # the teacher's data, and the students' unless ``few_labels``
    split: str
    labels: tuple[str, ...] = ()  # --labels for custom classification data
    teacher_epochs: int = 3  # finetune's default
    teacher_args: tuple = ()
    student_args: tuple = ()
    few_labels: int | None = None  # SST-2 only: this many labelled rows, the rest unlabelled (transfer_set.py's split)


TASKS = {
    "banking77": Task("classification", SHARED / "banking77", "test",
                      labels=tuple((SHARED / "banking77" / "labels.txt").read_text().split())),
    # the transfer-set setting: 1,000 labels plus SST-2's other training sentences, unlabelled, 1 epoch of
    # 16,000 of them (as benchmarks/transfer_set.py); the teacher as vocab_pruning.py's (20,000 rows, 1 epoch)
    "sst2-1k": Task("sst2", SHARED / "glue" / "SST-2", "dev", teacher_epochs=1,
                    teacher_args=("--max-length", "64", "--max-train-samples", "20000", "--seed", "42"),
                    student_args=("--epochs", "1", "--max-length", "64", "--unlabeled-per-epoch", "16000"),
                    few_labels=1000),
    "mrpc": Task("mrpc", SHARED / "glue" / "MRPC", "dev"),
}  # fmt: skip
HARD = ["--negative-sampling", "hard"]
ARMS = {  # name -> compress arguments
    "kd": ["--objective", "kd"],
    "mse": ["--objective", "mse"],
    "codir": ["--objective", "codir"],
    "codir-hard": ["--objective", "codir", *HARD],
    "codir-hard-each": ["--objective", "codir", *HARD, "--layer-contrast", "each"],
    "codir-instance": ["--objective", "codir", "--negative-sampling", "instance"],
    "codir-instance-each": ["--objective", "codir", "--negative-sampling", "instance", "--layer-contrast", "each"],
    "kd-backbone": ["--objective", "kd", "--student", "BACKBONE"],
    "codir-hard-each-backbone": ["--objective", "codir", *HARD, "--layer-contrast", "each", "--student", "BACKBONE"],
}


def labels_args(task: Task) -> list[str]:
    return ["--labels", ",".join(task.labels)] if task.labels else []


def work_dir(name: str, teacher_epochs: int) -> Path:
    default = teacher_epochs == TASKS[name].teacher_epochs
    return SAVED / (name if default else f"{name}-teacher{teacher_epochs}ep")


def teacher(name: str, teacher_epochs: int) -> Path:
    from codir_edge.models.checkpoint import default_backbone

    task = TASKS[name]
    out = work_dir(name, teacher_epochs) / "teacher"
    if not (out / "config.json").is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        seconds = run(["finetune", "--model", default_backbone(), "--task", task.kind, "--data", task.data,
                       *labels_args(task), *task.teacher_args, "--out", out, "--epochs", teacher_epochs, "--overwrite",
                       "--quiet"], out.parent / "teacher.log")  # fmt: skip
        (out.parent / "teacher_seconds.json").write_text(json.dumps(seconds))
    return out


def student_data(task: Task) -> tuple[Path, list[str]]:
    """(the students' --data, their --unlabeled arguments): the task's data, or for ``few_labels`` the
    transfer-set benchmark's own split of SST-2 (that many labelled train rows beside the real dev split,
    the rest of train with its labels dropped), so both benchmarks train on the same rows."""
    if task.few_labels is None:
        return task.data, []
    from transfer_set import split_data

    data, text = split_data(task.few_labels)
    return data, ["--unlabeled", str(text)]


def test_predictions(model: Path, name: str) -> list[bool]:
    """Whether the model gets each example of the task's reported split right (batch 128, PyTorch, max
    length 128)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from codir_edge.data import DataSpec, get_task, load_split
    from codir_edge.data.labels import label_set

    task = TASKS[name]
    spec = get_task(task.kind)
    labels = label_set(spec, given=list(task.labels))
    examples = load_split(spec, DataSpec(str(task.data)), task.split, labels)
    tokenizer = AutoTokenizer.from_pretrained(model)
    classifier = AutoModelForSequenceClassification.from_pretrained(model).eval()
    order = [classifier.config.label2id[label] for label in labels]  # the model's ids in the task's label order
    right = []
    with torch.inference_mode():
        for start in range(0, len(examples), 128):
            chunk = slice(start, start + 128)
            pairs = None if examples.text_pairs is None else list(examples.text_pairs[chunk])
            batch = tokenizer(list(examples.texts[chunk]), pairs, padding=True, truncation=True, max_length=128,
                              return_tensors="pt")  # fmt: skip
            predicted = classifier(**batch).logits.argmax(-1).tolist()
            right += [predicted[i] == order[int(t)] for i, t in enumerate(examples.targets[chunk])]
    return right


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


def arm(task: str, name: str, seed: int, teacher_dir: Path) -> dict:
    folder = teacher_dir.parent
    saved = folder / f"{name}-s{seed}.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    spec = TASKS[task]
    data, unlabeled = student_data(spec)
    out = folder / f"{name}-s{seed}"
    banks = [x for done in sorted(folder.glob("*-s*")) if done.is_dir() for x in ("--cache-from", done)]
    options = [str(backbone_student(folder)) if a == "BACKBONE" else a for a in ARMS[name]]
    depth = [] if "--student" in options else ["--student-layers", "3"]  # a --student folder has its own depth
    seconds = run(["compress", "--teacher", teacher_dir, "--task", spec.kind, "--data", data, *labels_args(spec),
                   *unlabeled, *spec.student_args, *depth, "--seed", seed, *options, "--out", out, *banks,
                   "--overwrite", "--quiet"],
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


def baseline_of(name: str, arms) -> str:
    """The kd arm an arm is paired with: the one from the same start (``kd-backbone`` for the other
    ``-backbone`` arms), else ``kd``."""
    if name.endswith("-backbone") and name != "kd-backbone" and "kd-backbone" in arms:
        return "kd-backbone"
    return "kd"


def summary(results: dict[str, list[dict]], teacher_test: float) -> dict:
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
            base = baseline_of(name, results)
            kd = {r["seed"]: r for r in results[base]}
            paired = [r for r in rows if r["seed"] in kd]
            entry["paired_against"] = base
            entry["paired_minus_kd_points"] = {r["seed"]: 100 * (r["test_accuracy"] - kd[r["seed"]]["test_accuracy"])
                                               for r in paired}  # fmt: skip
            pooled = [x for r in paired for x in r["right"]], [x for r in paired for x in kd[r["seed"]]["right"]]
            entry["mcnemar_pooled"] = mcnemar(*pooled)
        out[name] = entry
    return out


def with_earlier_arms(name: str, arms: dict, teacher_test: float) -> dict:
    """``arms`` plus the arms an earlier result of the same task and teacher holds and this run did not
    train (their per-arm files may be gone with an old work folder): kept only when the teacher and
    ``kd`` scored exactly as they do now, so every carried pairing is still against the same ``kd``."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return arms
    earlier = json.loads(path.read_text())
    same_kd = "kd" in arms and earlier["arms"].get("kd", {}).get("per_seed") == {
        str(k): v for k, v in arms["kd"]["per_seed"].items()}  # fmt: skip
    if earlier["teacher_test"] != teacher_test or not same_kd:
        print(f"not keeping {path.name}'s other arms: its teacher or kd scored differently", flush=True)
        return arms
    merged = {arm_name: arms.get(arm_name, arm) for arm_name, arm in earlier["arms"].items()}  # earlier order
    return merged | {arm_name: arm for arm_name, arm in arms.items() if arm_name not in merged}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="banking77", choices=sorted(TASKS))
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--teacher-epochs", type=int, help="default: the task's (3; sst2-1k: 1)")
    parser.add_argument("--saved-only", action="store_true",
                        help="train nothing: write the result from the arms and seeds already saved")  # fmt: skip
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = ["kd", *[a for a in args.arms.split(",") if a != "kd"]]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise SystemExit(f"unknown arm(s) {', '.join(unknown)}: choose from {', '.join(ARMS)}")
    epochs = args.teacher_epochs or TASKS[args.task].teacher_epochs
    teacher_dir = teacher(args.task, epochs)
    teacher_right = test_predictions(teacher_dir, args.task)
    teacher_test = sum(teacher_right) / len(teacher_right)
    results: dict[str, list[dict]] = {name: [] for name in arms}
    for seed in seeds:  # seed by seed, every arm: a stopped run leaves complete pairs behind
        for name in arms:
            if args.saved_only and not (teacher_dir.parent / f"{name}-s{seed}.json").is_file():
                continue
            results[name].append(arm(args.task, name, seed, teacher_dir))
            print(name, seed, results[name][-1]["test_accuracy"], flush=True)
    results = {name: rows for name, rows in results.items() if rows}
    suffix = "" if epochs == TASKS[args.task].teacher_epochs else f"_teacher{epochs}ep"
    seconds = teacher_dir.parent / "teacher_seconds.json"
    name = f"codir_paired_{args.task}{suffix}"
    arms_summary = with_earlier_arms(name, summary(results, teacher_test), teacher_test)
    write_result(name, {
        "task": args.task, "seeds": seeds, "teacher_test": teacher_test, "teacher_epochs": epochs,
        "split": TASKS[args.task].split, "teacher_args": list(TASKS[args.task].teacher_args),
        "student_args": list(TASKS[args.task].student_args), "few_labels": TASKS[args.task].few_labels,
        "teacher_wall_s": json.loads(seconds.read_text()) if seconds.is_file() else None,
        "arms": arms_summary})  # fmt: skip


if __name__ == "__main__":
    main()
