"""CoDIR fine-stage distillation, read top to bottom.

1. Check everything cheap (task, teacher, student depth, data, folders) before loading torch models.
2. Teacher bank: one pass of the frozen teacher over the training set (or the cached bank).
3. Student: skip-initialised from the teacher (or ``--student``), wrapped with its loss heads.
4. Train through the shared engine (distill/engine.py): one step function for every objective,
   checkpoints, exact resume, Ctrl-C handling and the divergence check live there.
5. Write the student folder atomically, with metrics.json, train_log.jsonl and the bank under cache/.
"""

from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from codir_edge.data import DataSpec, get_task, load_train_dev
from codir_edge.data.encode import encode, pad_batch
from codir_edge.data.metrics import score
from codir_edge.distill.bank import BankInfo, bank_device, bank_key, make_teacher_bank, obtain_bank
from codir_edge.distill.config import CompressConfig
from codir_edge.distill.distributed import barrier
from codir_edge.distill.engine import Interrupted, Loop, train_step
from codir_edge.distill.engine import train as train_student
from codir_edge.distill.run_folder import training_run, write_student
from codir_edge.distill.student import check_student_layers, layer_map
from codir_edge.errors import InputError
from codir_edge.evaluate.run import model_labels
from codir_edge.extras import require_extra
from codir_edge.models.checkpoint import (
    check_max_length,
    is_sequence_classifier,
    num_layers,
    read_model_config,
    weights_digest,
)
from codir_edge.progress import stderr_console
from codir_edge.provenance import provenance


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
    from codir_edge.models.predict import host_to, predict_logits, to_device
    from codir_edge.models.runtime import seed_everything

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
    with training_run(config, out_dir, overwrite, resume) as (dist, runtime, run_dir):
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
        bank_info = BankInfo.of(bank, key, build_seconds, reused)
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
        targets_all = torch.from_numpy(train_enc.targets)

        def make_batch(global_rows, rows, epoch, batch_no):  # noqa: ARG001 - the sampler holds the randomness
            negatives = None
            if sampler is not None:  # drawn for the global batch: identical on every rank and in one process
                negatives = sampler.sample(bank.targets[host_to(torch.from_numpy(global_rows), sampler.device)])
                negatives = negatives[dist.rank :: dist.world]
            inputs = to_device(pad_batch(train_enc, rows), runtime)
            index = torch.from_numpy(rows)
            return inputs, index, host_to(targets_all[index], runtime.device), negatives

        def evaluate() -> dict[str, float]:
            logits = predict_logits(distiller.student, dev_enc, runtime, config.eval_batch_size)
            return score(task, logits, dev_enc.targets.tolist())

        # ---- 4. train -------------------------------------------------------------------------------
        loop = Loop(
            label=f"compress ({config.objective})",
            config=config,
            bank_key=key,
            lengths=train_enc.lengths,
            make_batch=make_batch,
            evaluate=evaluate,
            headline=task.primary_metric,
            sampler=sampler,
        )
        trained = train_student(loop, distiller, runtime, dist, run_dir, resume, show_progress)
        history, train_seconds, resumed_from = trained.history, trained.train_seconds, trained.resumed_from

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
            write_student(out_dir, overwrite, distiller.student, tokenizer, metrics, config, run_dir)
        barrier(dist)
        return report


__all__ = ["CompressReport", "Interrupted", "run_compress", "train_step"]
