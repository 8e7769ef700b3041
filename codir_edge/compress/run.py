"""``compress``: distil a teacher into a smaller student with CoDIR, both stages on one spine.

1. The stage checks everything cheap (teacher, student depth, task or corpus, folders) before any
   model is loaded: ``FineStage`` (a fine-tuned classifier on its task) or ``PreStage`` (a
   pretrained backbone on unlabelled text).
2. The stage loads its data and teacher; the teacher bank comes from a cache or one teacher pass,
   streamed to a file that training reads through a memory map (``bank/``).
3. The stage builds the student and its objective, and says how a batch is made and an epoch scored.
4. The shared engine trains (``training/engine.py``): checkpoints, exact resume, Ctrl-C, torchrun.
5. The student folder is written atomically with metrics.json (the report's fields), the settings,
   train_log.jsonl and the bank under cache/.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from codir_edge.compress.bank.build import BankInfo
from codir_edge.compress.config import CompressConfig
from codir_edge.compress.embed import EmbedStage
from codir_edge.compress.fine import FineStage
from codir_edge.compress.pre import PreStage
from codir_edge.compress.setup import Setup
from codir_edge.compress.student import count_parameters
from codir_edge.compress.tokens import TokenStage
from codir_edge.core.extras import require_extra
from codir_edge.core.progress import Bars, stage_progress
from codir_edge.core.provenance import provenance
from codir_edge.data import DataSpec
from codir_edge.training.distributed import barrier
from codir_edge.training.engine import Interrupted
from codir_edge.training.run_folder import training_run, write_output

_PROCESS_FIELDS = ("out_dir", "rank")  # of this process, not of the student: kept out of metrics.json


@dataclass(frozen=True)
class CompressReport:
    """One compress run. Every field but ``out_dir`` and ``rank`` is a key of the student's
    metrics.json; a field that is None does not apply to the stage and is left out of it."""

    stage: str  # always "compress": the metrics file says which command made it
    compress_stage: str  # fine | pre | embed (--task embedding) | token (--task ner)
    metric: str
    dev: dict
    teacher_dev: dict
    history: list[dict]
    objective: str
    student_init: str
    layer_map: list[int]
    student_layers: int
    teacher_layers: int
    student_parameters: int
    teacher_parameters: int
    train_examples: int
    wall_time_s: float
    train_seconds: float
    train_examples_per_s: float
    bank: BankInfo
    resumed_from_step: int | None
    device: str
    precision: str
    world_size: int
    teacher: str
    data: str
    config: dict
    provenance: dict
    out_dir: Path
    rank: int  # the process that made this report; only rank 0 speaks for the run
    # what only one stage has
    task: str | None = None  # fine
    labels: list[str] | None = None  # fine
    dev_examples: int | None = None  # fine
    initial_dev: dict | None = None  # pre: the skip-initialised student, scored before training
    mlm: bool | None = None  # pre
    corpus: dict | None = None  # pre
    held_out_examples: int | None = None  # pre
    transfer_set: dict | None = None  # fine with --unlabeled or --augment: the rows the teacher alone labels
    pruning: dict | None = None  # fine with --heads-keep, --ffn-keep or --latency-budget: what the student kept
    shape_search: dict | None = None  # fine with --latency-budget: every candidate shape and the chosen one
    # codir: the last log window's L_con, contrastive top-1 and gradient share (is the term still teaching?)
    contrastive_end: dict | None = None
    hard_negatives: dict | None = None  # --negative-sampling hard: how the neighbour lists were computed, and cost
    vocabulary: dict | None = None  # --vocab: rows kept, bytes saved, texts that tokenize differently
    embedding: dict | None = None  # embed: the sentence head the student was written with (pooling, normalize)
    truncation: dict | None = None  # token: words --max-length cut off, per split (None: none were)

    def metrics(self) -> dict:
        """The student's metrics.json."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _PROCESS_FIELDS}
        values["bank"] = asdict(self.bank)
        return {name: value for name, value in values.items() if value is not None}

    @property
    def student_score(self) -> float:
        return self.dev[self.metric]

    @property
    def teacher_score(self) -> float | None:
        return self.teacher_dev.get(self.metric)

    def summary(self) -> dict:
        """The ``--json`` report: the headline figures of the run (as earlier versions wrote them)."""
        common = {
            "student_layers": self.student_layers, "teacher_layers": self.teacher_layers,
            "student_parameters": self.student_parameters, "teacher_parameters": self.teacher_parameters,
            "wall_time_s": self.wall_time_s, "train_examples_per_s": self.train_examples_per_s,
            "bank": asdict(self.bank), "resumed_from_step": self.resumed_from_step, "device": self.device,
            "precision": self.precision, "world_size": self.world_size, "rank": self.rank,
        }  # fmt: skip
        if self.compress_stage == "embed":
            head = {
                "out_dir": self.out_dir, "task": self.task, "objective": self.objective, "metric": self.metric,
                "student_score": self.student_score, "initial_score": self.initial_dev[self.metric],
                "retrieval_top1": self.dev["retrieval_top1"], "embedding": self.embedding,
                "train_texts": self.train_examples, "held_out": self.held_out_examples, "vocabulary": self.vocabulary,
            }  # fmt: skip
        elif self.compress_stage == "pre":
            head = {
                "out_dir": self.out_dir, "corpus_texts": self.corpus["texts"], "train_texts": self.train_examples,
                "held_out": self.held_out_examples, "cka": self.dev["cka"], "initial_cka": self.initial_dev["cka"],
                "retrieval_top1": self.dev["retrieval_top1"], "mlm_accuracy": self.dev.get("mlm_accuracy"),
                "teacher_mlm_accuracy": self.teacher_dev.get("mlm_accuracy"),
            }  # fmt: skip
        else:
            head = {
                "out_dir": self.out_dir, "task": self.task, "metric": self.metric,
                "student_score": self.student_score, "teacher_score": self.teacher_score, "objective": self.objective,
                "train_examples": self.train_examples, "transfer_set": self.transfer_set, "pruning": self.pruning,
                "shape_search": self.shape_search, "vocabulary": self.vocabulary,
            }  # fmt: skip
        return {**head, **common}


