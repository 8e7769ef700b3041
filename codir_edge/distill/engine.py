"""The training engine both compress stages share, read top to bottom.

A stage (CoDIR-Fine on a task, CoDIR-Pre on a corpus) says how a batch of bank rows becomes model
inputs and how an epoch is scored; everything else is here, once: the optimizer and schedule, the
step under autocast, length-grouped data order, logging to ``train_log.jsonl``, checkpoints every
``checkpoint_every`` steps and at each epoch end, exact resume, Ctrl-C / SIGTERM (a checkpoint,
then exit 130), and the divergence check that names the loss term that went first.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from codir_edge.data.encode import train_batches
from codir_edge.distill import checkpoints as ckpt
from codir_edge.distill.distributed import any_rank, barrier
from codir_edge.errors import CheckFailedError, CodirError, InputError
from codir_edge.progress import stage_progress

# Settings a resumed run may change: they decide when to log and save, not what is computed.
RESUMABLE_CHANGES = ("log_every", "checkpoint_every", "max_eval_samples", "eval_batch_size")

# (global batch rows, this rank's rows, epoch, batch number) -> (inputs, index, targets, negatives)
MakeBatch = Callable[[np.ndarray, np.ndarray, int, int], tuple]


class Interrupted(CodirError):
    """Ctrl-C or SIGTERM during training: a checkpoint was saved; exit 130 with how to resume."""

    exit_code = 130


@dataclass(frozen=True)
class Loop:
    """What the engine needs from a stage.

    ``make_batch`` must draw its randomness either from the data position it is given or from
    ``sampler`` (whose state goes into checkpoints), so that a resumed run computes what an
    uninterrupted one would. ``evaluate`` scores the student after each epoch; ``headline`` names
    the metric shown on the console.
    """

    label: str
    config: object  # a CompressConfig
    bank_key: str
    lengths: np.ndarray
    make_batch: MakeBatch
    evaluate: Callable[[], dict[str, float]]
    headline: str
    sampler: object | None = None  # has state() and load_state(state)


@dataclass(frozen=True)
class Trained:
    history: list[dict]  # one entry per epoch: {"epoch", "step", **metrics}
    train_seconds: float
    resumed_from: int | None
    log_path: Path


def wrap_ddp(distiller, dist, runtime):
    """DDP without per-step buffer broadcasts: every buffer (position ids, the NCE log Z) is already
    identical on all ranks, and a broadcast per step would be a collective for nothing."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    quiet = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
        else {"broadcast_buffers": False}
    )
    return DistributedDataParallel(distiller, device_ids=[dist.local_rank] if runtime.is_cuda else None, **quiet)


