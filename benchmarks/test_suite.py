"""Time the README's test command as a newcomer runs it, here and at an earlier commit, side by side:
each in a fresh clone beside this checkout (so that ``../shared`` resolves), with CI's environment,
its set-up part (venv and install) and its checks (lint and the suite) timed apart.

    python benchmarks/test_suite.py [--baseline 22df184]

Each clone runs its own README's command. Each arm is saved when it finishes
(``benchmarks/.work/test_suite/<commit>.json``) and skipped when re-run, so a run cut short resumes.
Writes results/test_suite.json: both arms' wall times, pytest's counts, its own duration and its
slowest tests, the ratio of the checks' wall times, and the load average before each arm (the
machine is shared: a busy one runs the suite slower).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from _models import ROOT, WORK, write_result

CHECKS_START = ".venv/bin/ruff"  # where the README's command turns from setting up to checking


def readme_test_command(checkout: Path) -> str:
    """The command under "Run the tests" in ``checkout``'s README.md (the one .ci/run runs)."""
    text = (checkout / "README.md").read_text(encoding="utf-8")
    block = text.split("**Run the tests**", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return block.strip()


def timed(command: str, cwd: Path, env: dict, log) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)  # fmt: skip
    log.write(done.stdout)
    if done.returncode != 0:
        raise SystemExit(f"{command!r} failed in {cwd} (exit {done.returncode}); see the log")
    return time.perf_counter() - started, done.stdout


def slowest(output: str) -> list[dict]:
    """pytest's --durations table: [{"seconds", "when", "test"}], slowest first."""
    found = re.findall(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)$", output, flags=re.MULTILINE)
    return [{"seconds": float(s), "when": when, "test": test} for s, when, test in found]


def run_arm(commit: str) -> dict:
    """The README's test command in a fresh clone of ``commit``."""
    clone = ROOT.parent / f".codir-edge-suite-{commit}-{os.getpid()}"
    env = {**os.environ, "CI": "true", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for name in ("VIRTUAL_ENV", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER"):
        env.pop(name, None)
    log_path = WORK / "test_suite" / f"{commit}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "checkout", "-q", commit], cwd=clone, check=True)
        command = readme_test_command(clone)
        setup, checks = command.split(f" && {CHECKS_START}", 1)
        with open(log_path, "w") as log:
            setup_s, _ = timed(setup, clone, env, log)
            checks_s, output = timed(CHECKS_START + checks, clone, env, log)
    finally:
        shutil.rmtree(clone, ignore_errors=True)
    summary = re.findall(r"=+ (.*) in ([\d.]+)s", output)[-1]
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary[0])}
    return {"commit": commit, "command": command, "setup_s": setup_s, "checks_s": checks_s,
            "pytest_s": float(summary[1]), "counts": counts, "load_average_before": load_before,
            "slowest": slowest(output)[:20], "log": str(log_path)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default="22df184", help="the commit to compare with")
    args = parser.parse_args()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    arms = {}
    for commit in (args.baseline, head):
        saved = WORK / "test_suite" / f"{commit}.json"
        if not saved.is_file():
            saved.write_text(json.dumps(run_arm(commit), indent=2))
        arms[commit] = json.loads(saved.read_text())
        print(f"{commit}: set-up {arms[commit]['setup_s'] / 60:.1f} min, checks {arms[commit]['checks_s'] / 60:.1f} "
              f"min, {arms[commit]['counts']}", flush=True)  # fmt: skip
    now, before = arms[head], arms[args.baseline]
    path = write_result("test_suite", {
        **now, "cpus": os.cpu_count(), "baseline": before,
        "checks_ratio": now["checks_s"] / before["checks_s"], "pytest_ratio": now["pytest_s"] / before["pytest_s"],
    })  # fmt: skip
    print(f"checks {now['checks_s'] / before['checks_s']:.2f}x of {args.baseline}; wrote {path}")


if __name__ == "__main__":
    main()
