"""The working folder of a compress run: checkpoints, the teacher bank and the log, kept until the
student is complete.

It sits beside ``--out`` as ``.<name>.partial`` so that ``--out`` itself only ever holds a finished
student (written atomically at the end), while an interrupted run keeps everything ``--resume``
needs. At the end the bank moves into ``--out/cache`` and the working folder is removed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

from codir_edge.atomic import check_output_dir, staged_output_dir
from codir_edge.distill.bank import CACHE_FOLDER
from codir_edge.errors import InputError


def partial_dir(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    return out_dir.resolve().parent / f".{out_dir.name}.partial"


def prepare_run_dir(out_dir: Path, overwrite: bool, resume: bool) -> Path:
    """Check ``--out`` and the working folder against ``--overwrite`` / ``--resume`` and return the
    working folder, created. Starting over keeps a cached bank (it is keyed, never stale)."""
    run_dir = partial_dir(out_dir)
    check_output_dir(out_dir, overwrite)
    if resume and overwrite:
        raise InputError(
            "--resume and --overwrite contradict each other: --resume continues a run, --overwrite starts over"
        )
    if run_dir.exists() and not (resume or overwrite):
        raise InputError(
            f"an interrupted compress run for {out_dir} is in {run_dir}: pass --resume to continue it "
            "or --overwrite to start over"
        )
    if run_dir.exists() and overwrite:
        for entry in run_dir.iterdir():
            if entry.name != CACHE_FOLDER:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {run_dir} ({exc.strerror}): choose a writable --out") from exc
    return run_dir


@contextlib.contextmanager
def training_run(config, out_dir: Path, overwrite: bool, resume: bool):
    """(dist, runtime, working folder) of a compress run of either stage: the process group (one
    process, or this rank of a torchrun launch), its device and precision, and the checked working
    folder; the process group is shut down however the run ends."""
    from codir_edge.distill.distributed import barrier, init_distributed, rank_device, shutdown
    from codir_edge.models.runtime import resolve_runtime

    dist = init_distributed(config.device)
    try:
        runtime = resolve_runtime(rank_device(config.device, dist), config.precision)
        if dist.is_main:
            prepare_run_dir(out_dir, overwrite, resume)
        barrier(dist)
        yield dist, runtime, partial_dir(out_dir)
    finally:
        shutdown(dist)


def write_student(out_dir: Path, overwrite: bool, student, tokenizer, metrics: dict, config, run_dir: Path) -> None:
    """The finished student folder, written atomically: weights, tokenizer, metrics.json, the settings,
    train_log.jsonl and the cached bank; then the working folder goes. Rank 0 only."""
    with staged_output_dir(out_dir, overwrite) as stage:
        student.save_pretrained(stage, safe_serialization=True)
        tokenizer.save_pretrained(stage)
        (stage / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        (stage / "compress_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n", "utf-8")
        shutil.copy2(run_dir / "train_log.jsonl", stage / "train_log.jsonl")
        if (run_dir / CACHE_FOLDER).is_dir():
            shutil.copytree(run_dir / CACHE_FOLDER, stage / CACHE_FOLDER)
    shutil.rmtree(run_dir, ignore_errors=True)