def train(
    loop: Loop,
    distiller,
    runtime,
    dist,
    run_dir: Path,
    resume: bool,
    show_progress: bool,
) -> Trained:
    """Train ``distiller`` (its ``forward(inputs, index, targets, negatives, scale)`` returns the total
    loss and its terms) for ``config.epochs`` over ``loop.lengths`` examples."""
    import torch

    from codir_edge.models.optim import build_optimizer, linear_schedule

    config = loop.config
    model = wrap_ddp(distiller, dist, runtime) if dist.enabled else distiller
    steps_per_epoch = math.ceil(len(loop.lengths) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer = build_optimizer(model.named_parameters(), config.lr, config.weight_decay)
    scheduler = linear_schedule(optimizer, total_steps, config.warmup_ratio)
    scaler = torch.amp.GradScaler("cuda", enabled=runtime.needs_grad_scaler)
    position = ckpt.Position(epoch=1, batch=0, step=0)
    history: list[dict] = []
    train_seconds, log_bytes, resumed_from = 0.0, 0, None
    if resume and (found := ckpt.latest_checkpoint(run_dir)) is not None:
        state, rng = ckpt.load_state(found, dist.rank, map_location="cpu")
        check_same_settings(state["config"], config, state["bank_key"], loop.bank_key, found)
        distiller.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if loop.sampler is not None:
            loop.sampler.load_state(state["sampler"])
        ckpt.restore_rank_rng(rng)
        position = ckpt.Position(**state["position"])
        history, train_seconds, log_bytes = state["history"], state["train_seconds"], state["log_bytes"]
        resumed_from = position.step

    log_path = run_dir / "train_log.jsonl"

    def save_checkpoint(pos: ckpt.Position) -> Path:
        barrier(dist)
        folder = ckpt.pending_folder(run_dir, pos.step)
        if dist.is_main:
            ckpt.begin_save(run_dir, pos.step)
        barrier(dist)
        ckpt.save_rank_rng(folder, dist.rank)
        if dist.is_main:
            log.flush()
            sampler_state = loop.sampler.state() if loop.sampler is not None else torch.zeros(0, dtype=torch.uint8)
            state = {
                "model": distiller.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "sampler": sampler_state,
                "position": asdict(pos),
                "history": history,
                "train_seconds": train_seconds + (time.perf_counter() - epoch_start),
                "log_bytes": log.tell(),
                "config": config.to_dict(),
                "bank_key": loop.bank_key,
            }
            ckpt.save_state(folder, state)
        barrier(dist)
        final = ckpt.checkpoint_root(run_dir) / folder.name.replace(".tmp-", "")
        if dist.is_main:
            final = ckpt.commit_save(run_dir, folder, pos.step)
        barrier(dist)
        return final

    last_saved: Path | None = ckpt.latest_checkpoint(run_dir) if resume else None
    with (
        _stop_on_signals() as stop,
        stage_progress(show_progress and dist.is_main) as progress,
        _open_log(log_path, log_bytes, dist.is_main) as log,
    ):
        bar = progress.add_task(loop.label, total=total_steps, stats="")
        progress.update(bar, completed=position.step)
        step = position.step
        for epoch in range(position.epoch, config.epochs + 1):
            model.train()
            epoch_start = time.perf_counter()
            window = _LossWindow()
            batches = train_batches(
                loop.lengths, config.batch_size, np.random.default_rng([config.seed, epoch]), config.group_by_length
            )
            first = position.batch if epoch == position.epoch else 0
            for batch_no in range(first, len(batches)):
                global_rows = batches[batch_no]
                rows = global_rows[dist.rank :: dist.world]
                inputs, index, targets, negatives = loop.make_batch(global_rows, rows, epoch, batch_no)
                terms = train_step(
                    model,
                    optimizer,
                    scheduler,
                    scaler,
                    runtime,
                    config.max_grad_norm,
                    inputs,
                    index,
                    targets,
                    negatives,
                    scale=len(rows) * dist.world / len(global_rows),
                )
                step += 1
                window.add(terms, step, len(global_rows))  # on the device: no host sync per step
                progress.advance(bar)
                done_epoch = batch_no + 1 == len(batches)
                if step % config.log_every == 0 or done_epoch:
                    means = window.means(last_saved)  # the one host sync per window
                    rate = window.examples_per_s()
                    lr = scheduler.get_last_lr()[0]
                    if dist.is_main:
                        record = {"step": step, "epoch": epoch, **means, "lr": lr, "examples_per_s": rate}
                        log.write(json.dumps(record) + "\n")
                        log.flush()  # so that a watcher (tail -f) sees each window as it ends
                    shown = "  ".join(f"{name} {value:.4f}" for name, value in means.items())
                    progress.update(bar, stats=f"{shown}  lr {lr:.2e}  {rate:.0f} ex/s")
                    window = _LossWindow()
                here = ckpt.Position(epoch, batch_no + 1, step)
                stopping = (
                    stop.requested
                    if not dist.enabled
                    else (window.steps == 0 and any_rank(stop.requested, dist, runtime.device))
                )
                if stopping:
                    window.means(last_saved)  # never save a diverged state
                    last_saved = save_checkpoint(here)
                    raise Interrupted(
                        f"interrupted at step {step}; checkpoint saved in {last_saved}: "
                        "run the same command with --resume to continue"
                    )
                if config.checkpoint_every and step % config.checkpoint_every == 0 and not done_epoch:
                    window.means(last_saved)  # never save a diverged state
                    last_saved = save_checkpoint(here)
            train_seconds += time.perf_counter() - epoch_start
            metrics = loop.evaluate()
            history.append({"epoch": epoch, "step": step, **metrics})
            if dist.is_main:
                log.write(json.dumps({"epoch": epoch, "step": step, "dev": metrics}) + "\n")
                progress.console.print(f"epoch {epoch}: dev {loop.headline} {metrics[loop.headline]:.4f}")
            epoch_start = time.perf_counter()
            last_saved = save_checkpoint(ckpt.Position(epoch + 1, 0, step))
    return Trained(history, train_seconds, resumed_from, log_path)


def train_step(
    model, optimizer, scheduler, scaler, runtime, max_grad_norm, inputs, index, targets, negatives, scale=1.0
):
    """One optimizer step, the same for every objective: forward under autocast, scaled backward,
    clipped gradients. Returns the detached loss terms; nothing here waits on the device."""
    import torch

    with runtime.autocast():
        total, terms = model(inputs, index, targets, negatives, scale)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return terms


class _LossWindow:
    """Loss terms summed on the device between two log lines, with the step at which each first
    stopped being finite, so that a divergence names the term that started it (once the weights are
    NaN, every term follows one step later)."""

    def __init__(self) -> None:
        self.sums: dict = {}
        self.first_bad: dict = {}
        self.steps = 0
        self.examples = 0
        self.started = time.perf_counter()

    def add(self, terms: dict, step: int, examples: int) -> None:
        import torch

        for name, value in terms.items():
            value = value.float()
            self.sums[name] = self.sums.get(name, 0.0) + value
            never = torch.full_like(value, math.inf)
            bad_at = torch.where(torch.isfinite(value), never, torch.full_like(value, step))
            self.first_bad[name] = torch.minimum(self.first_bad.get(name, never), bad_at)
        self.steps += 1
        self.examples += examples

    def examples_per_s(self) -> float:
        return self.examples / max(time.perf_counter() - self.started, 1e-9)

    def means(self, last_saved: Path | None) -> dict[str, float]:
        """Mean of each term over the window, after checking that none diverged (NaN or infinite)."""
        means = {name: float(total) / max(self.steps, 1) for name, total in self.sums.items()}
        bad = {name: float(at) for name, at in self.first_bad.items() if math.isfinite(float(at))}
        if bad:
            first = min(bad.values())
            names = sorted(name for name, at in bad.items() if at == first)
            terms = " and ".join(f"{name} ({means[name]})" for name in names)
            kept = f"the last good checkpoint is {last_saved}" if last_saved else "no checkpoint was saved yet"
            hint = " or raise --contrastive-temperature" if "contrastive" in names else ""
            raise CheckFailedError(
                f"the {terms} loss diverged at step {int(first)}; {kept}: start over with "
                f"--overwrite and a lower --lr{hint}, or use --precision fp32"
            )
        return means


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
            f"checkpoint {folder} was made with another teacher or other data: resume with the same ones, "
            "or start over with --overwrite"
        )


class _StopFlag:
    requested = False


@contextlib.contextmanager
def _stop_on_signals():
    """Ctrl-C and SIGTERM only raise a flag while training: the loop then finishes its step, saves a
    checkpoint and stops, instead of dying half-way through an optimizer update."""
    flag = _StopFlag()

    def request(signum, frame):  # noqa: ARG001 - signal handler signature
        flag.requested = True

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: signals stay as they were
            previous[sig] = signal.signal(sig, request)
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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


__all__ = ["Interrupted", "Loop", "Trained", "train", "train_step"]
