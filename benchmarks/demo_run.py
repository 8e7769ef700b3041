"""Time ``codir-edge demo`` end to end as a newcomer runs it (default settings, fresh output folder)
and record its stage times, its final table and the load average before it started (the machine is
shared). The README, ``demo --help`` and RESULTS.md quote this file's wall time
(tests/test_claims.py holds them to it).

    python benchmarks/demo_run.py [--out benchmarks/.work/demo]

The demo's own output goes to results/demo.log, redirected as in a CI job (progress as plain lines).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _models import ROOT, WORK, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WORK / "demo")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)  # a fresh run: nothing to skip
    load_before = os.getloadavg()
    started = time.perf_counter()
    log = ROOT / "benchmarks" / "results" / "demo.log"  # what a CI job sees: output redirected, no terminal
    with open(log, "w") as handle:
        command = [sys.executable, "-m", "codir_edge", "demo", "--out", str(args.out)]
        subprocess.run(command, check=True, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started

    from codir_edge.pipeline.demo import demo_rows

    stages = json.loads((args.out / ".pipeline" / "last-run.json").read_text())["stages"]
    rows = [dataclasses.asdict(row) for row in demo_rows(args.out)]
    path = write_result("demo", {"wall_s": wall, "stages": stages, "rows": rows, "out": str(args.out),
                                 "load_average_before": load_before, "cpus": os.cpu_count()})  # fmt: skip
    print(f"demo: {wall / 60:.1f} min; wrote {path}")


if __name__ == "__main__":
    main()
