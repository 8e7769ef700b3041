"""CoDIR-Pre then CoDIR-Fine, against CoDIR-Fine from skip initialisation alone (issue 8).

1. Corpus: every sentence of the GLUE files in ../shared/data/glue, labels dropped, except the dev
   sets the fine stage is scored on (SST-2 and MRPC dev), so no evaluated sentence is pre-trained on.
   Built as a GLUE-shaped folder of links, which ``compress --stage pre --data`` reads as it would
   the glue root.
2. Pre stage, once: the bundled all-MiniLM-L6-v2 (a bare BertModel: no MLM head, so the contrastive
   term alone) into a 3-layer general student.
3. Fine stage on SST-2 and MRPC, over seeds: the task teacher of ``compress_quality.py`` into a
   3-layer student, codir objective, from the general student (``--student``) and from skip
   initialisation (``--student-layers 3``), same epochs, length and CoDIR setting as that benchmark.

Runs through the ``codir-edge compress`` command; finished runs are kept (re-running resumes the
benchmark). Prints a table and writes ``results/codir_pre.json``.

    python benchmarks/codir_pre.py [--seeds 1 2] [--pre-epochs 1] [--tasks sst2 mrpc]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _models import WORK, teacher_folder, write_result
from compress_quality import GLUE, task_teacher

OUT = WORK / "pre"
SCORED_DEV = {"SST-2": "dev.tsv", "MRPC": "dev.tsv"}
# The fine-stage settings of compress_quality.py's results for these tasks.
FINE = {"sst2": {"epochs": 1, "max_length": 64}, "mrpc": {"epochs": 2, "max_length": 128}}


def corpus_folder() -> Path:
    """GLUE-shaped folder of links to every GLUE file except the scored dev sets."""
    folder = OUT / "corpus"
    for task in sorted(p for p in GLUE.iterdir() if p.is_dir()):
        for file in sorted(task.glob("*.tsv")):
            if SCORED_DEV.get(task.name) == file.name:
                continue
            link = folder / task.name / file.name
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(file.resolve(), link)
    return folder


def run(name: str, command: list[str]) -> dict:
    report = OUT / f"{name}.json"
    if report.is_file():
        return json.loads(report.read_text())
    started = time.perf_counter()
    full = [sys.executable, "-m", "codir_edge", "compress", *command, "--overwrite", "--quiet", "--json", str(report)]
    done = subprocess.run(full, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    result = json.loads(report.read_text())
    result["command_seconds"] = time.perf_counter() - started
    report.write_text(json.dumps(result, indent=2))
    return result


def pre_stage(args) -> tuple[Path, dict]:
    from codir_edge.models.checkpoint import default_backbone

    out = OUT / "general-3l"
    result = run(
        "general-3l",
        [
            "--stage", "pre", "--teacher", str(default_backbone()), "--data", str(corpus_folder()), "--out", str(out),
            "--student-layers", "3", "--epochs", str(args.pre_epochs), "--max-length", str(args.pre_max_length),
            "--seed", "1", "--checkpoint-every", "0",
        ],
    )  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    print(
        f"pre stage: {metrics['train_examples']} texts, {args.pre_epochs} epoch(s), "
        f"bank {result['bank']['build_seconds']:.0f} s, "
        f"training {metrics['train_seconds']:.0f} s ({metrics['train_examples_per_s']:.0f} texts/s), "
        f"held-out retrieval top-1 {result['retrieval_top1']:.4f}",
        flush=True,
    )
    return out, metrics


def held_out_cka(general: Path, corpus: Path, metrics: dict) -> dict:
    """Linear CKA with the teacher on the pre stage's held-out texts, for the skip-initialised student
    and the general one: the stage's head-free measure of what it changed (recomputed here so that
    it does not depend on the version that trained the general student)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from codir_edge.compress.bank.build import compute_summaries as compute_bank
    from codir_edge.compress.pre import split_corpus
    from codir_edge.compress.pre_scores import linear_cka
    from codir_edge.compress.student import layer_map, skip_student
    from codir_edge.data.corpus import read_corpus
    from codir_edge.data.encode import encode
    from codir_edge.data.examples import Examples
    from codir_edge.models.checkpoint import default_backbone
    from codir_edge.models.runtime import resolve_runtime
    from codir_edge.training.distributed import Dist

    config = metrics["config"]
    texts = read_corpus(corpus).texts
    _, held = split_corpus(texts, config["held_out"], config["seed"])
    tokenizer = AutoTokenizer.from_pretrained(str(general))
    encoded = encode(tokenizer, Examples(held, None, [0] * len(held), "held-out"), config["max_length"])
    runtime = resolve_runtime("cpu", "fp32")
    teacher = AutoModel.from_pretrained(str(default_backbone()))
    torch.manual_seed(config["seed"])
    students = {"skip": skip_student(teacher, 3), "pre": AutoModel.from_pretrained(str(general))}

    def summaries(model, layers):
        return compute_bank(model, encoded, layers, config["pooling"], runtime, 128, Dist(), with_logits=False)[0]

    target = summaries(teacher, layer_map(6, 3)).float()
    return {name: linear_cka(summaries(model, [1, 2, 3]).float(), target) for name, model in students.items()}


