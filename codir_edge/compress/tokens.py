"""``--task ner``: what the token stage adds to the compress spine (``compress/run.py``).

The teacher is a token classifier (``finetune --task ner``); the data is word-tagged sentences with
the teacher's own label list; the student is the teacher's skip-initialised layers with its head.
There is no bank: per-token targets for every piece of every sentence would be the size of the
teacher's activations (CoNLL-2003's train split: 270k pieces x 3 layers x 384 x 2 bytes = 0.6 GB
in fp16 for codir), and a teacher forward in inference mode costs less than the student's forward and
backward, so the teacher runs beside the student on each batch. Each epoch is scored by dev entity F1.
"""

from __future__ import annotations

from pathlib import Path

from codir_edge.compress.config import TokenConfig
from codir_edge.compress.setup import Setup
from codir_edge.compress.student import check_student_layers, count_parameters, layer_map
from codir_edge.core.errors import InputError
from codir_edge.data import DataSpec
from codir_edge.data.ner import NER_TASK, TaggedSplit, load_tagged_train_dev
from codir_edge.models.checkpoint import check_max_length, num_layers, read_model_config
from codir_edge.models.families import family_of
from codir_edge.models.tagger import tagger_labels
from codir_edge.models.vocab import parse_vocab
from codir_edge.training.checkpoints import data_key
from codir_edge.training.engine import Loop


