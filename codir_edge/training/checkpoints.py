"""Checkpoints that make a resumed run end exactly where an uninterrupted one would.

A checkpoint holds the trained weights (student and heads), optimizer, scheduler, grad scaler,
every random state that feeds the run (torch's for dropout, each rank's, and the negative
sampler's) and the position in the data order (epoch, next batch; the order of an epoch is
re-derived from the seed). It is written into a temporary folder and renamed into place, so the
newest complete checkpoint is always readable; older ones are removed after.

Loading uses ``torch.load(weights_only=True)``: a checkpoint is data, never code.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.errors import InputError

FOLDER = "checkpoints"
_PREFIX = "step-"


def data_key(model_dir: Path, encoded, labels=None) -> str:
    """What a checkpoint must have been trained from: the starting weights (``model_dir``: the model
    finetune starts from, the teacher compress distils), the tokenized data (an ``Encoded``) and, for
    per-token targets, each row's labels. A resume refuses a checkpoint written under another key."""
    import hashlib

    from codir_edge.data.encode import update_digest
    from codir_edge.models.checkpoint import weights_digest

    digest = hashlib.sha256(weights_digest(model_dir).encode())
    update_digest(digest, encoded)
    for row in labels or ():
        digest.update(row.tobytes())
    return digest.hexdigest()[:20]


@dataclass(frozen=True)
class Position:
    """Where training stands: ``batch`` batches of ``epoch`` (1-based) are done, ``step`` in all."""

    epoch: int
    batch: int
    step: int


def checkpoint_root(run_dir: Path) -> Path:
    return Path(run_dir) / FOLDER


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (temporary folders of a killed save are ignored)."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return None
    done = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX) and (p / "state.pt").is_file()]
    return max(done, key=lambda p: int(p.name[len(_PREFIX) :]), default=None)


def rank_rng_file(folder: Path, rank: int) -> Path:
    return Path(folder) / f"rng-rank{rank}.pt"


def pending_folder(run_dir: Path, step: int) -> Path:
    """Where checkpoint ``step`` is assembled; a fixed name, so every rank finds it without talking."""
    return checkpoint_root(run_dir) / f".tmp-{_PREFIX}{step:09d}"


def begin_save(run_dir: Path, step: int) -> Path:
    """An empty temporary folder for checkpoint ``step`` (made by rank 0; the others write into it)."""
    folder = pending_folder(run_dir, step)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def commit_save(run_dir: Path, tmp: Path, step: int) -> Path:
    """Rename the complete temporary folder into place, then drop older checkpoints and leftovers."""
    root = checkpoint_root(run_dir)
    final = root / f"{_PREFIX}{step:09d}"
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for entry in root.iterdir():
        if entry != final:
            shutil.rmtree(entry, ignore_errors=True)
    return final


def save_rank_rng(folder: Path, rank: int) -> None:
    import torch

    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()
    torch.save(states, rank_rng_file(folder, rank))


def save_state(folder: Path, state: dict) -> None:
    import torch

    torch.save(state, Path(folder) / "state.pt")


def load_state(folder: Path, rank: int, map_location: str) -> tuple[dict, dict]:
    """The shared state and this rank's random states."""
    import torch

    try:
        state = torch.load(Path(folder) / "state.pt", map_location=map_location, weights_only=True)
        rng_path = rank_rng_file(folder, rank)
        if not rng_path.is_file():
            raise InputError(
                f"checkpoint {folder} was written by fewer processes than this run has: resume with the "
                "same number of processes (torchrun --nproc-per-node) as the interrupted run"
            )
        rng = torch.load(rng_path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError) as exc:
        raise InputError(f"cannot read checkpoint {folder} ({exc}): start over with --overwrite") from exc
    return state, rng


def restore_rank_rng(rng: dict) -> None:
    import torch

    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
