"""CoDIR fine-stage distillation, read top to bottom.

1. Check everything cheap (task, teacher, student depth, data, folders) before loading torch models.
2. Teacher bank: one pass of the frozen teacher over the training set (or the cached bank).
3. Student: skip-initialised from the teacher (or ``--student``), wrapped with its loss heads.
4. Train: one step function for every objective; checkpoints every ``checkpoint_every`` steps and at
   each epoch end; Ctrl-C saves one and exits 130; non-finite losses stop the run.
5. Write the student folder atomically, with metrics.json, train_log.jsonl and the bank under cache/.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import shutil
import signal
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from codir_edge.atomic import staged_output_dir
from codir_edge.data import DataSpec, get_task, load_train_dev
from codir_edge.data.encode import encode, pad_batch, train_batches
from codir_edge.data.metrics import score
from codir_edge.distill import checkpoints as ckpt
from codir_edge.distill.bank import BankInfo, bank_device, bank_key, make_teacher_bank, obtain_bank
from codir_edge.distill.config import CompressConfig
from codir_edge.distill.distributed import any_rank, barrier, init_distributed, rank_device, shutdown
from codir_edge.distill.run_folder import partial_dir, prepare_run_dir
from codir_edge.distill.student import check_student_layers, layer_map
from codir_edge.errors import CheckFailedError, CodirError, InputError
from codir_edge.evaluate.run import model_labels
from codir_edge.extras import require_extra
from codir_edge.models.checkpoint import (
    check_max_length,
    is_sequence_classifier,
    num_layers,
    read_model_config,
    weights_digest,
)
from codir_edge.progress import stage_progress, stderr_console
from codir_edge.provenance import provenance

# Settings a resumed run may change: they decide when to log and save, not what is computed.
_RESUMABLE_CHANGES = ("log_every", "checkpoint_every", "max_eval_samples", "eval_batch_size")


class Interrupted(CodirError):
    """Ctrl-C or SIGTERM during training: a checkpoint was saved; exit 130 with how to resume."""

    exit_code = 130


@dataclass(frozen=True)
class CompressReport:
    out_dir: Path
    task: str
    metric: str
    student_score: float
    teacher_score: float
    objective: str
    student_layers: int
    teacher_layers: int
    student_parameters: int
    teacher_parameters: int
    wall_time_s: float
    train_examples_per_s: float
    bank: BankInfo
    resumed_from_step: int | None
    device: str
    precision: str
    world_size: int
    rank: int  # the process that made this report; only rank 0 speaks for the run


def check_teacher(config: dict, teacher_dir: Path) -> None:
    if not is_sequence_classifier(config):
        architectures = config.get("architectures") or []
        raise InputError(
            f"--teacher {teacher_dir} is not a sequence classifier ({', '.join(architectures) or 'no architecture'}): "
            "fine-tune it first with codir-edge finetune"
        )


def run_compress(
    teacher_dir: Path,
    data: DataSpec,
    out_dir: Path,
    config: CompressConfig,
    student_dir: Path | None = None,
    eval_data: DataSpec | None = None,
    overwrite: bool = False,
    resume: bool = False,
    cache_from: tuple[Path, ...] = (),
    show_progress: bool = True,
) -> CompressReport:
    require_extra("train", "compress")
    import torch

    from codir_edge.distill.memory import NegativeSampler
    from codir_edge.distill.objective import Distiller
    from codir_edge.distill.student import check_same_tokenizer, count_parameters, hidden_width, skip_student
    from codir_edge.models.loading import load_classifier, load_tokenizer, load_trained_classifier
    from codir_edge.models.optim import build_optimizer, linear_schedule
    from codir_edge.models.predict import host_to, predict_logits, to_device
    from codir_edge.models.runtime import resolve_runtime, seed_everything

    started = time.perf_counter()
    # ---- 1. cheap checks ------------------------------------------------------------------------
    task = get_task(config.task)
    teacher_dir, out_dir = Path(teacher_dir), Path(out_dir)
    teacher_config = read_model_config(teacher_dir, "--teacher")
    check_teacher(teacher_config, teacher_dir)
    labels = model_labels(teacher_config, task, teacher_dir)
    teacher_layers = num_layers(teacher_config)
    if student_dir is not None:
        student_config = read_model_config(student_dir, "--student")
        if config.student_layers is not None:
            raise InputError("--student-layers and --student both set the student's depth: give only one")
        student_layers = num_layers(student_config)
        check_max_length(student_config, config.max_length, student_dir)
    else:
        student_layers = check_student_layers(config.student_layers, teacher_layers, teacher_dir)
    check_max_length(teacher_config, config.max_length, teacher_dir)
    dist = init_distributed(config.device)
    try:
        runtime = resolve_runtime(rank_device(config.device, dist), config.precision)
        if dist.is_main:
            prepare_run_dir(out_dir, overwrite, resume)
        barrier(dist)
        run_dir = partial_dir(out_dir)
        if labels and task.name in ("classification",):
            data = replace(data, labels=tuple(labels))
            eval_data = replace(eval_data, labels=tuple(labels)) if eval_data else None
        train, dev, data_labels = load_train_dev(task, data, eval_data)
        if labels and data_labels != labels:
            raise InputError(
                f"the data's labels ({', '.join(data_labels)}) differ from the teacher's ({', '.join(labels)}): "
                "compress on the task the teacher was fine-tuned for"
            )
        train = train.subsample(config.max_train_samples, config.seed)
        dev = dev.subsample(config.max_eval_samples, config.seed)

        # ---- 2. teacher bank ------------------------------------------------------------------------
        seed_everything(config.seed)
        tokenizer = load_tokenizer(teacher_dir, config.trust_remote_code)
        if student_dir is not None:
            check_same_tokenizer(
                tokenizer, load_tokenizer(student_dir, config.trust_remote_code), teacher_dir, student_dir
            )
        train_enc = encode(tokenizer, train, config.max_length)
        dev_enc = encode(tokenizer, dev, config.max_length)
        teacher = load_trained_classifier(teacher_dir, config.trust_remote_code).to(runtime.device)
        mapping = layer_map(teacher_layers, student_layers)
        key = bank_key(weights_digest(teacher_dir), train_enc, mapping, config.bank_pooling, config.max_length)
        if config.objective == "none":  # plain fine-tuning reads nothing from the teacher
            features = torch.zeros((len(train_enc), 0), dtype=torch.float16)
            logits = torch.zeros((len(train_enc), 0), dtype=torch.float16)
            build_seconds, reused = 0.0, None
        else:
            features, logits, build_seconds, reused = obtain_bank(
                teacher,
                train_enc,
                mapping,
                config.bank_pooling,
                runtime,
                config.eval_batch_size,
                key,
                cache_dirs=[run_dir, out_dir, *map(Path, cache_from)],
                save_dir=run_dir,
                dist=dist,
            )
        teacher_dev = score(
            task, predict_logits(teacher, dev_enc, runtime, config.eval_batch_size), dev_enc.targets.tolist()
        )
        teacher_parameters = count_parameters(teacher)

        # ---- 3. student and its objective -----------------------------------------------------------
        if student_dir is None:
            student = skip_student(teacher, student_layers)
        else:
            student = load_classifier(student_dir, labels, task.is_regression, config.trust_remote_code)
        del teacher
        gc.collect()
        bank = make_teacher_bank(features, logits, train_enc.targets, bank_device(runtime, features.nbytes))
        bank_info = BankInfo(
            key=key,
            examples=len(bank),
            feature_dim=int(features.shape[1]),
            bytes=bank.nbytes,
            build_seconds=build_seconds,
            reused_from=reused,
            location=str(bank.features.device),
        )
        torch.manual_seed(config.seed)  # the heads start the same on every rank and in every objective
        distiller = Distiller(
            student, bank, config, task.is_regression, hidden_width(student.config), int(teacher_config["hidden_size"])
        ).to(runtime.device)
        sampler = None
        if config.objective == "codir":
            sampler = NegativeSampler(
                bank.targets,
                config.negatives,
                task.is_regression,
                config.negative_margin,
                config.seed,
                bank.features.device,
            )
            if dist.is_main:
                for message in sampler.shortfalls:
                    stderr_console.print(f"warning: {message}", highlight=False)
        model = distiller
        if dist.enabled:
            model = _wrap_ddp(distiller, dist, runtime)

        steps_per_epoch = math.ceil(len(train_enc) / config.batch_size)
        total_steps = steps_per_epoch * config.epochs
        optimizer = build_optimizer(model.named_parameters(), config.lr, config.weight_decay)
        scheduler = linear_schedule(optimizer, total_steps, config.warmup_ratio)
        scaler = torch.amp.GradScaler("cuda", enabled=runtime.needs_grad_scaler)
        position = ckpt.Position(epoch=1, batch=0, step=0)
        history: list[dict] = []
        train_seconds, log_bytes, resumed_from = 0.0, 0, None
        if resume and (found := ckpt.latest_checkpoint(run_dir)) is not None:
            state, rng = ckpt.load_state(found, dist.rank, map_location="cpu")
            _check_same_settings(state["config"], config, state["bank_key"], key, found)
            distiller.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            if sampler is not None:
                sampler.load_state(state["sampler"])
            ckpt.restore_rank_rng(rng)
            position = ckpt.Position(**state["position"])
            history, train_seconds, log_bytes = state["history"], state["train_seconds"], state["log_bytes"]
            resumed_from = position.step

        # ---- 4. train -------------------------------------------------------------------------------
        targets_all = torch.from_numpy(train_enc.targets)
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
                state = {
                    "model": distiller.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "sampler": sampler.state() if sampler is not None else torch.zeros(0, dtype=torch.uint8),
                    "position": asdict(pos),
                    "history": history,
                    "train_seconds": train_seconds + (time.perf_counter() - epoch_start),
                    "log_bytes": log.tell(),
                    "config": config.to_dict(),
                    "bank_key": key,
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
            bar = progress.add_task(f"compress ({config.objective})", total=total_steps, stats="")
            progress.update(bar, completed=position.step)
            step = position.step
            for epoch in range(position.epoch, config.epochs + 1):
                model.train()
                epoch_start = time.perf_counter()
                window = _LossWindow()
                batches = train_batches(
                    train_enc.lengths,
                    config.batch_size,
                    np.random.default_rng([config.seed, epoch]),
                    config.group_by_length,
                )
                first = position.batch if epoch == position.epoch else 0
                for batch_no in range(first, len(batches)):
                    global_rows = batches[batch_no]
                    rows = global_rows[dist.rank :: dist.world]
                    negatives = None
                    if sampler is not None:  # drawn for the global batch: identical on every rank and in one process
                        negatives = sampler.sample(bank.targets[host_to(torch.from_numpy(global_rows), sampler.device)])
                        negatives = negatives[dist.rank :: dist.world]
                    inputs = to_device(pad_batch(train_enc, rows), runtime)
                    index = torch.from_numpy(rows)
                    targets = host_to(targets_all[index], runtime.device)
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
                dev_metrics = score(
                    task,
                    predict_logits(distiller.student, dev_enc, runtime, config.eval_batch_size),
                    dev_enc.targets.tolist(),
                )
                history.append({"epoch": epoch, "step": step, **dev_metrics})
                if dist.is_main:
                    log.write(json.dumps({"epoch": epoch, "step": step, "dev": dev_metrics}) + "\n")
                if dist.is_main:
                    progress.console.print(
                        f"epoch {epoch}: dev {task.primary_metric} {dev_metrics[task.primary_metric]:.4f}"
                    )
                epoch_start = time.perf_counter()
                last_saved = save_checkpoint(ckpt.Position(epoch + 1, 0, step))

        # ---- 5. the student folder ------------------------------------------------------------------
        report = CompressReport(
            out_dir=out_dir,
            task=task.name,
            metric=task.primary_metric,
            student_score=history[-1][task.primary_metric],
            teacher_score=teacher_dev[task.primary_metric],
            objective=config.objective,
            student_layers=student_layers,
            teacher_layers=teacher_layers,
            student_parameters=count_parameters(distiller.student),
            teacher_parameters=teacher_parameters,
            wall_time_s=time.perf_counter() - started,
            train_examples_per_s=len(train_enc) * config.epochs / train_seconds if train_seconds else 0.0,
            bank=bank_info,
            resumed_from_step=resumed_from,
            device=runtime.device,
            precision=runtime.precision,
            world_size=dist.world,
            rank=dist.rank,
        )
        if dist.is_main:
            metrics = {
                "stage": "compress",
                "task": task.name,
                "labels": labels,
                "metric": task.primary_metric,
                "dev": {k: v for k, v in history[-1].items() if k not in ("epoch", "step")},
                "teacher_dev": teacher_dev,
                "history": history,
                "objective": config.objective,
                "student_init": str(student_dir) if student_dir else "skip",
                "layer_map": mapping,
                "student_layers": student_layers,
                "teacher_layers": teacher_layers,
                "student_parameters": report.student_parameters,
                "teacher_parameters": teacher_parameters,
                "train_examples": len(train_enc),
                "dev_examples": len(dev_enc),
                "wall_time_s": report.wall_time_s,
                "train_seconds": train_seconds,
                "train_examples_per_s": report.train_examples_per_s,
                "bank": asdict(bank_info),
                "resumed_from_step": resumed_from,
                "device": runtime.device,
                "precision": runtime.precision,
                "world_size": dist.world,
                "teacher": str(teacher_dir),
                "data": data.data,
                "config": config.to_dict(),
                "provenance": provenance(),
            }
            with staged_output_dir(out_dir, overwrite) as stage:
                distiller.student.save_pretrained(stage, safe_serialization=True)
                tokenizer.save_pretrained(stage)
                (stage / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
                (stage / "compress_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n", "utf-8")
                shutil.copy2(log_path, stage / "train_log.jsonl")
                if (run_dir / "cache").is_dir():
                    shutil.copytree(run_dir / "cache", stage / "cache")
            shutil.rmtree(run_dir, ignore_errors=True)
        barrier(dist)
        return report
    finally:
        shutdown(dist)


def _wrap_ddp(distiller, dist, runtime):
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


def _check_same_settings(saved: dict, config: CompressConfig, saved_key: str, key: str, folder: Path) -> None:
    current = config.to_dict()
    changed = [name for name in current if name not in _RESUMABLE_CHANGES and saved.get(name) != current[name]]
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


__all__ = ["CompressReport", "Interrupted", "run_compress", "train_step"]
