"""The README's profile example on the demo's models: the teacher (PyTorch) and every bundle
variant, at 1 and 2 threads, lengths 16, 64, 128 and the real SST-2 dev sentences, with accuracy;
writes the two PNGs the README shows and the report behind them.

    python benchmarks/profile_plots.py [--demo benchmarks/.work/demo]

Runs ``benchmarks/demo_run.py``'s demo first when its folder is missing (a fresh clone).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from _models import ROOT, WORK

RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "data" / "glue" / "SST-2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default=WORK / "demo")
    args = parser.parse_args()
    demo = ROOT / args.demo
    if not (demo / "bundle" / "manifest.json").is_file():
        subprocess.run([sys.executable, "benchmarks/demo_run.py", "--out", str(demo)], check=True, cwd=ROOT)
    command = [
        sys.executable, "-m", "codir_edge", "profile", str(demo / "teacher"), str(demo / "bundle"),
        "--threads", "1,2", "--batch-sizes", "1", "--seq-lens", "16,64,128,real", "--runs", "100",
        "--task", "sst2", "--data", str(DATA),
        "--json", str(RESULTS / "profile_sweep.json"), "--plot", str(RESULTS / "profile_sweep.png"),
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