def fine_stage(task: str, init: str, seed: int, general: Path) -> dict:
    teacher = teacher_folder() if task == "sst2" else task_teacher(task)
    setting = FINE[task]
    out = OUT / f"{task}-{init}-s{seed}"
    start = ["--student", str(general)] if init == "pre" else ["--student-layers", "3"]
    command = [
        "--task", task, "--teacher", str(teacher), "--data", str(GLUE), "--out", str(out), *start,
        "--objective", "codir", "--epochs", str(setting["epochs"]), "--max-length", str(setting["max_length"]),
        "--seed", str(seed), "--checkpoint-every", "0",
    ]  # fmt: skip
    for other in sorted(OUT.glob(f"{task}-*")):
        if other.is_dir() and (other / "cache").is_dir():
            command += ["--cache-from", str(other)]
    result = run(out.name, command)
    print(f"{out.name}: {result['metric']} {result['student_score']:.4f} ({result['wall_time_s']:.0f} s)", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tasks", nargs="+", default=["mrpc", "sst2"], choices=sorted(FINE))
    parser.add_argument("--pre-epochs", type=int, default=1)
    parser.add_argument("--pre-max-length", type=int, default=64)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    general, pre_metrics = pre_stage(args)
    cka = held_out_cka(general, corpus_folder(), pre_metrics)
    print(f"held-out CKA with the teacher: skip init {cka['skip']:.4f}, after the pre stage {cka['pre']:.4f}")
    rows = {}
    for task in args.tasks:
        for init in ("pre", "skip"):
            results = [fine_stage(task, init, seed, general) for seed in args.seeds]
            scores = [r["student_score"] for r in results]
            rows[f"{task}/{init}"] = {
                "task": task,
                "init": init,
                "metric": results[0]["metric"],
                "scores": scores,
                "mean": statistics.mean(scores),
                "spread": (max(scores) - min(scores)) / 2,
                "teacher": results[0]["teacher_score"],
                "fine_seconds": [r["wall_time_s"] for r in results],
            }
    print(f"\n{'task':<6} {'init':<5} {'metric':<9} {'mean':>7} {'± half-range':>13} {'of teacher':>11}  seeds")
    for row in rows.values():
        seeds = " ".join(f"{s:.4f}" for s in row["scores"])
        share = row["mean"] / row["teacher"]
        print(
            f"{row['task']:<6} {row['init']:<5} {row['metric']:<9} {row['mean']:>7.4f} {row['spread']:>13.4f} "
            f"{share:>11.3%}  {seeds}"
        )
    pre_cost = {
        "corpus_texts": pre_metrics["corpus"]["texts"],
        "train_texts": pre_metrics["train_examples"],
        "held_out": pre_metrics["held_out_examples"],
        "epochs": args.pre_epochs,
        "max_length": args.pre_max_length,
        "bank_seconds": pre_metrics["bank"]["build_seconds"],
        "bank_bytes": pre_metrics["bank"]["bytes"],
        "train_seconds": pre_metrics["train_seconds"],
        "wall_seconds": pre_metrics["wall_time_s"],
        "texts_per_s": pre_metrics["train_examples_per_s"],
        "retrieval_top1": pre_metrics["dev"]["retrieval_top1"],
        "held_out_cka": cka,
        "device": pre_metrics["device"],
    }
    print(
        f"\npre stage cost: {pre_cost['wall_seconds']:.0f} s wall ({pre_cost['bank_seconds']:.0f} s bank, "
        f"{pre_cost['train_seconds']:.0f} s training) on {pre_cost['device']}, once for every task"
    )
    write_result(
        "codir_pre",
        {"pre": pre_cost, "corpus_excludes": [f"{t}/{f}" for t, f in SCORED_DEV.items()], "fine": FINE, "rows": rows},
    )


if __name__ == "__main__":
    main()
