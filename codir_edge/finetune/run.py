"""``finetune``: an encoder checkpoint into a sequence classifier, the teacher of every later stage.

Read top to bottom: resolve and validate everything cheap first (task, model folder, data, output
folder), then tokenize once, then train through the shared engine (``training/engine.py``: resume,
Ctrl-C with a checkpoint, torchrun, the divergence check) with an evaluation after each epoch. The
best epoch's weights are kept in the working folder and become ``--out`` when the run completes.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codir_edge.core.extras import require_extra
from codir_edge.core.provenance import provenance
from codir_edge.data import DataSpec, get_task, load_train_dev
from codir_edge.data.encode import Encoded, encode, pad_batch, train_batches
from codir_edge.data.metrics import score
from codir_edge.data.ner import NER_TASK, is_ner
from codir_edge.finetune.config import FinetuneConfig
from codir_edge.models.checkpoint import check_max_length, default_backbone, read_model_config
from codir_edge.models.families import family_of
from codir_edge.training.checkpoints import data_key
from codir_edge.training.distributed import barrier
from codir_edge.training.engine import Loop
from codir_edge.training.run_folder import training_run, write_output

BEST = "best"  # the working folder's copy of the best epoch so far


# The ``--json`` report's fields, and metrics.json's (``dev_metrics`` is written as ``dev``).
_SUMMARY_FIELDS = ("out_dir", "task", "metric", "best_score", "best_epoch", "dev_metrics", "wall_time_s",
                   "train_examples_per_s", "train_examples", "device", "precision", "resumed_from_step",
                   "world_size", "rank")  # fmt: skip
_METRICS_FIELDS = ("task", "labels", "metric", "dev_metrics", "best_epoch", "history", "train_examples",
                   "dev_examples", "wall_time_s", "train_seconds", "train_examples_per_s", "resumed_from_step",
                   "device", "precision", "world_size", "truncation", "source_model", "data", "config",
                   "provenance")  # fmt: skip


@dataclass(frozen=True)
class FinetuneReport:
    """One finetune run; the teacher's metrics.json and the ``--json`` report are both read off it."""

    out_dir: Path
    task: str
    labels: list[str]
    metric: str
    best_score: float
    best_epoch: int
    dev_metrics: dict[str, float]
    history: list[dict]  # one entry per epoch: {"epoch", **metrics}
    wall_time_s: float
    train_seconds: float
    train_examples_per_s: float
    train_examples: int
    dev_examples: int
    device: str
    precision: str
    source_model: str
    data: str
    config: dict
    provenance: dict  # filled on the main process only: it alone writes the folder
    resumed_from_step: int | None = None
    world_size: int = 1
    rank: int = 0  # the process that made this report; only rank 0 speaks for the run
    truncation: dict | None = None  # --task ner: words --max-length cut off, per split (None: none were)

    def metrics(self) -> dict:
        """The teacher's metrics.json."""
        named = {"dev" if name == "dev_metrics" else name: getattr(self, name) for name in _METRICS_FIELDS}
        return {"stage": "finetune", **named}

    def summary(self) -> dict:
        """The ``--json`` report: the headline figures of the run."""
        return {name: getattr(self, name) for name in _SUMMARY_FIELDS}


def run_finetune(
    model_dir: Path | None,
    data: DataSpec,
    out_dir: Path,
    config: FinetuneConfig,
    eval_data: DataSpec | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    resume: bool = False,
) -> FinetuneReport:
    require_extra("train", "finetune")
    from codir_edge.finetune.objective import LabelLoss
    from codir_edge.models.loading import load_tokenizer
    from codir_edge.models.runtime import seed_everything
    from codir_edge.training.engine import train

    started = time.perf_counter()
    model_dir = Path(model_dir) if model_dir is not None else default_backbone()
    out_dir = Path(out_dir)
    model_config = read_model_config(model_dir)
    check_max_length(model_config, config.max_length, model_dir)
    segments = family_of(model_config).takes_segments(model_config)
    recipe = TokenRecipe(data, eval_data, config) if is_ner(config.task) else SequenceRecipe(data, eval_data, config)
    with training_run(config, out_dir, overwrite, resume, "finetune") as (dist, runtime, run_dir):
        seed_everything(config.seed)
        tokenizer = load_tokenizer(model_dir, config.trust_remote_code)
        model, loop = recipe.build(tokenizer, model_dir, segments, runtime, dist, run_dir)
        trained = train(loop, LabelLoss(model), runtime, dist, run_dir, resume, show_progress)
        metric = recipe.metric
        best = max(trained.history, key=lambda entry: (entry[metric], -entry["epoch"]))
        best_metrics = {k: v for k, v in best.items() if k not in ("epoch", "step")}
        report = FinetuneReport(
            out_dir=out_dir, task=recipe.task_name, labels=recipe.labels, metric=metric,
            best_score=best[metric], best_epoch=best["epoch"], dev_metrics=best_metrics,
            history=[{k: v for k, v in entry.items() if k != "step"} for entry in trained.history],
            wall_time_s=time.perf_counter() - started, train_seconds=trained.train_seconds,
            train_examples_per_s=recipe.train_count * config.epochs / max(trained.train_seconds, 1e-9),
            train_examples=recipe.train_count, dev_examples=recipe.dev_count, device=runtime.device,
            precision=runtime.precision, source_model=str(model_dir), data=data.data, config=config.to_dict(),
            provenance=provenance() if dist.is_main else {}, resumed_from_step=trained.resumed_from,
            world_size=dist.world, rank=dist.rank, truncation=recipe.truncation,
        )  # fmt: skip
        if dist.is_main:

            def write_model(folder: Path) -> None:
                for item in (run_dir / BEST).iterdir():  # copied: a failed write can be resumed
                    shutil.copy2(item, folder / item.name)
                tokenizer.save_pretrained(folder)

            write_output(out_dir, overwrite, run_dir, write_model, report.metrics(), "finetune_config.json",
                         config.to_dict())  # fmt: skip
        barrier(dist)
        return report


