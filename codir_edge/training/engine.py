"""The training loop every recipe shares, read top to bottom in :func:`train`.

A recipe (finetune, CoDIR-Fine, CoDIR-Pre) says how a batch of rows becomes model inputs and how an
epoch is scored; everything else is here, once: the optimizer and schedule, the step under autocast,
the data order, logging to ``train_log.jsonl``, checkpoints every ``checkpoint_every`` steps and at
each epoch end, exact resume, Ctrl-C / SIGTERM (a checkpoint, then exit 130), and the divergence
check that names the loss term that went first.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from codir_edge.core.errors import InputError
from codir_edge.core.progress import stage_progress
from codir_edge.data.encode import train_batches
from codir_edge.training import checkpoints as ckpt
from codir_edge.training.config import TrainingConfig
from codir_edge.training.distributed import any_rank, barrier
from codir_edge.training.loss_window import LossWindow
from codir_edge.training.signals import Interrupted, stop_on_signals

if TYPE_CHECKING:
    import torch


class Sampler(Protocol):
    """A recipe's own random draws (compress's negative sampler), saved in and restored from checkpoints."""

    def state(self) -> torch.Tensor: ...

    def load_state(self, state: torch.Tensor) -> None: ...

# Settings a resumed run may change: they decide when to log and save, not what is computed.
RESUMABLE_CHANGES = ("log_every", "checkpoint_every", "max_eval_samples", "eval_batch_size")

# (global batch rows, this rank's rows, epoch, batch number) -> (inputs, index, targets, negatives)
MakeBatch = Callable[[np.ndarray, np.ndarray, int, int], tuple]


@dataclass(frozen=True)
class Loop:
    """What the engine needs from a recipe.

    ``make_batch`` must draw its randomness either from the data position it is given or from
    ``sampler`` (whose state goes into checkpoints), so that a resumed run computes what an
    uninterrupted one would. ``evaluate`` scores the model after each epoch; ``headline`` names the
    metric shown on the console. ``order(epoch)`` gives an epoch's batches (default: length-grouped
    batches shuffled by a generator seeded with the seed and the epoch); it must depend on the epoch
    only. ``after_epoch(history)`` runs after each epoch is scored and before its checkpoint.
    ``data_key`` names the data and any teacher: a checkpoint made with another is refused.
    """

    label: str
    config: TrainingConfig  # the recipe's config: the optimisation fields and to_dict()
    data_key: str
    lengths: np.ndarray
    make_batch: MakeBatch
    evaluate: Callable[[], dict[str, float]]
    headline: str
    sampler: Sampler | None = None
    order: Callable[[int], list[np.ndarray]] | None = None
    after_epoch: Callable[[list[dict]], None] | None = None
    hints: dict[str, str] = field(default_factory=dict)  # divergence advice per loss term


@dataclass(frozen=True)
class Trained:
    history: list[dict]  # one entry per epoch: {"epoch", "step", **metrics}
    train_seconds: float
    resumed_from: int | None
    log_path: Path
    epoch_examples: int  # rows one epoch trains on (a transfer set's epoch is not its bank's size)


def seeded_order(loop: Loop, epoch: int) -> list[np.ndarray]:
    config = loop.config
    rng = np.random.default_rng([config.seed, epoch])
    return train_batches(loop.lengths, config.batch_size, rng, config.group_by_length)


def epoch_batches(loop: Loop, epoch: int) -> list[np.ndarray]:
    """The epoch's batches: the recipe's order, or length-grouped batches of every example."""
    return loop.order(epoch) if loop.order is not None else seeded_order(loop, epoch)


def train(loop: Loop, model, runtime, dist, run_dir: Path, resume: bool, show_progress: bool) -> Trained:
    """Train ``model`` (its ``forward(inputs, index, targets, negatives, scale)`` returns the total loss
    and its terms) for ``config.epochs`` over ``loop.lengths`` examples, resuming from the newest
    checkpoint in ``run_dir`` when ``resume`` is set."""
    run = _Run(loop, model, runtime, dist, run_dir)
    if resume:
        run.restore()
    with (
        stop_on_signals() as stop,
        stage_progress(show_progress and dist.is_main) as progress,
        _open_log(run.log_path, run.log_bytes, dist.is_main) as log,
    ):
        run.attach(progress, log, stop)
        for epoch in range(run.position.epoch, loop.config.epochs + 1):
            run.train_epoch(epoch)
            run.score_epoch(epoch)
    return Trained(run.history, run.train_seconds, run.resumed_from, run.log_path, run.epoch_examples)


class _Run:
    """The state of one training run (model, optimizer, position, history, log) and its steps; a
    class because every part of the loop reads and advances the same state."""

    def __init__(self, loop: Loop, model, runtime, dist, run_dir: Path):
        import torch

        from codir_edge.training.optim import build_optimizer, linear_schedule

        self.loop, self.config, self.runtime, self.dist, self.run_dir = loop, loop.config, runtime, dist, run_dir
        self.model = model
        self.wrapped = wrap_ddp(model, dist, runtime) if dist.enabled else model
        first_epoch = epoch_batches(loop, 1)
        self.steps_per_epoch = len(first_epoch)
        self.epoch_examples = sum(len(batch) for batch in first_epoch)
        total_steps = self.steps_per_epoch * self.config.epochs
        self.optimizer = build_optimizer(self.wrapped.named_parameters(), self.config.lr, self.config.weight_decay)
        self.scheduler = linear_schedule(self.optimizer, total_steps, self.config.warmup_ratio)
        self.scaler = torch.amp.GradScaler("cuda", enabled=runtime.needs_grad_scaler)
        self.position = ckpt.Position(epoch=1, batch=0, step=0)
        self.history: list[dict] = []
        self.train_seconds, self.log_bytes, self.resumed_from = 0.0, 0, None
        self.log_path = run_dir / "train_log.jsonl"
        self.last_saved: Path | None = None
        self.epoch_start = time.perf_counter()

    def restore(self) -> None:
        """Everything the newest checkpoint holds, after checking it was made with the same settings."""
        self.last_saved = found = ckpt.latest_checkpoint(self.run_dir)
        if found is None:
            return
        state, rng = ckpt.load_state(found, self.dist.rank, map_location="cpu")
        check_same_settings(state["config"], self.config, state["bank_key"], self.loop.data_key, found)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.loop.sampler is not None:
            self.loop.sampler.load_state(state["sampler"])
        ckpt.restore_rank_rng(rng)
        self.position = ckpt.Position(**state["position"])
        self.history, self.train_seconds, self.log_bytes = state["history"], state["train_seconds"], state["log_bytes"]
        self.resumed_from = self.position.step

    def attach(self, progress, log, stop) -> None:
        self.progress, self.log, self.stop = progress, log, stop
        total = self.steps_per_epoch * self.config.epochs
        self.bar = progress.add(self.loop.label, total, "steps", completed=self.position.step)
        self.step = self.position.step
        # this process's share of the run (a resumed one counts from here), for the bar's ex/s
        self.examples_here, self.seconds_before = 0, self.train_seconds

    def train_epoch(self, epoch: int) -> None:
        loop, dist = self.loop, self.dist
        self.wrapped.train()
        self.epoch_start = time.perf_counter()
        window = LossWindow(loop.hints)
        batches = epoch_batches(loop, epoch)
        first = self.position.batch if epoch == self.position.epoch else 0
        for batch_no in range(first, len(batches)):
            global_rows = batches[batch_no]
            rows = global_rows[dist.rank :: dist.world]
            inputs, index, targets, negatives = loop.make_batch(global_rows, rows, epoch, batch_no)
            scale = len(rows) * dist.world / len(global_rows)
            closes = (self.step + 1) % self.config.log_every == 0 or batch_no + 1 == len(batches)
            if hasattr(self.model, "last_of_window"):  # an objective that measures itself once per log window
                self.model.last_of_window = closes
            terms = train_step(self.wrapped, self.optimizer, self.scheduler, self.scaler, self.runtime,
                               self.config.max_grad_norm, inputs, index, targets, negatives, scale)  # fmt: skip
            self.step += 1
            self.examples_here += len(global_rows)
            window.add(terms, self.step, len(global_rows))  # on the device: no host sync per step
            done_epoch = batch_no + 1 == len(batches)
            if closes:  # the bar's line for this step shows it
                self.progress.advance(self.bar, stats=self._log_window(window, epoch))
                window = LossWindow(loop.hints)
            else:
                self.progress.advance(self.bar)
            self._maybe_stop_or_save(window, ckpt.Position(epoch, batch_no + 1, self.step), done_epoch)
        self.train_seconds += time.perf_counter() - self.epoch_start

    def _log_window(self, window: LossWindow, epoch: int) -> str:
        """Write the window's record to the log file and return its progress text."""
        means = window.means(self.last_saved)  # the one host sync per window
        rate = window.examples_per_s()
        lr = self.scheduler.get_last_lr()[0]
        if self.dist.is_main:
            record = {"step": self.step, "epoch": epoch, **means, "lr": lr, "examples_per_s": rate}
            self.log.write(json.dumps(record) + "\n")
            self.log.flush()  # so that a watcher (tail -f) sees each window as it ends
        shown = "  ".join(f"{name} {value:.4f}" for name, value in means.items())
        seconds = self.train_seconds - self.seconds_before + time.perf_counter() - self.epoch_start
        # the terms are the window's means and lr is where it ended: a log line printed later (every
        # LOG_EVERY_S) still shows them, so they say which step they belong to. The rate is examples per
        # second since this run started: what the summary reports (the log file keeps each window's own)
        return f"at step {self.step}: {shown}  lr {lr:.2e}  {self.examples_here / max(seconds, 1e-9):.0f} ex/s"

    def _maybe_stop_or_save(self, window: LossWindow, here: ckpt.Position, done_epoch: bool) -> None:
        """A requested stop saves and raises; a periodic checkpoint saves. Neither saves a diverged state."""
        dist = self.dist
        if not dist.enabled:
            stopping = self.stop.requested
        else:  # every rank must agree, at a step where none holds unlogged terms
            stopping = window.steps == 0 and any_rank(self.stop.requested, dist, self.runtime.device)
        if stopping:
            window.means(self.last_saved)
            self.last_saved = self.save_checkpoint(here)
            raise Interrupted(
                f"interrupted at step {here.step}; checkpoint saved in {self.last_saved}: "
                "run the same command with --resume to continue"
            )
        every = self.config.checkpoint_every
        if every and here.step % every == 0 and not done_epoch:
            window.means(self.last_saved)
            self.last_saved = self.save_checkpoint(here)

    def score_epoch(self, epoch: int) -> None:
        metrics = self.loop.evaluate()
        self.history.append({"epoch": epoch, "step": self.step, **metrics})
        if self.dist.is_main:
            self.log.write(json.dumps({"epoch": epoch, "step": self.step, "dev": metrics}) + "\n")
            headline = self.loop.headline
            self.progress.print(f"epoch {epoch}: dev {headline} {metrics[headline]:.4f}")
        if self.loop.after_epoch is not None:
            self.loop.after_epoch(self.history)
        self.epoch_start = time.perf_counter()
        self.last_saved = self.save_checkpoint(ckpt.Position(epoch + 1, 0, self.step))

    def save_checkpoint(self, pos: ckpt.Position) -> Path:
        """Every rank's random state and rank 0's shared state, into a folder renamed into place."""
        import torch

        dist, run_dir = self.dist, self.run_dir
        barrier(dist)
        folder = ckpt.pending_folder(run_dir, pos.step)
        if dist.is_main:
            ckpt.begin_save(run_dir, pos.step)
        barrier(dist)
        ckpt.save_rank_rng(folder, dist.rank)
        if dist.is_main:
            self.log.flush()
            sampler = self.loop.sampler
            state = {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "sampler": sampler.state() if sampler is not None else torch.zeros(0, dtype=torch.uint8),
                "position": asdict(pos),
                "history": self.history,
                "train_seconds": self.train_seconds + (time.perf_counter() - self.epoch_start),
                "log_bytes": self.log.tell(),
                "config": self.config.to_dict(),
                "bank_key": self.loop.data_key,  # the name older checkpoints used
            }
            ckpt.save_state(folder, state)
        barrier(dist)
        final = ckpt.checkpoint_root(run_dir) / folder.name.replace(".tmp-", "")
        if dist.is_main:
            final = ckpt.commit_save(run_dir, folder, pos.step)
        barrier(dist)
        return final


