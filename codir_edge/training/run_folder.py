"""The working folder of a training run: checkpoints, the log and any cache, kept until the model
is complete.

It sits beside ``--out`` as ``.<name>.partial`` so that ``--out`` itself only ever holds a finished
model (written atomically at the end), while an interrupted run keeps everything ``--resume`` needs.
At the end the cache moves into ``--out/cache`` and the working folder is removed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO

from codir_edge.core.atomic import check_output_dir, staged_output_dir
from codir_edge.core.errors import InputError

CACHE_FOLDER = "cache"  # kept when a run starts over: what it holds is keyed, never stale
LOCK_FILE = ".lock"  # held by the running process (its pid inside), never copied into --out


def partial_dir(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    return out_dir.resolve().parent / f".{out_dir.name}.partial"


def prepare_run_dir(out_dir: Path, overwrite: bool, resume: bool, command: str) -> tuple[Path, IO]:
    """Check ``--out`` and the working folder against ``--overwrite`` / ``--resume`` and return the
    working folder, created, with its lock held (see ``_lock``). Starting over keeps the cache folder."""
    run_dir = partial_dir(out_dir)
    check_output_dir(out_dir, overwrite)
    if resume and overwrite:
        raise InputError(
            "--resume and --overwrite contradict each other: --resume continues a run, --overwrite starts over"
        )
    lock = _lock(run_dir, out_dir, command) if run_dir.exists() else None
    if run_dir.exists() and not (resume or overwrite):
        lock.close()
        raise InputError(
            f"an interrupted {command} run for {out_dir} is in {run_dir}: pass --resume to continue it "
            "or --overwrite to start over"
        )
    if run_dir.exists() and overwrite:
        for entry in run_dir.iterdir():
            if entry.name not in (CACHE_FOLDER, LOCK_FILE):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {run_dir} ({exc.strerror}): choose a writable --out") from exc
    return run_dir, lock or _lock(run_dir, out_dir, command)


def _lock(run_dir: Path, out_dir: Path, command: str) -> IO:
    """An exclusive lock on the working folder for as long as this run lives, so that a second run
    with the same ``--out`` started meanwhile stops at once instead of sharing its checkpoints. The
    kernel drops it when the process ends, however it ends: a killed run can be resumed."""
    import fcntl
    import os

    handle = open(run_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held open for the run's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if not isinstance(exc, BlockingIOError):  # a file system without locks (some NFS): run unguarded
            return handle
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise InputError(
            f"{out_dir} is being written by another {command} run (pid {holder}): wait for it to finish, then "
            "pass --overwrite to replace its output, or choose another --out"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


@contextlib.contextmanager
def training_run(config, out_dir: Path, overwrite: bool, resume: bool, command: str):
    """(dist, runtime, working folder) of a training run: the process group (one process, or this
    rank of a torchrun launch), its device and precision, and the checked working folder, locked
    by the first rank; the process group is shut down and the lock dropped however the run ends."""
    from codir_edge.models.runtime import resolve_runtime
    from codir_edge.training.distributed import barrier, init_distributed, rank_device, shutdown

    dist = init_distributed(config.device)
    lock = None
    try:
        runtime = resolve_runtime(rank_device(config.device, dist), config.precision)
        if dist.is_main:
            _, lock = prepare_run_dir(out_dir, overwrite, resume, command)
        barrier(dist)
        yield dist, runtime, partial_dir(out_dir)
    finally:
        if lock is not None:
            lock.close()
        shutdown(dist)


def write_output(
    out_dir: Path,
    overwrite: bool,
    run_dir: Path,
    write_model: Callable[[Path], None],
    metrics: dict,
    config_name: str,
    config: dict,
) -> None:
    """The finished model folder, written atomically: what ``write_model`` puts in it, metrics.json,
    the settings, train_log.jsonl and the cache; then the working folder goes. Rank 0 only."""
    with staged_output_dir(out_dir, overwrite) as stage:
        write_model(stage)
        (stage / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        (stage / config_name).write_text(json.dumps(config, indent=2) + "\n", "utf-8")
        shutil.copy2(run_dir / "train_log.jsonl", stage / "train_log.jsonl")
        if (run_dir / CACHE_FOLDER).is_dir():
            shutil.move(run_dir / CACHE_FOLDER, stage / CACHE_FOLDER)  # a rename: banks can be large
    shutil.rmtree(run_dir, ignore_errors=True)
