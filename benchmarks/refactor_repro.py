"""Do the training-spine refactor's numbers match the recorded ones? Re-runs, from a fresh clone,
the runs the refactor must reproduce exactly, through the same benchmark code that recorded them:

- ``compress_quality.py``'s SST-2 3-layer ``codir`` and ``kd`` students, seed 1 (1 epoch, max length
  64, the sweep's codir setting), from the README's SST-2 teacher (``runs/teacher-sst2``, made here with
  the README's ``finetune`` command when missing: itself a check that finetune still trains the same);
- ``codir_pre.py``'s skip arm on MRPC (CoDIR-Fine from the skip-initialised student, seeds 1 and 2),
  from the MRPC teacher that benchmark fine-tunes.

Writes ``results/refactor_repro.json``: each figure recorded and reproduced, and whether they are equal.

    python benchmarks/refactor_repro.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import codir_pre
import compress_quality
from _models import RESULTS, ROOT, write_result

TEACHER = ROOT / "runs" / "teacher-sst2"


def sst2_teacher() -> float:
    """The README's finetune command on the full SST-2 train set (made when missing); its dev accuracy."""
    if not (TEACHER / "metrics.json").is_file():
        started = time.perf_counter()
        command = [sys.executable, "-m", "codir_edge", "finetune", "--task", "sst2", "--data",
                   str(compress_quality.GLUE), "--out", str(TEACHER), "--quiet"]  # fmt: skip
        subprocess.run(command, check=True)
        print(f"teacher-sst2: {time.perf_counter() - started:.0f} s", flush=True)
    return json.loads((TEACHER / "metrics.json").read_text())["dev"]["accuracy"]


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    quality = json.loads((RESULTS / "compress_quality.json").read_text())
    pre = json.loads((RESULTS / "codir_pre.json").read_text())
    rows = [{"what": "SST-2 teacher (README finetune)", "recorded": quality["teacher_accuracy"],
             "reproduced": sst2_teacher()}]  # fmt: skip
    args = argparse.Namespace(teacher=TEACHER, task="sst2", layers=3, epochs=quality["epochs"],
                              max_length=quality["max_length"])  # fmt: skip
    for objective in ("codir", "kd"):
        extra = quality["codir_setting"] if objective == "codir" else {}
        result = compress_quality.compress(f"final-{objective}-s1", objective, 1, args, extra, None)
        recorded = quality["objectives"][objective]["accuracy"][quality["seeds"].index(1)]
        rows.append({"what": f"SST-2 3-layer {objective}, seed 1", "recorded": recorded,
                     "reproduced": result["student_score"], "seconds": result["wall_time_s"]})  # fmt: skip
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