class SequenceRecipe:
    """A sentence (or pair) classifier or regressor on a GLUE or custom task."""

    truncation = None

    def __init__(self, data: DataSpec, eval_data: DataSpec | None, config: FinetuneConfig):
        self.config = config
        self.task = get_task(config.task)
        self.task_name, self.metric = self.task.name, self.task.primary_metric
        train_set, dev, self.labels = load_train_dev(self.task, data, eval_data)
        self.train_set = train_set.subsample(config.max_train_samples, config.seed)
        self.dev = dev.subsample(config.max_eval_samples, config.seed)

    def build(self, tokenizer, model_dir: Path, segments: bool, runtime, dist, run_dir: Path):
        """(model, the engine's loop) once the tokenizer is loaded."""
        from codir_edge.models.loading import load_classifier
        from codir_edge.models.predict import predict_logits

        config, task = self.config, self.task
        train_enc = encode(tokenizer, self.train_set, config.max_length, segments)
        dev_enc = encode(tokenizer, self.dev, config.max_length, segments)
        self.train_count, self.dev_count = len(train_enc), len(dev_enc)
        model = load_classifier(model_dir, self.labels, task.is_regression, config.trust_remote_code)
        model = model.to(runtime.device)
        targets = dev_enc.targets.tolist()

        def evaluate() -> dict[str, float]:
            return score(task, predict_logits(model, dev_enc, runtime, config.eval_batch_size), targets)

        key = data_key(model_dir, train_enc)
        return model, _loop(config, self.metric, model, train_enc, lambda rows: train_enc.targets[rows], evaluate,
                            runtime, dist, run_dir, key)  # fmt: skip


class TokenRecipe:
    """A token classifier (``--task ner``) on word-tagged sentences: first pieces carry the labels."""

    task_name, metric = NER_TASK, "f1"

    def __init__(self, data: DataSpec, eval_data: DataSpec | None, config: FinetuneConfig):
        from codir_edge.data.ner import load_tagged_train_dev

        self.config = config
        given = list(data.labels) if data.labels else None
        self.train_set, self.dev, self.labels = load_tagged_train_dev(
            data.data, eval_data.data if eval_data else None, given, config.max_train_samples,
            config.max_eval_samples, config.seed,
        )  # fmt: skip

    def build(self, tokenizer, model_dir: Path, segments: bool, runtime, dist, run_dir: Path):
        from codir_edge.data.ner_encode import encode_tagged, pad_labels, truncation_note
        from codir_edge.models.loading import load_token_classifier
        from codir_edge.models.tagger import score_tagger

        config = self.config
        train_tok = encode_tagged(tokenizer, self.train_set, self.labels, config.max_length, segments)
        dev_tok = encode_tagged(tokenizer, self.dev, self.labels, config.max_length, segments)
        self.truncation = truncation_note(train_tok, dev_tok, config.max_length)
        self.train_count, self.dev_count = len(train_tok), len(dev_tok)
        model = load_token_classifier(model_dir, self.labels, config.trust_remote_code).to(runtime.device)

        def evaluate() -> dict[str, float]:
            return score_tagger(model, dev_tok, self.dev, self.labels, runtime, config.eval_batch_size)

        key = data_key(model_dir, train_tok.encoded, train_tok.labels)
        return model, _loop(config, self.metric, model, train_tok.encoded, lambda rows: pad_labels(train_tok, rows),
                            evaluate, runtime, dist, run_dir, key)  # fmt: skip


def _loop(config, metric: str, model, train_enc: Encoded, batch_targets: Callable[[np.ndarray], np.ndarray],
          evaluate: Callable[[], dict], runtime, dist, run_dir: Path, key: str) -> Loop:  # fmt: skip
    """How finetune makes a batch (``batch_targets``: a batch's rows -> its targets), orders an epoch
    and keeps the best one, for the engine."""
    import torch

    from codir_edge.models.predict import host_to, to_device

    def make_batch(global_rows, rows, epoch, batch_no):  # noqa: ARG001 - nothing random beyond the order
        targets = torch.from_numpy(batch_targets(rows))
        inputs = to_device(pad_batch(train_enc, rows), runtime)
        return inputs, torch.from_numpy(rows), host_to(targets, runtime.device), None

    def order(epoch: int) -> list[np.ndarray]:
        """One generator seeded once and drawn from epoch after epoch (as finetune always has), replayed
        from the start, so that an epoch's order depends on the epoch alone and resume needs no state."""
        rng = np.random.default_rng(config.seed)
        for _ in range(epoch):
            batches = train_batches(train_enc.lengths, config.batch_size, rng, config.group_by_length)
        return batches

    def keep_best(history: list[dict]) -> None:
        """The first epoch with the best dev metric so far is saved (rank 0), before its checkpoint."""
        if dist.is_main and all(history[-1][metric] > entry[metric] for entry in history[:-1]):
            staging = run_dir / f".{BEST}.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            model.save_pretrained(staging, safe_serialization=True)
            shutil.rmtree(run_dir / BEST, ignore_errors=True)
            staging.rename(run_dir / BEST)

    return Loop(label="finetune", config=config, data_key=key, lengths=train_enc.lengths, make_batch=make_batch,
                evaluate=evaluate, headline=metric, order=order, after_epoch=keep_best)  # fmt: skip