def run_compress(
    teacher_dir: Path,
    data: DataSpec | str | Path,
    out_dir: Path,
    config: CompressConfig,
    student_dir: Path | None = None,
    eval_data: DataSpec | None = None,
    text_field: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    cache_from: tuple[Path, ...] = (),
    show_progress: bool = True,
) -> CompressReport:
    """Distil ``teacher_dir`` into a student at ``out_dir``. ``config.stage`` picks the stage: ``fine``
    reads ``data`` as a task's DataSpec (``student_dir``, ``eval_data`` apply), ``pre`` and ``embed``
    (``--task embedding``) as a corpus path (``text_field`` applies)."""
    require_extra("train", "compress")
    from codir_edge.models.runtime import seed_everything
    from codir_edge.training.engine import train

    started = time.perf_counter()
    out_dir = Path(out_dir)
    if config.stage == "pre":
        stage = PreStage(teacher_dir, data, config, text_field)
    elif config.stage == "embed":
        stage = EmbedStage(teacher_dir, data, config, text_field)
    elif config.stage == "token":
        stage = TokenStage(teacher_dir, data, config, student_dir, eval_data)
    else:
        stage = FineStage(teacher_dir, data, config, student_dir, eval_data)
    with training_run(config, out_dir, overwrite, resume, "compress") as (dist, runtime, run_dir):
        seed_everything(config.seed)
        caches = [run_dir, out_dir, *map(Path, cache_from)]
        with stage_progress(show_progress and dist.is_main) as bars:
            setup = stage.prepare(runtime, dist, run_dir, bars)
            bank, bank_info = _teacher_bank(setup, config, runtime, dist, run_dir, caches, bars)
        distiller, loop = stage.build(setup, bank, runtime, dist)
        trained = train(loop, distiller, runtime, dist, run_dir, resume, show_progress)
        report = CompressReport(
            stage="compress", compress_stage=stage.name, history=trained.history,
            layer_map=setup.mapping, student_layers=stage.student_layers, teacher_layers=stage.teacher_layers,
            student_parameters=count_parameters(distiller.student),
            teacher_parameters=setup.teacher_parameters, wall_time_s=time.perf_counter() - started,
            train_seconds=trained.train_seconds, train_examples_per_s=_rate(trained.epoch_examples, config, trained),
            bank=bank_info, resumed_from_step=trained.resumed_from, device=runtime.device,
            precision=runtime.precision, world_size=dist.world, teacher=str(teacher_dir), config=config.to_dict(),
            provenance=provenance(), out_dir=out_dir, rank=dist.rank, **stage.fields(trained),
        )  # fmt: skip
        if dist.is_main:
            student, tokenizer = distiller.student, setup.tokenizer
            extra_files = getattr(stage, "save_files", None)  # the embed stage's sentence-transformers files

            def write_model(folder: Path) -> None:
                student.save_pretrained(folder, safe_serialization=True)
                tokenizer.save_pretrained(folder)
                if extra_files is not None:
                    extra_files(folder)

            write_output(out_dir, overwrite, run_dir, write_model, report.metrics(), "compress_config.json",
                         config.to_dict())  # fmt: skip
        barrier(dist)
        return report


def _teacher_bank(setup: Setup, config: CompressConfig, runtime, dist, run_dir: Path, cache_dirs: list[Path],
                  bars: Bars):  # fmt: skip
    """(bank, info): from a cache or a teacher pass, on the device that will read it."""
    import torch

    from codir_edge.compress.bank.build import bank_device, make_teacher_bank, obtain_bank
    from codir_edge.compress.transfer import teacher_targets

    targets = setup.encoded.targets if setup.with_logits else torch.zeros(len(setup.encoded))
    if not setup.needs_bank:
        empty = torch.zeros((len(setup.encoded), 0), dtype=torch.float16)
        bank = make_teacher_bank(empty, empty.clone(), targets, "cpu")
        return bank, BankInfo.of(bank, setup.key, 0.0, None)
    features, logits, seconds, reused = obtain_bank(
        setup.teacher, setup.encoded, setup.mapping, setup.pooling, runtime, config.eval_batch_size, setup.key,
        cache_dirs=cache_dirs, save_dir=run_dir, dist=dist, with_logits=setup.with_logits, progress=bars,
        embedding=setup.embedding,
    )  # fmt: skip
    nbytes = features.numel() * 2 + logits.numel() * 2
    if setup.labeled_rows is not None:  # rows without a label: negatives are drawn by the teacher's prediction
        targets = teacher_targets(torch.as_tensor(targets), logits, setup.labeled_rows, setup.regression)
    bank = make_teacher_bank(features, logits, targets, bank_device(runtime, nbytes))
    return bank, BankInfo.of(bank, setup.key, seconds, reused)


def _rate(examples: int, config: CompressConfig, trained) -> float:
    return examples * config.epochs / trained.train_seconds if trained.train_seconds else 0.0


__all__ = ["CompressReport", "Interrupted", "run_compress"]
