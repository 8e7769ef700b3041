"""Fine-tune a BERT-family checkpoint into a sequence classifier: the teacher of every later stage.

Read top to bottom: resolve and validate everything cheap first (task, model folder, data, output
folder), then tokenize once, then train for ``epochs`` with an evaluation after each, keeping the
best epoch's weights in the staging folder that becomes ``--out`` only when the run completes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codir_edge.atomic import check_output_dir, staged_output_dir
from codir_edge.data import DataSpec, get_task, load_train_dev
from codir_edge.data.encode import encode, pad_batch, train_batches
from codir_edge.data.metrics import score
from codir_edge.errors import CheckFailedError
from codir_edge.extras import require_extra
from codir_edge.finetune.config import FinetuneConfig
from codir_edge.models.checkpoint import check_max_length, default_backbone, read_model_config
from codir_edge.progress import stage_progress
from codir_edge.provenance import provenance


@dataclass(frozen=True)
class FinetuneReport:
    out_dir: Path
    task: str
    metric: str
    best_score: float
    best_epoch: int
    dev_metrics: dict[str, float]
    wall_time_s: float
    train_examples_per_s: float
    train_examples: int
    device: str
    precision: str


def run_finetune(
    model_dir: Path | None,
    data: DataSpec,
    out_dir: Path,
    config: FinetuneConfig,
    eval_data: DataSpec | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> FinetuneReport:
    require_extra("train", "finetune")
    import torch

    from codir_edge.models.loading import load_classifier, load_tokenizer
    from codir_edge.models.optim import build_optimizer, linear_schedule
    from codir_edge.models.predict import predict_logits, to_device
    from codir_edge.models.runtime import resolve_runtime, seed_everything

    started = time.perf_counter()
    task = get_task(config.task)
    model_dir = Path(model_dir) if model_dir is not None else default_backbone()
    model_config = read_model_config(model_dir)
    check_max_length(model_config, config.max_length, model_dir)
    check_output_dir(out_dir, overwrite)
    runtime = resolve_runtime(config.device, config.precision)
    train, dev, labels = load_train_dev(task, data, eval_data)
    train = train.subsample(config.max_train_samples, config.seed)
    dev = dev.subsample(config.max_eval_samples, config.seed)

    seed_everything(config.seed)
    tokenizer = load_tokenizer(model_dir, config.trust_remote_code)
    train_enc = encode(tokenizer, train, config.max_length)
    dev_enc = encode(tokenizer, dev, config.max_length)
    model = load_classifier(model_dir, labels, task.is_regression, config.trust_remote_code).to(runtime.device)

    steps_per_epoch = math.ceil(len(train_enc) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer = build_optimizer(model.named_parameters(), config.lr, config.weight_decay)
    scheduler = linear_schedule(optimizer, total_steps, config.warmup_ratio)
    scaler = torch.amp.GradScaler("cuda", enabled=runtime.needs_grad_scaler)
    rng = np.random.default_rng(config.seed)
    lengths = train_enc.lengths
    targets = torch.from_numpy(train_enc.targets)

    history: list[dict] = []
    best = {"score": -math.inf, "epoch": 0, "metrics": {}}
    train_seconds, seen = 0.0, 0
    with (
        staged_output_dir(out_dir, overwrite) as stage,
        stage_progress(show_progress) as progress,
        open(stage / "train_log.jsonl", "w", encoding="utf-8") as log,
    ):
        bar = progress.add_task("finetune", total=total_steps, stats="")
        step = 0
        for epoch in range(1, config.epochs + 1):
            model.train()
            running = torch.zeros((), device=runtime.device)  # summed on device: no host sync per step
            window_start, window_examples, window_steps = time.perf_counter(), 0, 0
            epoch_start = time.perf_counter()
            batches = train_batches(lengths, config.batch_size, rng, config.group_by_length)
            for batch_no, indices in enumerate(batches, start=1):
                batch = to_device(pad_batch(train_enc, indices), runtime)
                labels_t = targets[indices].to(runtime.device, non_blocking=True)
                with runtime.autocast():
                    loss = model(**batch, labels=labels_t).loss
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                running += loss.detach().float()
                step += 1
                window_steps += 1
                window_examples += len(indices)
                if step % config.log_every == 0 or batch_no == len(batches):
                    mean_loss = float(running) / window_steps  # the one sync per log window
                    if not math.isfinite(mean_loss):
                        raise CheckFailedError(
                            f"training loss became {mean_loss} at step {step}: lower --lr or use --precision fp32"
                        )
                    rate = window_examples / (time.perf_counter() - window_start)
                    lr = scheduler.get_last_lr()[0]
                    log.write(
                        json.dumps({"step": step, "epoch": epoch, "loss": mean_loss, "lr": lr, "examples_per_s": rate})
                        + "\n"
                    )
                    progress.update(bar, stats=f"loss {mean_loss:.4f}  lr {lr:.2e}  {rate:.0f} ex/s")
                    running.zero_()
                    window_start, window_examples, window_steps = time.perf_counter(), 0, 0
                progress.advance(bar)
            train_seconds += time.perf_counter() - epoch_start
            seen += len(train_enc)

            dev_metrics = score(
                task, predict_logits(model, dev_enc, runtime, config.eval_batch_size), dev_enc.targets.tolist()
            )
            history.append({"epoch": epoch, **dev_metrics})
            log.write(json.dumps({"epoch": epoch, "dev": dev_metrics}) + "\n")
            progress.console.print(f"epoch {epoch}: dev {task.primary_metric} {dev_metrics[task.primary_metric]:.4f}")
            if dev_metrics[task.primary_metric] > best["score"]:
                best = {"score": dev_metrics[task.primary_metric], "epoch": epoch, "metrics": dev_metrics}
                model.save_pretrained(stage, safe_serialization=True)

        tokenizer.save_pretrained(stage)
        report = FinetuneReport(
            out_dir=Path(out_dir),
            task=task.name,
            metric=task.primary_metric,
            best_score=best["score"],
            best_epoch=best["epoch"],
            dev_metrics=best["metrics"],
            wall_time_s=time.perf_counter() - started,
            train_examples_per_s=seen / train_seconds if train_seconds else 0.0,
            train_examples=len(train_enc),
            device=runtime.device,
            precision=runtime.precision,
        )
        metrics = {
            "stage": "finetune",
            "task": task.name,
            "labels": labels,
            "metric": task.primary_metric,
            "dev": best["metrics"],
            "best_epoch": best["epoch"],
            "history": history,
            "train_examples": len(train_enc),
            "dev_examples": len(dev_enc),
            "wall_time_s": report.wall_time_s,
            "train_examples_per_s": report.train_examples_per_s,
            "device": runtime.device,
            "precision": runtime.precision,
            "source_model": str(model_dir),
            "data": data.data,
            "config": config.to_dict(),
            "provenance": provenance(),
        }
        (stage / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        (stage / "finetune_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
    return report
