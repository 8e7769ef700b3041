"""Do the training-spine refactor's numbers match the recorded ones? Re-runs, from a fresh clone,
the runs the refactor must reproduce exactly, through the same benchmark code that recorded them:

- ``compress_quality.py``'s SST-2 3-layer ``codir`` and ``kd`` students, seed 1 (1 epoch, max length
  64, the sweep's codir setting), from the README's SST-2 teacher (``runs/teacher-sst2``, made here with
  the README's ``finetune`` command when missing: itself a check that finetune still trains the same);
- ``codir_pre.py``'s skip arm on MRPC (CoDIR-Fine from the skip-initialised student, seeds 1 and 2),
  from the MRPC teacher that benchmark fine-tunes.

With ``--before REV`` the SST-2 students are also trained by the code at REV (checked out with
``git worktree`` under ``.work/``) from the same teacher and settings: the recorded SST-2 figures come
from a teacher made by an earlier, unidentified version of finetune, so equality on one teacher is the
check that holds there.

Writes ``results/refactor_repro.json``: each figure recorded (or made by REV) and reproduced, and
whether they are equal.

    python benchmarks/refactor_repro.py [--before 5706f9b]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import codir_pre
import compress_quality
from _models import RESULTS, ROOT, WORK, write_result

TEACHER = ROOT / "runs" / "teacher-sst2"


def before_refactor(rev: str, name: str, objective: str, args, extra: dict) -> dict:
    """``compress_quality.compress`` as the code at ``rev`` runs it: same teacher, data and settings."""
    tree = WORK / f"before-{rev}"
    if not tree.is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT, check=True)
    report = WORK / "compress-before" / f"{name}.json"
    if not report.is_file():
        report.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "codir_edge", "compress", "--teacher", str(args.teacher), "--task", "sst2",
                   "--data", str(compress_quality.GLUE), "--out", str(report.with_suffix("")), "--objective", objective,
                   "--student-layers", str(args.layers), "--epochs", str(args.epochs), "--max-length",
                   str(args.max_length), "--seed", "1", "--overwrite", "--quiet", "--json", str(report),
                   "--checkpoint-every", "0"]  # fmt: skip
        for key, value in extra.items():
            command += [f"--{key.replace('_', '-')}", str(value)]
        subprocess.run(command, cwd=tree, check=True)  # the worktree's package comes first on sys.path
    return json.loads(report.read_text())


def sst2_teacher() -> None:
    """The README's finetune command on the full SST-2 train set, made when missing."""
    if not (TEACHER / "metrics.json").is_file():
        started = time.perf_counter()
        command = [sys.executable, "-m", "codir_edge", "finetune", "--task", "sst2", "--data",
                   str(compress_quality.GLUE), "--out", str(TEACHER), "--quiet"]  # fmt: skip
        subprocess.run(command, check=True)
        print(f"teacher-sst2: {time.perf_counter() - started:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="also train the SST-2 students with the code at this revision")
    options = parser.parse_args()
    quality = json.loads((RESULTS / "compress_quality.json").read_text())
    pre = json.loads((RESULTS / "codir_pre.json").read_text())
    sst2_teacher()
    rows = []
    args = argparse.Namespace(teacher=TEACHER, task="sst2", layers=3, epochs=quality["epochs"],
                              max_length=quality["max_length"])  # fmt: skip
    for objective in ("codir", "kd"):
        extra = quality["codir_setting"] if objective == "codir" else {}
        result = compress_quality.compress(f"final-{objective}-s1", objective, 1, args, extra, None)
        recorded = quality["objectives"][objective]["accuracy"][quality["seeds"].index(1)]
        if objective == "codir":  # the teacher on dev at the students' max length, as compress_quality records it
            rows.append({"what": "SST-2 teacher (README finetune), dev at max length 64",
                         "recorded": quality["teacher_accuracy"], "reproduced": result["teacher_score"]})  # fmt: skip
        rows.append({"what": f"SST-2 3-layer {objective}, seed 1", "recorded": recorded,
                     "reproduced": result["student_score"], "seconds": result["wall_time_s"]})  # fmt: skip
        if options.before:
            old = before_refactor(options.before, f"final-{objective}-s1", objective, args, extra)
            rows.append({"what": f"SST-2 3-layer {objective}, seed 1, same teacher: code at {options.before}",
                         "recorded": old["student_score"], "reproduced": result["student_score"]})  # fmt: skip
    skip = pre["rows"]["mrpc/skip"]
    for seed in (1, 2):
        result = codir_pre.fine_stage("mrpc", "skip", seed, general=None)
        rows.append({"what": f"MRPC skip arm (codir_pre.py), seed {seed}", "recorded": skip["scores"][seed - 1],
                     "reproduced": result["student_score"], "seconds": result["wall_time_s"]})  # fmt: skip
    rows.append({"what": "MRPC teacher F1", "recorded": skip["teacher"], "reproduced": result["teacher_score"]})
    for row in rows:
        row["exact"] = row["recorded"] == row["reproduced"]
        print(f"{row['what']:<42} recorded {row['recorded']:.6f}  reproduced {row['reproduced']:.6f}  "
              f"{'exact' if row['exact'] else 'DIFFERS'}")  # fmt: skip
    write_result("refactor_repro", {"rows": rows})


if __name__ == "__main__":
    main()