def wrap_ddp(model, dist, runtime):
    """DDP without per-step buffer broadcasts: every buffer (position ids, the NCE log Z) is already
    identical on all ranks, and a broadcast per step would be a collective for nothing."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    quiet = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
        else {"broadcast_buffers": False}
    )
    return DistributedDataParallel(model, device_ids=[dist.local_rank] if runtime.is_cuda else None, **quiet)


def train_step(
    model, optimizer, scheduler, scaler, runtime, max_grad_norm, inputs, index, targets, negatives, scale=1.0
):
    """One optimizer step, the same for every recipe: forward under autocast, scaled backward,
    clipped gradients. Returns the detached loss terms; nothing here waits on the device."""
    from codir_edge.training.optim import clip_gradients

    with runtime.autocast():
        total, terms = model(inputs, index, targets, negatives, scale)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    scaler.unscale_(optimizer)
    clip_gradients(model.parameters(), max_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return terms


def check_same_settings(saved: dict, config, saved_key: str, key: str, folder: Path) -> None:
    current = config.to_dict()
    changed = [name for name in current if name not in RESUMABLE_CHANGES and saved.get(name) != current[name]]
    if changed:
        name = changed[0]
        raise InputError(
            f"checkpoint {folder} was made with --{name.replace('_', '-')} {saved.get(name)}, this run asks for "
            f"{current[name]}: resume with the same settings, or start over with --overwrite"
        )
    if saved_key != key:
        raise InputError(
            f"checkpoint {folder} was made with another model or other data: resume with the same ones, "
            "or start over with --overwrite"
        )


@contextlib.contextmanager
def _open_log(path: Path, keep_bytes: int, writer: bool):
    """The run's train_log.jsonl, cut back to what the resumed checkpoint had seen."""
    if not writer:
        yield None
        return
    mode = "r+" if path.exists() else "w"
    with open(path, mode, encoding="utf-8") as handle:
        handle.seek(keep_bytes)
        handle.truncate()
        yield handle


__all__ = ["Interrupted", "Loop", "Trained", "seeded_order", "train", "train_step"]