class TokenStage:
    """The token stage's part of a run, from its cheap checks (the constructor) to its report fields."""

    name = "token"

    def __init__(self, teacher_dir: Path, data: DataSpec, config: TokenConfig, student_dir: Path | None = None,
                 eval_data: DataSpec | None = None):  # fmt: skip
        from codir_edge.models.loading import load_tokenizer

        if student_dir is not None:
            raise InputError("--student does not apply to --task ner: the student is the teacher's skip-initialised "
                             "layers (use --student-layers)")  # fmt: skip
        self.teacher_dir, self.data, self.config = Path(teacher_dir), data, config
        self.teacher_config = read_model_config(self.teacher_dir, "--teacher")
        self.labels = tagger_labels(self.teacher_config, self.teacher_dir)
        if data.labels and list(data.labels) != self.labels:
            raise InputError(f"--labels differs from the teacher's own ({', '.join(self.labels)}): drop --labels, "
                             "the teacher's order is used")  # fmt: skip
        self.segments = family_of(self.teacher_config).takes_segments(self.teacher_config)
        self.teacher_layers = num_layers(self.teacher_config)
        self.student_layers = check_student_layers(config.student_layers, self.teacher_layers, self.teacher_dir)
        check_max_length(self.teacher_config, config.max_length, self.teacher_dir)
        self.tokenizer = load_tokenizer(self.teacher_dir, config.trust_remote_code)
        self.train_set, self.dev, _ = load_tagged_train_dev(
            data.data, eval_data.data if eval_data else None, self.labels, config.max_train_samples,
            config.max_eval_samples, config.seed,
        )  # fmt: skip
        self.unlabeled = untagged_sentences(config.unlabeled, self.train_set, self.dev) if config.unlabeled else None
        self.vocabulary: dict | None = None  # --vocab auto: rows kept, bytes saved, texts that tokenize differently

    def prepare(self, runtime, dist, run_dir: Path, bars) -> Setup:  # noqa: ARG002 - every stage takes the same arguments
        """Sentences tokenized with first-piece labels; the teacher loaded, frozen, to run beside the student."""
        from codir_edge.data.ner_encode import truncation_note
        from codir_edge.models.loading import load_trained_token_classifier

        config, self.run_dir = self.config, run_dir
        self.train_tok, self.dev_tok = self._encode(self.tokenizer)
        self.truncation = truncation_note(self.train_tok, self.dev_tok, config.max_length)
        teacher = load_trained_token_classifier(self.teacher_dir, config.trust_remote_code).to(runtime.device).eval()
        teacher.requires_grad_(False)
        key = data_key(self.teacher_dir, self.train_tok.encoded, self.train_tok.labels)
        mapping = layer_map(self.teacher_layers, self.student_layers)
        return Setup(self.tokenizer, teacher, self.train_tok.encoded, mapping, key, "mean",
                     with_logits=False, needs_bank=False, teacher_parameters=count_parameters(teacher))  # fmt: skip

    def _encode(self, tokenizer):
        """(training rows, tagged then untagged; dev rows), first pieces labelled, as ``tokenizer`` splits them."""
        from codir_edge.data.ner_encode import concat_tokens, encode_tagged

        length, segments = self.config.max_length, self.segments
        train = encode_tagged(tokenizer, self.train_set, self.labels, length, segments)
        if self.unlabeled is not None:  # after the tagged rows: the teacher's outputs are their only targets
            extra = encode_tagged(tokenizer, self.unlabeled[0], self.labels, length, segments, tagged=False)
            train = concat_tokens(train, extra)
        return train, encode_tagged(tokenizer, self.dev, self.labels, length, segments)

    def _cut_vocabulary(self, student, setup: Setup, dist):
        """(student, its ids per full-vocabulary id, its dev rows) over the rows the training sentences use
        (``--vocab auto``, which keeps every piece they split into: the teacher and the student read the same
        pieces, so per-piece targets stay aligned)."""
        import torch

        from codir_edge.compress.vocab import cut_vocabulary, vocab_report

        width = student.get_input_embeddings().embedding_dim
        student, tokenizer, made = cut_vocabulary(student, setup.tokenizer, self.train_tok.encoded.input_ids, "auto",
                                                  self.run_dir, dist)  # fmt: skip
        setup.tokenizer = tokenizer
        train, dev = self._encode(tokenizer)
        self.vocabulary = vocab_report(made, width, (self.train_tok.encoded, self.dev_tok.encoded),
                                       (train.encoded, dev.encoded))  # fmt: skip
        unknown = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0
        ids = torch.tensor([new if new >= 0 else unknown for new in made.id_map()], dtype=torch.long)
        return student, ids, dev

    def build(self, setup: Setup, bank, runtime, dist):  # noqa: ARG002 - no bank: the teacher runs online
        """(the student wrapped with its objective, the engine's loop); the teacher is scored on dev once."""
        import torch

        from codir_edge.compress.student import skip_student
        from codir_edge.compress.token_objective import TokenDistiller
        from codir_edge.data.encode import pad_batch
        from codir_edge.data.ner_encode import pad_labels
        from codir_edge.models.predict import host_to, to_device
        from codir_edge.models.tagger import score_tagger

        config, train_tok, dev_tok = self.config, self.train_tok, self.dev_tok
        teacher = setup.teacher
        student, student_ids, student_dev = skip_student(teacher, self.student_layers), None, dev_tok
        if parse_vocab(config.vocab) != "full":
            student, student_ids, student_dev = self._cut_vocabulary(student, setup, dist)
        student.train().requires_grad_(True)
        distiller = TokenDistiller(student, teacher, config, setup.mapping, student_ids).to(runtime.device)

        def dev_scores(model, rows) -> dict[str, float]:
            return score_tagger(model, rows, self.dev, self.labels, runtime, config.eval_batch_size)

        self.teacher_dev = dev_scores(teacher, dev_tok)

        def make_batch(global_rows, rows, epoch, batch_no):  # noqa: ARG001 - nothing random beyond the order
            targets = torch.from_numpy(pad_labels(train_tok, rows))
            inputs = to_device(pad_batch(train_tok.encoded, rows), runtime)
            return inputs, torch.from_numpy(rows), host_to(targets, runtime.device), None

        def evaluate() -> dict[str, float]:
            scores = dev_scores(student, student_dev)
            student.train()
            return scores

        loop = Loop(label="compress (ner)", config=config, data_key=setup.key, lengths=train_tok.encoded.lengths,
                    make_batch=make_batch, evaluate=evaluate, headline="f1",
                    hints={"contrastive": " or raise --contrastive-temperature"})  # fmt: skip
        return distiller, loop

    def fields(self, trained) -> dict:
        """The report fields only this stage has (and the ones whose value it decides)."""
        from codir_edge.compress.fine import last_window_terms

        final = trained.history[-1]
        return {
            "task": NER_TASK,
            "labels": self.labels,
            "metric": "f1",
            "dev": {k: v for k, v in final.items() if k not in ("epoch", "step")},
            "teacher_dev": self.teacher_dev,
            "objective": self.config.objective,
            "student_init": "skip",
            "train_examples": len(self.train_set),
            "transfer_set": None if self.unlabeled is None else {
                "labeled_rows": len(self.train_set), "unlabeled": self.unlabeled[1], "augmented": None,
                "rows_per_epoch": len(self.train_tok)},
            "dev_examples": len(self.dev_tok),
            "data": self.data.data,
            "contrastive_end": last_window_terms(trained.log_path, "contrastive") or None,
            "truncation": self.truncation,
            "vocabulary": self.vocabulary,
        }


def untagged_sentences(path: str, train: TaggedSplit, dev: TaggedSplit) -> tuple[TaggedSplit, dict]:
    """``--unlabeled`` as sentences of whitespace-separated words (placeholder tags), with repeats and the
    tagged train and dev sentences dropped and counted (``data/unlabeled.py``, as CoDIR-Fine keeps them)."""
    from codir_edge.data.tasks import TASKS
    from codir_edge.data.unlabeled import keep_new, read_unlabeled, text_key

    texts, _ = read_unlabeled(path, TASKS["classification"])
    kept = keep_new(texts, None, (text_key(t) for t in train.texts), (text_key(t) for t in dev.texts), str(path))
    words = [text.split() for text in kept.examples.texts]
    split = TaggedSplit(words, [["O"] * len(w) for w in words], list(range(1, len(words) + 1)), str(path))
    return split, kept.counts()
