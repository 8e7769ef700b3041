"""CoDIR-Pre: what the task-agnostic stage adds to the compress spine (``compress/run.py``).

Its data is unlabelled text (a seeded held-out slice kept out of training, the bank covering both);
its teacher is a pretrained backbone, kept loaded only when its MLM head is needed for KD; its
student is the teacher's own class, skip-initialised; its negatives are the rest of the global
batch plus K random corpus rows, and its masks are BERT's, both drawn from the data position so
that resume is exact with no state to save; an epoch is scored on the held-out slice
(``pre_scores.py``). The result is a general student for ``compress --student`` or ``finetune --model``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codir_edge.compress.config import PreConfig
from codir_edge.compress.masking import mask_tokens
from codir_edge.compress.pre_scores import held_out_scores, mlm_accuracy
from codir_edge.compress.setup import Setup
from codir_edge.compress.student import check_student_layers, layer_map
from codir_edge.core.errors import InputError
from codir_edge.data.corpus import read_corpus
from codir_edge.data.encode import Encoded, encode, pad_batch
from codir_edge.data.examples import Examples
from codir_edge.models.checkpoint import (
    check_max_length,
    is_sequence_classifier,
    num_layers,
    read_model_config,
    weights_digest,
)
from codir_edge.models.families import FAMILIES, family_of, width
from codir_edge.training.engine import Loop

# Masked LMs whose head is one module that maps token states to vocabulary logits (objectives.mlm_head).
MLM_HEAD_FAMILIES = tuple(name for name, family in FAMILIES.items() if family.mlm_head)
MIN_CORPUS = 20  # distinct texts: enough for a held-out slice of 2 and batches with negatives
_MLM_ARCHITECTURES = ("ForMaskedLM", "ForPreTraining")


def has_mlm_head(config: dict) -> bool:
    return any(a.endswith(_MLM_ARCHITECTURES) for a in config.get("architectures") or [])


def check_backbone(config: dict, teacher_dir: Path) -> None:
    if is_sequence_classifier(config):
        raise InputError(
            f"--teacher {teacher_dir} is a fine-tuned classifier: --stage pre distils a pretrained backbone "
            "(a BertModel or BertForMaskedLM folder); distil a classifier with --stage fine"
        )


def read_split_corpus(corpus: str | Path, text_field: str | None, config) -> tuple:
    """(what was read, training texts, held-out texts): the corpus, sampled to ``--max-train-samples``
    and split by ``--held-out``, both seeded (CoDIR-Pre and ``--task embedding`` read their text so)."""
    read = read_corpus(corpus, text_field)
    texts = Examples(read.texts, None, [0] * len(read), str(corpus)).subsample(config.max_train_samples, config.seed)
    return (read, *split_corpus(texts.texts, config.held_out, config.seed))


def encode_corpus(tokenizer, train: list[str], held: list[str], teacher_config: dict,
                  max_length: int) -> tuple[Encoded, int, np.ndarray]:  # fmt: skip
    """(training and held-out texts tokenized as one set, the bank covering both; the training count; the
    held-out rows)."""
    texts = Examples(train + held, None, [0] * (len(train) + len(held)), "corpus")
    encoded = encode(tokenizer, texts, max_length, family_of(teacher_config).takes_segments(teacher_config))
    return encoded, len(train), np.arange(len(train), len(encoded))


def split_corpus(texts: list[str], held_out: int, seed: int) -> tuple[list[str], list[str]]:
    """(train, held-out): a seeded random slice of at most ``held_out`` texts and a tenth of the
    corpus is kept out of training, so the per-epoch score is on sentences the student never read."""
    if len(texts) < MIN_CORPUS:
        raise InputError(
            f"the corpus has {len(texts)} distinct texts, CoDIR-Pre needs at least {MIN_CORPUS}: give more text"
        )
    order = np.random.default_rng(seed).permutation(len(texts))
    size = min(held_out, len(texts) // 10)
    held = sorted(order[:size].tolist())
    train = sorted(order[size:].tolist())
    return [texts[i] for i in train], [texts[i] for i in held]


class PreStage:
    """The pre stage's part of a run, from its cheap checks (the constructor) to its report fields;
    a class because each step reads what the one before it loaded."""

    name = "pre"

    def __init__(self, teacher_dir: Path, corpus: str | Path, config: PreConfig, text_field: str | None = None):
        from codir_edge.models.loading import load_tokenizer

        if config.stage != "pre":
            raise InputError(f"the pre stage runs --stage pre, the config says {config.stage}")
        self.teacher_dir, self.corpus, self.config = Path(teacher_dir), corpus, config
        self.teacher_config = read_model_config(self.teacher_dir, "--teacher")
        check_backbone(self.teacher_config, self.teacher_dir)
        self.teacher_layers = num_layers(self.teacher_config)
        self.student_layers = check_student_layers(config.student_layers, self.teacher_layers, self.teacher_dir)
        check_max_length(self.teacher_config, config.max_length, self.teacher_dir)
        self.mlm = has_mlm_head(self.teacher_config)
        if self.mlm and self.teacher_config.get("model_type") not in MLM_HEAD_FAMILIES:
            raise InputError(
                f"--teacher {teacher_dir} is a {self.teacher_config.get('model_type')} masked LM, whose MLM head "
                f"codir-edge cannot read: use a {', '.join(MLM_HEAD_FAMILIES)} masked LM, or the bare backbone"
            )
        self.tokenizer = load_tokenizer(self.teacher_dir, config.trust_remote_code)
        if self.mlm and self.tokenizer.mask_token_id is None:
            raise InputError(f"the tokenizer of --teacher {teacher_dir} has no mask token, so nothing can be masked")
        self.read, self.train_texts, self.held_texts = read_split_corpus(corpus, text_field, config)

    def prepare(self, runtime, dist, run_dir: Path, bars) -> Setup:  # noqa: ARG002 - every stage takes the same arguments
        """Training and held-out texts tokenized as one set (the bank covers both); the teacher loaded."""
        from codir_edge.models.loading import load_backbone

        config = self.config
        self.encoded, self.n_train, self.held = encode_corpus(self.tokenizer, self.train_texts, self.held_texts,
                                                              self.teacher_config, config.max_length)  # fmt: skip
        teacher = load_backbone(self.teacher_dir, self.mlm, config.trust_remote_code).to(runtime.device)
        return Setup.for_bank(
            self.tokenizer, teacher, self.encoded, layer_map(self.teacher_layers, self.student_layers),
            weights_digest(self.teacher_dir), config.pooling, config.max_length, with_logits=False,
        )  # fmt: skip

    def build(self, setup: Setup, bank, runtime, dist):
        """(the student wrapped with its objective, the engine's loop); the skip-initialised student is
        scored first, the baseline the epochs improve on."""
        import torch

        from codir_edge.compress.objectives import PreDistiller
        from codir_edge.compress.student import skip_student
        from codir_edge.models.predict import host_to, to_device

        config, encoded, n_train = self.config, self.encoded, self.n_train
        held_enc = subset_encoded(encoded, self.held)
        special = np.asarray(self.tokenizer.all_special_ids, dtype=np.int64)
        masking = (special, self.tokenizer.mask_token_id, len(self.tokenizer), config.mlm_probability)
        teacher = setup.teacher
        self.teacher_mlm = mlm_accuracy(teacher, held_enc, masking, runtime, config) if self.mlm else None
        student = skip_student(teacher, self.student_layers)
        if self.mlm:
            teacher.eval().requires_grad_(False)  # stays for the online MLM-KD term
        else:
            setup.free_teacher()
            teacher = None
        torch.manual_seed(config.seed)  # the heads start the same on every rank
        teacher_width = width(self.teacher_config)
        distiller = PreDistiller(student, bank, teacher, config, width(student.config), teacher_width)
        distiller = distiller.to(runtime.device)
        mlm = self.mlm

        def make_batch(global_rows, rows, epoch, batch_no):
            """Masks and random negatives for the whole global batch, from its position: every rank
            (and one process alone) draws the same, and a resumed run draws what it would have."""
            rng = np.random.default_rng([config.seed, epoch, batch_no])
            padded = pad_batch(encoded, global_rows)
            labels = None
            if mlm:
                padded["input_ids"], labels = mask_tokens(padded["input_ids"], padded["attention_mask"], *masking, rng)
            negatives = random_negatives(global_rows, n_train, config.negatives, rng)
            part = slice(dist.rank, None, dist.world)
            longest = int(padded["attention_mask"][part].sum(axis=1).max())  # this rank's rows need no more
            inputs = to_device({name: value[part, :longest] for name, value in padded.items()}, runtime)
            targets = host_to(torch.from_numpy(labels[part, :longest]), runtime.device) if mlm else None
            negatives = host_to(torch.from_numpy(negatives[part]), bank.device)
            return inputs, torch.from_numpy(rows), targets, negatives

        def evaluate() -> dict[str, float]:
            return held_out_scores(distiller, held_enc, self.held, masking, runtime, config, dist)

        loop = Loop(
            label="compress (pre)", config=config, data_key=setup.key, lengths=encoded.lengths[:n_train],
            make_batch=make_batch, evaluate=evaluate, headline="cka",
            hints={"contrastive": " or raise --contrastive-temperature"},
        )  # fmt: skip
        self.initial = evaluate()
        return distiller, loop

    def fields(self, trained) -> dict:
        """The report fields only this stage has (and the ones whose value it decides)."""
        final = trained.history[-1]
        read = self.read
        return {
            "metric": "cka",
            "dev": {k: v for k, v in final.items() if k not in ("epoch", "step")},
            "initial_dev": self.initial,
            "teacher_dev": {"mlm_accuracy": self.teacher_mlm} if self.mlm else {},
            "objective": "codir",
            "mlm": self.mlm,
            "student_init": "skip",
            "corpus": {"files": read.files, "texts": len(read), "duplicates_dropped": read.duplicates},
            "train_examples": self.n_train,
            "held_out_examples": len(self.held),
            "data": str(self.corpus),
        }


def random_negatives(global_rows: np.ndarray, n_train: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """(G, K + G) bank rows per anchor: K uniform draws from the training rows other than the anchor,
    then the whole global batch (the anchor's own column is left out by the loss)."""
    anchors = global_rows.astype(np.int64)
    drawn = rng.integers(0, n_train - 1, size=(len(anchors), k))
    drawn += drawn >= anchors[:, None]  # skip the anchor: uniform over the other n_train - 1 rows
    in_batch = np.broadcast_to(anchors, (len(anchors), len(anchors)))
    return np.concatenate([drawn, in_batch], axis=1)


def subset_encoded(encoded: Encoded, rows: np.ndarray) -> Encoded:
    types = [encoded.token_type_ids[i] for i in rows] if encoded.token_type_ids is not None else None
    return Encoded([encoded.input_ids[i] for i in rows], types, encoded.targets[rows], encoded.pad_id)
