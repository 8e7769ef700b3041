"""CoDIR-Fine: what the task-specific stage adds to the compress spine (``compress/run.py``).

Its data is the teacher's task (train and dev splits, the teacher's label order); its teacher is a
fine-tuned classifier whose bank holds summaries and logits; its student is skip-initialised or
``--student``; its negatives are label-aware draws from the whole bank (``bank/negatives.py``, whose
generator state goes into checkpoints); an epoch is scored with the task metric on dev.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from codir_edge.compress.config import FineConfig
from codir_edge.compress.prune import PrunePlan, check_prunable
from codir_edge.compress.setup import Setup
from codir_edge.compress.student import check_same_tokenizer, check_student_layers, layer_map
from codir_edge.compress.transfer import build_transfer_set, concat_encoded, epoch_order
from codir_edge.compress.vocab import cut_vocabulary, decided_once, vocab_report
from codir_edge.core.errors import InputError
from codir_edge.core.progress import stderr_console
from codir_edge.data import DataSpec, get_task, load_train_dev
from codir_edge.data.encode import encode, pad_batch
from codir_edge.data.metrics import score
from codir_edge.models.checkpoint import (
    check_max_length,
    is_sequence_classifier,
    num_layers,
    read_model_config,
    weights_digest,
)
from codir_edge.models.families import family_of, max_positions, width
from codir_edge.models.labels import model_labels
from codir_edge.models.vocab import parse_vocab
from codir_edge.training.engine import Loop


def check_teacher(config: dict, teacher_dir: Path) -> None:
    if not is_sequence_classifier(config):
        architectures = config.get("architectures") or []
        raise InputError(
            f"--teacher {teacher_dir} is not a sequence classifier ({', '.join(architectures) or 'no architecture'}): "
            "fine-tune it first with codir-edge finetune"
        )


class FineStage:
    """The fine stage's part of a run, from its cheap checks (the constructor) to its report fields;
    a class because each step reads what the one before it loaded."""

    name = "fine"

    def __init__(self, teacher_dir: Path, data: DataSpec, config: FineConfig,
                 student_dir: Path | None = None, eval_data: DataSpec | None = None):  # fmt: skip
        self.teacher_dir, self.config, self.student_dir = Path(teacher_dir), config, student_dir
        self.task = get_task(config.task)
        self.teacher_config = read_model_config(self.teacher_dir, "--teacher")
        check_teacher(self.teacher_config, self.teacher_dir)
        if student_dir is not None and config.prunes:
            raise InputError(
                "--heads-keep, --ffn-keep and --latency-budget shape the skip-initialised student, not --student: "
                "drop --student, or drop them"
            )
        check_prunable(self.teacher_config, config.heads_keep, config.ffn_keep, f"--teacher {self.teacher_dir}")
        self.labels = model_labels(self.teacher_config, self.task, self.teacher_dir)
        self.teacher_layers = num_layers(self.teacher_config)
        self.shape_search: dict | None = None
        self.heads_keep, self.ffn_keep = config.heads_keep, config.ffn_keep
        self.pruning: dict | None = None
        self.hard_negatives: dict | None = None  # --negative-sampling hard: method and cost of the neighbour lists
        self.vocabulary: dict | None = None  # --vocab: rows kept, bytes saved, texts that tokenize differently
        if student_dir is not None:
            student_config = read_model_config(student_dir, "--student")
            if config.student_layers is not None:
                raise InputError("--student-layers and --student both set the student's depth: give only one")
            self.student_layers = num_layers(student_config)
            check_max_length(student_config, config.max_length, student_dir)
        else:
            narrower = config.heads_keep < 1.0 or config.ffn_keep < 1.0
            self.student_layers = check_student_layers(config.student_layers, self.teacher_layers, self.teacher_dir,
                                                       narrower)  # fmt: skip
        check_max_length(self.teacher_config, config.max_length, self.teacher_dir)
        if self.labels and self.task.name in ("classification",):
            data = replace(data, labels=tuple(self.labels))
            eval_data = replace(eval_data, labels=tuple(self.labels)) if eval_data else None
        self.data, self.eval_data = data, eval_data

    def prepare(self, runtime, dist, run_dir: Path, bars) -> Setup:
        """The task's splits, tokenized; the teacher, loaded; the student's shape when a budget picks it
        (its timings shown on ``bars``); the bank's key."""
        from codir_edge.models.loading import load_tokenizer, load_trained_classifier

        config = self.config
        train, dev, data_labels = load_train_dev(self.task, self.data, self.eval_data)
        if self.labels and data_labels != self.labels:
            raise InputError(
                f"the data's labels ({', '.join(data_labels)}) differ from the teacher's ({', '.join(self.labels)}): "
                "compress on the task the teacher was fine-tuned for"
            )
        train = train.subsample(config.max_train_samples, config.seed)
        full_dev, dev = dev, dev.subsample(config.max_eval_samples, config.seed)
        tokenizer = load_tokenizer(self.teacher_dir, config.trust_remote_code)
        if self.student_dir is not None:
            student_tokenizer = load_tokenizer(self.student_dir, config.trust_remote_code)
            check_same_tokenizer(tokenizer, student_tokenizer, self.teacher_dir, self.student_dir)
        segments = family_of(self.teacher_config).takes_segments(self.teacher_config)
        teacher = load_trained_classifier(self.teacher_dir, config.trust_remote_code)
        self.run_dir = run_dir
        if config.latency_budget is not None:
            self._shape_for_budget(teacher.config, tokenizer, dev, dist, bars)
        labeled_enc = encode(tokenizer, train, config.max_length, segments)
        self.dev_enc = encode(tokenizer, dev, config.max_length, segments)
        self.transfer, extra = build_transfer_set(train, full_dev, teacher, tokenizer, self.task, self.data, config)
        extra_enc = [encode(tokenizer, part, config.max_length, segments) for part in extra]
        self.train_parts, self.dev, self.segments = (train, *extra), dev, segments  # re-encoded for a new vocabulary
        self.train_enc = concat_encoded([labeled_enc, *extra_enc]) if extra_enc else labeled_enc
        setup = Setup.for_bank(
            tokenizer, teacher.to(runtime.device), self.train_enc, layer_map(self.teacher_layers, self.student_layers),
            weights_digest(self.teacher_dir), config.bank_pooling, config.max_length,
            with_logits=True, needs_bank=config.objective != "none",
        )  # fmt: skip
        if self.transfer.teacher_labeled:
            setup.labeled_rows, setup.regression = self.transfer.labeled, self.task.is_regression
        return setup

    def build(self, setup: Setup, bank, runtime, dist):
        """(the student wrapped with its objective, the engine's loop); the teacher is scored, then freed."""
        import torch

        from codir_edge.compress.bank.negatives import NegativeSampler
        from codir_edge.compress.objectives import Distiller
        from codir_edge.compress.student import skip_student
        from codir_edge.models.loading import load_classifier
        from codir_edge.models.predict import host_to, predict_logits, to_device

        config, task = self.config, self.task
        teacher = setup.teacher
        self.teacher_dev = score(task, predict_logits(teacher, self.dev_enc, runtime, config.eval_batch_size),
                                 self.dev_enc.targets.tolist())  # fmt: skip
        if self.student_dir is None:
            student = skip_student(teacher, self.student_layers)
            if self.heads_keep < 1.0 or self.ffn_keep < 1.0:  # set by the options, or by the budget's shape
                self._prune(teacher, student, setup.mapping, runtime, dist)
            if not task.is_regression:  # a teacher with a default label map gets a student that names them
                student.config.id2label = dict(enumerate(self.labels))
                student.config.label2id = {label: i for i, label in enumerate(self.labels)}
        else:
            student = load_classifier(self.student_dir, self.labels, task.is_regression, config.trust_remote_code)
        student_train, student_dev = self.train_enc, self.dev_enc
        if parse_vocab(config.vocab) != "full":
            student, student_train, student_dev = self._prune_vocab(student, setup, dist)
        setup.free_teacher()
        torch.manual_seed(config.seed)  # the heads start the same on every rank and in every objective
        teacher_width = width(self.teacher_config)
        labeled_rows = self.transfer.labeled if self.transfer.teacher_labeled else None  # CE stops there
        distiller = Distiller(student, bank, config, task.is_regression, width(student.config), teacher_width,
                              labeled_rows=labeled_rows)  # fmt: skip
        distiller = distiller.to(runtime.device)
        sampler = None
        if config.objective == "codir":
            instance = config.negative_sampling == "instance"
            sampler = NegativeSampler(bank.targets, config.negatives, task.is_regression, config.negative_margin,
                                      config.seed, bank.device, instance)  # fmt: skip
            if config.negative_sampling in ("hard", "instance"):  # instance: the nearest rows of any label
                from codir_edge.compress.bank.hard import hard_neighbours

                sampler.attach_hard(*hard_neighbours(bank, sampler.is_negative, 4 * config.negatives, config.seed))
                self.hard_negatives = sampler.hard_info
            if dist.is_main:
                for message in sampler.shortfalls:
                    stderr_console.print(f"warning: {message}", highlight=False)
        train_enc, targets_all = student_train, bank.targets.cpu()  # the teacher's labels on rows without one
        transfer = self.transfer

        def make_batch(global_rows, rows, epoch, batch_no):  # noqa: ARG001 - the sampler holds the randomness
            negatives = None
            if sampler is not None:  # drawn for the global batch: identical on every rank and in one process
                anchors = host_to(torch.from_numpy(global_rows), sampler.device)
                negatives = sampler.sample(bank.targets[anchors], anchors)
                negatives = negatives[dist.rank :: dist.world]
            inputs = to_device(pad_batch(train_enc, rows), runtime)
            index = torch.from_numpy(rows)
            return inputs, index, host_to(targets_all[index], runtime.device), negatives

        def evaluate() -> dict[str, float]:
            logits = predict_logits(distiller.student, student_dev, runtime, config.eval_batch_size)
            return score(task, logits, student_dev.targets.tolist())

        order = None
        if transfer.teacher_labeled or config.labeled_repeat > 1:
            lengths = train_enc.lengths

            def order(epoch: int) -> list:
                return epoch_order(lengths, transfer, config, epoch)

        loop = Loop(
            label=f"compress ({config.objective})", config=config, data_key=setup.key, lengths=train_enc.lengths,
            make_batch=make_batch, evaluate=evaluate, headline=task.primary_metric, sampler=sampler, order=order,
            hints={"contrastive": " or raise --contrastive-temperature"},
        )  # fmt: skip
        return distiller, loop

    def _prune_vocab(self, student, setup: Setup, dist):
        """(student, its training rows, its dev rows) over the pruned vocabulary (``--vocab``); the tokenizer
        the student is saved with becomes the cut one."""
        config = self.config
        width = student.get_input_embeddings().embedding_dim
        student, tokenizer, made = cut_vocabulary(student, setup.tokenizer, self.train_enc.input_ids,
                                                  parse_vocab(config.vocab), self.run_dir, dist)  # fmt: skip
        setup.tokenizer = tokenizer
        length = config.max_length
        train = concat_encoded([encode(tokenizer, part, length, self.segments) for part in self.train_parts])
        dev = encode(tokenizer, self.dev, length, self.segments)
        self.vocabulary = vocab_report(made, width, (self.train_enc, self.dev_enc), (train, dev))
        return student, train, dev

    def _shape_for_budget(self, teacher_config, tokenizer, dev, dist, bars) -> None:
        """Time student shapes on the target (rank 0, once: a resumed run keeps the shape it trained)."""
        from codir_edge.compress.shapes import budget_inputs, search
        from codir_edge.devices.spec import select_devices

        config = self.config
        try:
            chosen = select_devices(Path(config.devices) if config.devices else None,
                                    [config.budget_device] if config.budget_device else None)  # fmt: skip
        except InputError as exc:  # its message names profile's --device
            raise InputError(str(exc).replace("--device ", "--budget-device ", 1)) from None
        if len(chosen) != 1:
            raise InputError(
                f"--devices names {len(chosen)} devices and a budget is met on one: pick it with --budget-device"
            )
        limit = max_positions(teacher_config)
        if config.budget_seq_len != "real" and config.budget_seq_len > limit:
            raise InputError(
                f"--budget-seq-len {config.budget_seq_len} exceeds the teacher's {limit} positions: use at most {limit}"
            )
        texts = list(zip(dev.texts, dev.text_pairs or [None] * len(dev), strict=True))
        inputs = budget_inputs(config.budget_seq_len, config.budget_threads, tokenizer, texts, config.max_length,
                               int(getattr(teacher_config, "vocab_size", 30000)))  # fmt: skip

        def measure() -> dict:
            return search(teacher_config, config.latency_budget, inputs, chosen[0], bars)

        self.shape_search = decided_once(self.run_dir / "shape_search.json", dist, measure)
        shape = self.shape_search["chosen"]
        self.student_layers = shape["layers"]
        self.heads_keep, self.ffn_keep = shape["heads_keep"], shape["ffn_keep"]

    def _prune(self, teacher, student, mapping: list[int], runtime, dist) -> None:
        """Score the teacher's heads and neurons, then remove the least important from the student."""
        import time

        import numpy as np
        import torch

        from codir_edge.compress.prune import apply_plan, ffn_width, make_plan, score_importance, units
        from codir_edge.models.families import heads
        from codir_edge.models.predict import host_to, to_device

        config, family = self.config, family_of(teacher.config)
        labeled = self.transfer.labeled
        rows = np.random.default_rng(config.seed).permutation(labeled)[: config.importance_samples]
        sources = list(range(len(units(teacher, family)))) if family.shared_blocks else [m - 1 for m in mapping]

        def batches():
            for start in range(0, len(rows), config.eval_batch_size):
                chunk = np.sort(rows[start : start + config.eval_batch_size])
                targets = host_to(torch.as_tensor(self.train_enc.targets[chunk]), runtime.device)
                yield to_device(pad_batch(self.train_enc, chunk), runtime), targets

        def plan() -> dict:
            started = time.perf_counter()
            head_scores, ffn_scores = score_importance(teacher, batches(), self.task.is_regression,
                                                       want_heads=self.heads_keep < 1.0)  # fmt: skip
            made = make_plan(head_scores, ffn_scores, sources, self.heads_keep, self.ffn_keep)
            return {"plan": made.to_dict(), "seconds": time.perf_counter() - started, "samples": len(rows)}

        decided = decided_once(self.run_dir / "prune_plan.json", dist, plan)
        made = PrunePlan.from_dict(decided["plan"])
        apply_plan(student, made)
        self.pruning = {
            "heads_keep": self.heads_keep, "ffn_keep": self.ffn_keep,
            "heads_per_layer": made.heads_kept if made.heads_total else heads(teacher.config),
            "teacher_heads": heads(teacher.config), "ffn_width": ffn_width(student.config),
            "teacher_ffn_width": ffn_width(teacher.config), "removed_heads": made.removed_heads,
            "importance_samples": decided["samples"], "importance_seconds": decided["seconds"],
            "stored_as": f"config.pruned_heads and config.{family.ffn_key}",
        }  # fmt: skip

    def fields(self, trained) -> dict:
        """The report fields only this stage has (and the ones whose value it decides)."""
        final = trained.history[-1]
        return {
            "task": self.task.name,
            "labels": self.labels,
            "metric": self.task.primary_metric,
            "dev": {k: v for k, v in final.items() if k not in ("epoch", "step")},
            "teacher_dev": self.teacher_dev,
            "objective": self.config.objective,
            "student_init": str(self.student_dir) if self.student_dir else "skip",
            "train_examples": self.transfer.labeled,
            "transfer_set": self.transfer.report(self.config),
            "dev_examples": len(self.dev_enc),
            "data": self.data.data,
            "pruning": self.pruning,
            "shape_search": self.shape_search,
            "contrastive_end": last_window_terms(trained.log_path, "contrastive") or None,
            "hard_negatives": self.hard_negatives,
            "vocabulary": self.vocabulary,
        }


def last_window_terms(log_path: Path, prefix: str) -> dict[str, float]:
    """The terms starting with ``prefix`` in the training log's last window that has them (the log
    also holds the epochs' dev scores); empty when none has."""
    lines = log_path.read_text(encoding="utf-8").splitlines() if log_path.is_file() else []
    for line in reversed(lines):
        terms = {name: value for name, value in json.loads(line).items() if name.startswith(prefix)}
        if terms:
            return terms
    return {}
