"""Wall time of the demo's export of its student, here and at an earlier commit, side by side:
the code at ``--baseline`` (22df184: tuning timed every candidate five rounds and scored every INT8
candidate), today's on a cold cache (a first export) and today's again on the cache the first left
(re-exporting an unchanged student, as every CI run of one does).

    python benchmarks/export_speed.py [--baseline 22df184] [--repeats 2]

The student is the demo's (``runs/demo/student``); when it is missing, the README's demo makes it
first (about 14 minutes). Each commit runs from its own ``git worktree`` with this environment, as
``python -m codir_edge export STUDENT --out ... --task sst2 --data ../shared/data/glue --max-length
128`` (the demo's export). Repeats interleave the arms so that machine noise hits all of them; each
finished export is saved (``benchmarks/.work/export_speed/``) and skipped when re-run. Writes
results/export_speed.json: every wall time, the medians and ratios, and each arm's choices per
thread count (fp32 and INT8 graph) to show that the faster tuner picks what the old one picked.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _models import ROOT, WORK, demo_student, write_result

SAVED = WORK / "export_speed"


def checkout(commit: str) -> Path:
    """A worktree of ``commit`` (its own code, this environment)."""
    tree = SAVED / f"tree-{commit}"
    if not (tree / "codir_edge").is_dir():
        shutil.rmtree(tree, ignore_errors=True)
        subprocess.run(["git", "worktree", "add", "-f", "--detach", str(tree), commit], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
    return tree


def export_once(code: Path, model: Path, out: Path, cache: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "CODIR_EDGE_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "codir_edge", "export", str(model), "--out", str(out), "--task", "sst2",
               "--data", str(ROOT.parent / "shared" / "data" / "glue"), "--max-length", "128", "--overwrite",
               "--quiet"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"export failed in {code}: {done.stderr.strip().splitlines()[-1:]}")
    manifest = json.loads((out / "manifest.json").read_text())
    per_threads = manifest.get("tuning", {}).get("per_threads", {})
    choices = {t: {kind: (c or {}).get("chosen") for kind, c in picks.items()} for t, picks in per_threads.items()}
    return {"wall_s": wall, "choices": choices, "deployment": manifest["deployment"]["threads"],
            "from_cache": manifest.get("tuning", {}).get("from_cache", False)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default="22df184")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    load_before = os.getloadavg()
    SAVED.mkdir(parents=True, exist_ok=True)
    model = demo_student()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    trees = {args.baseline: checkout(args.baseline), head: ROOT}
    runs: dict[str, list[dict]] = {"baseline": [], "first": [], "again": []}
    for repeat in range(args.repeats):
        cache = SAVED / f"cache-{head}-{repeat}"
        arms = [("baseline", args.baseline), ("first", head), ("again", head)]
        for arm, commit in arms if repeat % 2 == 0 else [arms[1], arms[2], arms[0]]:
            saved = SAVED / f"{arm}-{commit}-{repeat}.json"
            if not saved.is_file():
                if arm == "first":
                    shutil.rmtree(cache, ignore_errors=True)  # a cold cache: nothing worked out before
                result = export_once(trees[commit], model, SAVED / f"bundle-{arm}", cache)
                saved.write_text(json.dumps(result))
            runs[arm].append(json.loads(saved.read_text()))
            print(f"{arm} ({commit}), repeat {repeat}: {runs[arm][-1]['wall_s']:.0f} s", flush=True)
    median = {arm: statistics.median(r["wall_s"] for r in rows) for arm, rows in runs.items()}
    path = write_result("export_speed", {
        "baseline": args.baseline, "head": head, "student": str(model), "runs": runs, "median_s": median,
        "first_ratio": median["first"] / median["baseline"], "again_ratio": median["again"] / median["baseline"],
        "load_average_before": load_before, "cpus": os.cpu_count(),
    })  # fmt: skip
    first, again = median["first"] / median["baseline"], median["again"] / median["baseline"]
    print(f"first export {first:.2f}x, re-export {again:.2f}x of {args.baseline}; wrote {path}")


if __name__ == "__main__":
    main()
