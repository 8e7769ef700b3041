"""``--task embedding``: what the embed stage adds to the compress spine (``compress/run.py``).

The teacher is a sentence-embedding model: a sentence-transformers folder (its pooling and Normalize
read from ``modules.json``) or a bare encoder with ``--pooling`` and ``--normalize``. The data is
unlabelled text, read as CoDIR-Pre reads it (both sentences of a pair, duplicates dropped) with a
seeded held-out slice; the bank holds each text's pooled teacher embedding (and the layer summaries
the contrastive term reads), one teacher pass for every objective; the student is the teacher's
skip-initialised encoder; negatives are drawn as CoDIR-Pre draws them. Each epoch is scored on the
held-out slice, and the student is written as a sentence-transformers folder with the teacher's head.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from codir_edge.compress.config import EmbedConfig
from codir_edge.compress.pre import encode_corpus, random_negatives, read_split_corpus, subset_encoded
from codir_edge.compress.setup import Setup
from codir_edge.compress.student import check_student_layers, layer_map
from codir_edge.core.errors import InputError
from codir_edge.data.encode import Encoded, pad_batch
from codir_edge.models.checkpoint import check_max_length, num_layers, read_model_config, weights_digest
from codir_edge.models.families import family_of, width
from codir_edge.models.sentence import SentenceHead, read_sentence_head, write_sentence_head
from codir_edge.models.vocab import parse_vocab
from codir_edge.training.engine import Loop


def teacher_head(teacher_dir: Path, config: EmbedConfig) -> SentenceHead:
    """The teacher's sentence head: its own (sentence-transformers folder) or the flags' (bare encoder)."""
    from codir_edge.models.embed import folder_head

    head = folder_head(teacher_dir, SentenceHead(config.pooling, config.normalize), "--teacher",
                       " (with --pooling and --normalize)")  # fmt: skip
    if read_sentence_head(teacher_dir) is None:
        return head
    if config.pooling not in ("mean", head.pooling):  # "mean" is the flag's default: the folder decides
        raise InputError(f"--pooling {config.pooling} differs from --teacher {teacher_dir}'s own {head.pooling} "
                         "pooling (modules.json): drop --pooling")  # fmt: skip
    if config.normalize and not head.normalize:
        raise InputError(f"--teacher {teacher_dir} has no Normalize module, so --normalize would change its "
                         "embedding: drop --normalize")  # fmt: skip
    return head


class EmbedStage:
    """The embed stage's part of a run, from its cheap checks (the constructor) to its report fields."""

    name = "embed"

    def __init__(self, teacher_dir: Path, corpus: str | Path, config: EmbedConfig, text_field: str | None = None):
        from codir_edge.models.loading import load_tokenizer

        self.teacher_dir, self.corpus, self.config = Path(teacher_dir), corpus, config
        self.hard_info: dict | None = None  # --negative-sampling hard: how the neighbour lists were computed
        self.vocabulary: dict | None = None  # --vocab: rows kept, bytes saved, texts that tokenize differently
        self.teacher_config = read_model_config(self.teacher_dir, "--teacher")
        family_of(self.teacher_config)  # an unknown family is refused before anything loads
        self.head = teacher_head(self.teacher_dir, config)
        self.teacher_layers = num_layers(self.teacher_config)
        self.student_layers = check_student_layers(config.student_layers, self.teacher_layers, self.teacher_dir)
        check_max_length(self.teacher_config, config.max_length, self.teacher_dir)
        self.tokenizer = load_tokenizer(self.teacher_dir, config.trust_remote_code)
        self.read, self.train_texts, self.held_texts = read_split_corpus(corpus, text_field, config)

    def prepare(self, runtime, dist, run_dir: Path, bars) -> Setup:  # noqa: ARG002 - every stage takes the same arguments
        """Training and held-out texts tokenized as one set (the bank covers both); the teacher loaded."""
        from codir_edge.models.loading import load_backbone

        config, self.run_dir = self.config, run_dir
        self.encoded, self.n_train, self.held = encode_corpus(self.tokenizer, self.train_texts, self.held_texts,
                                                              self.teacher_config, config.max_length)  # fmt: skip
        teacher = load_backbone(self.teacher_dir, False, config.trust_remote_code).to(runtime.device)
        return Setup.for_bank(
            self.tokenizer, teacher, self.encoded, layer_map(self.teacher_layers, self.student_layers),
            weights_digest(self.teacher_dir), self.head.pooling, config.max_length, with_logits=False,
            embedding=self.head.pooling,
        )  # fmt: skip

    def build(self, setup: Setup, bank, runtime, dist):
        """(the student wrapped with its objective, the engine's loop); the skip-initialised student is
        scored first, the baseline the epochs improve on."""
        import torch

        from codir_edge.compress.objectives import EmbedDistiller
        from codir_edge.compress.student import skip_student
        from codir_edge.models.predict import to_device

        config, encoded, n_train = self.config, self.encoded, self.n_train
        student = skip_student(setup.teacher, self.student_layers)
        if parse_vocab(config.vocab) != "full":
            student, encoded = self._cut_vocabulary(student, setup, dist)
        held_enc = subset_encoded(encoded, self.held)
        setup.free_teacher()
        distiller = EmbedDistiller(student, bank, config, self.head.pooling, width(student.config),
                                   width(self.teacher_config)).to(runtime.device)  # fmt: skip
        hard = self._hard_lists(bank) if config.negative_sampling == "hard" else None

        def make_batch(global_rows, rows, epoch, batch_no):
            """Negatives for the whole global batch from its position, as CoDIR-Pre draws them (random texts and
            the batch), half of the random ones from the anchor's hard list with --negative-sampling hard."""
            rng = np.random.default_rng([config.seed, epoch, batch_no])
            padded = pad_batch(encoded, global_rows)
            negatives = random_negatives(global_rows, n_train, config.negatives, rng)
            if hard is not None:
                negatives = with_hard(negatives, hard[global_rows], math.ceil(config.negatives / 2), rng)
            part = slice(dist.rank, None, dist.world)
            longest = int(padded["attention_mask"][part].sum(axis=1).max())
            inputs = to_device({name: value[part, :longest] for name, value in padded.items()}, runtime)
            return inputs, torch.from_numpy(rows), None, torch.from_numpy(negatives[part]).to(bank.device)

        def evaluate() -> dict[str, float]:
            return held_out_embedding_scores(distiller, held_enc, self.held, runtime, config, dist)

        loop = Loop(
            label="compress (embedding)", config=config, data_key=setup.key, lengths=encoded.lengths[:n_train],
            make_batch=make_batch, evaluate=evaluate, headline="cosine",
            hints={"contrastive": " or raise --contrastive-temperature"},
        )  # fmt: skip
        self.initial = evaluate()
        return distiller, loop

    def _cut_vocabulary(self, student, setup: Setup, dist):
        """(student, the corpus as it reads it) over the rows its training texts use (``--vocab``); the tokenizer
        the student is saved with becomes the cut one."""
        from codir_edge.compress.vocab import cut_vocabulary, vocab_report

        config, n_train = self.config, self.n_train
        width = student.get_input_embeddings().embedding_dim
        student, tokenizer, made = cut_vocabulary(student, setup.tokenizer, self.encoded.input_ids[:n_train],
                                                  parse_vocab(config.vocab), self.run_dir, dist)  # fmt: skip
        setup.tokenizer = tokenizer
        encoded, _, _ = encode_corpus(tokenizer, self.train_texts, self.held_texts, self.teacher_config,
                                      config.max_length)  # fmt: skip
        before = (subset_encoded(self.encoded, np.arange(n_train)), subset_encoded(self.encoded, self.held))
        after = (subset_encoded(encoded, np.arange(n_train)), subset_encoded(encoded, self.held))
        self.vocabulary = vocab_report(made, width, before, after, scored="held-out")
        return student, encoded

    def _hard_lists(self, bank) -> np.ndarray:
        """(N, 4K) each text's nearest training texts by the teacher's own summaries (near-duplicates and
        held-out texts left out), computed once from the bank (``bank/hard.py``)."""
        import torch

        from codir_edge.compress.bank.hard import hard_neighbours

        n_train = self.n_train

        def is_negative(anchors: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return (torch.arange(len(targets)) < n_train).expand(len(anchors), -1)  # any training text

        lists, self.hard_info = hard_neighbours(bank, is_negative, 4 * self.config.negatives, self.config.seed)
        return lists.numpy()

    def save_files(self, folder: Path) -> None:
        """The sentence-transformers files beside the saved student: the teacher's head, the run's length."""
        write_sentence_head(folder, self.head, width(self.teacher_config), self.config.max_length)

    def fields(self, trained) -> dict:
        """The report fields only this stage has (and the ones whose value it decides)."""
        from codir_edge.compress.fine import last_window_terms

        final = trained.history[-1]
        read = self.read
        return {
            "task": "embedding",
            "metric": "cosine",
            "dev": {k: v for k, v in final.items() if k not in ("epoch", "step")},
            "initial_dev": self.initial,
            "teacher_dev": {"cosine": 1.0},
            "objective": self.config.objective,
            "student_init": "skip",
            "embedding": {"pooling": self.head.pooling, "normalize": self.head.normalize},
            "corpus": {"files": read.files, "texts": len(read), "duplicates_dropped": read.duplicates},
            "train_examples": self.n_train,
            "held_out_examples": len(self.held),
            "data": str(self.corpus),
            "contrastive_end": last_window_terms(trained.log_path, "contrastive") or None,
            "hard_negatives": self.hard_info,
            "vocabulary": self.vocabulary,
        }


def with_hard(negatives: np.ndarray, lists: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``negatives`` (G, K + G) with its first ``count`` columns replaced by distinct random members of
    each anchor's hard list (G, M), -1 padded (kept where a list runs short)."""
    keys = rng.random(lists.shape)
    keys[lists < 0] = -1.0
    chosen = np.take_along_axis(lists, np.argsort(-keys, axis=1, kind="stable")[:, :count], axis=1)  # (G, count)
    out = negatives.copy()
    out[:, : chosen.shape[1]] = np.where(chosen >= 0, chosen, negatives[:, : chosen.shape[1]])
    return out


def held_out_embedding_scores(distiller, held_enc: Encoded, held_rows, runtime, config, dist) -> dict[str, float]:
    """How close the student's embeddings are to the teacher's on texts it never trained on.

    cosine: the mean cosine of each text's student and teacher embedding (1: the same directions).
    retrieval_top1: the share of held-out texts whose student embedding is nearest (cosine) to the
    teacher's embedding of the same text among all held-out ones: a geometry check that no head helps.
    """
    import torch
    from torch.nn import functional as F

    from codir_edge.compress.bank.build import compute_summaries

    _, student = compute_summaries(distiller.student, held_enc, [], distiller.pooling, runtime,
                                   config.eval_batch_size, dist, with_logits=False,
                                   embedding=distiller.pooling)  # fmt: skip
    bank = distiller._bank[0]
    with torch.inference_mode():
        teacher = bank.rows(bank.logits, torch.as_tensor(held_rows, device=bank.device), "cpu").float()
        s, t = F.normalize(student.float(), dim=-1), F.normalize(teacher, dim=-1)
        cosine = float((s * t).sum(dim=-1).mean())
        hits = (s @ t.T).argmax(dim=1) == torch.arange(len(held_rows))
    return {"cosine": cosine, "retrieval_top1": float(hits.float().mean())}
