"""Time the README's test command as a newcomer runs it: in a fresh clone of HEAD beside this
checkout (so that ``../shared`` resolves), with CI's environment, its set-up part (venv and install)
and its checks (lint and the suite) timed apart.

    python benchmarks/test_suite.py

Writes results/test_suite.json: both wall times, pytest's counts and its own duration, and the load
average before the run (the machine is shared: a busy one runs the suite slower).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from _models import ROOT, write_result

CHECKS_START = ".venv/bin/ruff"  # where the README's command turns from setting up to checking


def readme_test_command() -> str:
    """The command under "Run the tests" in README.md (the one .ci/run runs)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("**Run the tests**", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return block.strip()


def timed(command: str, cwd: Path, env: dict, log) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)  # fmt: skip
    log.write(done.stdout)
    if done.returncode != 0:
        raise SystemExit(f"{command!r} failed (exit {done.returncode}); see the log")
    return time.perf_counter() - started, done.stdout


def main() -> None:
    command = readme_test_command()
    setup, checks = command.split(f" && {CHECKS_START}", 1)
    checks = CHECKS_START + checks
    clone = ROOT.parent / f".codir-edge-suite-{os.getpid()}"
    load_before = os.getloadavg()
    env = {**os.environ, "CI": "true", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("VIRTUAL_ENV", None)
    log_path = ROOT / "benchmarks" / ".work" / "test_suite.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        with open(log_path, "w") as log:
            setup_s, _ = timed(setup, clone, env, log)
            checks_s, output = timed(checks, clone, env, log)
    finally:
        shutil.rmtree(clone, ignore_errors=True)
    summary = re.findall(r"=+ (.*) in ([\d.]+)s", output)[-1]
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary[0])}
    path = write_result("test_suite", {
        "command": command, "setup_s": setup_s, "checks_s": checks_s, "pytest_s": float(summary[1]),
        "counts": counts, "load_average_before": load_before, "cpus": os.cpu_count(), "log": str(log_path),
    })  # fmt: skip
    print(f"set-up {setup_s / 60:.1f} min, checks {checks_s / 60:.1f} min, {counts}; wrote {path}")


if __name__ == "__main__":
    main()
