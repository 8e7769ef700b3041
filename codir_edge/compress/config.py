"""Compression settings: one validated dataclass per CoDIR stage on a shared base, saved inside every
checkpoint and next to the student.

Both stages share the engine, the optimiser, the contrastive loss and its settings
(:class:`DistillConfig`); CoDIR-Fine (:class:`FineConfig`) adds the task, the other objectives, the
transfer set and the student's width, CoDIR-Pre (:class:`PreConfig`) masking and a held-out slice of
its corpus. The command takes every setting of both; :func:`stage_config` refuses one that the chosen
stage would ignore, so a setting the run would not read is an error, not a silent no-op.

Defaults follow the CoDIR release (T = 2, beta = 0.5, tau = 0.07, p = 128) except where a measurement
on SST-2 said otherwise: K = 25 instead of 100 and lambda = 0.1 come from the sweep in
``benchmarks/compress_quality.py`` (results in ``benchmarks/results/compress_sweep.json``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from codir_edge.core.config_checks import require_counts, require_positive
from codir_edge.core.errors import InputError
from codir_edge.core.settings import DATA, TRAINING, like, optional_str, setting
from codir_edge.data.embedding import EMBEDDING_TASK, is_embedding
from codir_edge.data.ner import NER_TASK, is_ner
from codir_edge.models.vocab import parse_vocab
from codir_edge.training.config import TrainingConfig

OBJECTIVES = ("codir", "kd", "mse", "none")
EMBED_OBJECTIVES = ("codir", "mse", "cosine")  # --task embedding: no logits, so no kd and no plain fine-tuning
POOLINGS = ("mean", "cls", "max")
CONTRASTIVE_FORMS = ("infonce", "nce")
LAYER_CONTRASTS = ("joint", "each")
NEGATIVE_SAMPLING = ("label", "hard", "instance")
TOKEN_NEGATIVES = ("label", "instance")
PKD_TOKENS = ("first", "all")  # --task ner: the positions whose hidden states mse matches
STAGES = ("fine", "pre")  # --task embedding picks the third, "embed", by itself
BUDGET_FIELDS = ("budget_threads", "budget_seq_len", "budget_device", "devices")
LOSS = "Objective"
SHAPE = "Student shape"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def budget_seq_len(value: str) -> int | str:
    """``--budget-seq-len``: a length, or 'real' for the task's dev sentences."""
    if value == "real":
        return value
    try:
        return int(value)
    except ValueError:
        raise InputError(f"--budget-seq-len must be a length or 'real', got {value!r}") from None


@dataclass(frozen=True, kw_only=True)
class DistillConfig(TrainingConfig):
    """The shared training settings (``training/config.py``) plus what both CoDIR stages read."""

    stage: ClassVar[str]
    batch_size: int = setting(32, help="Examples per optimizer step, over all processes together.", panel=TRAINING)
    # student; None: half the teacher's layers (rounded down, at least 1)
    student_layers: int | None = setting(
        None, help="Student depth, skip-initialised from the teacher (default: half the teacher's layers)."
    )
    # objective: L = (1 - beta) CE + beta T^2 KL(t/T || s/T) + lambda L_con   (codir.md, step 5)
    pooling: str = setting(
        "mean",
        help="Layer summary: masked mean of tokens (paper), [CLS] (release) or max. --task embedding: also the "
        "sentence pooling of a bare encoder (a sentence-transformers teacher's own pooling is used).",
        panel=LOSS,
        choices=POOLINGS,
    )
    contrastive: str = setting(
        "infonce", help="InfoNCE (softmax, paper) or binary NCE (CRD, release).", panel=LOSS,
        choices=CONTRASTIVE_FORMS,
    )  # fmt: skip
    # joint: one contrast on the mapped layers' concatenated summaries (codir.md, step 2); each: one contrast
    # per mapped layer with its own heads, the losses averaged, so that no layer is carried by the others
    layer_contrast: str = setting(
        "joint",
        help="joint: one contrast on the concatenated summaries of the mapped layers (paper); each: one per "
        "mapped layer, each with its own heads, averaged (every layer must pick out its own teacher layer).",
        panel=LOSS,
        choices=LAYER_CONTRASTS,
    )
    # K label-aware negatives per example; the release's 100 did no better on SST-2, at more cost
    negatives: int = setting(
        25,
        help="K negatives per example from the teacher bank: label-aware (fine), or random corpus rows on top of "
        "the rest of the batch (pre).",
        panel=LOSS,
    )
    contrastive_temperature: float = setting(0.07, help="tau of the contrastive scores.", panel=LOSS)
    projection_dim: int = setting(128, help="Output width p of the two projection heads.", panel=LOSS)
    # lambda: the release tunes it per task
    contrastive_weight: float = setting(0.1, help="lambda, the weight of the contrastive term.", panel=LOSS)
    kd_temperature: float = setting(2.0, help="T of the logit distillation.", panel=LOSS)
    kd_weight: float = setting(0.5, help="beta: (1 - beta) CE + beta KD (pre: on the masked-LM terms).", panel=LOSS)

    def __post_init__(self) -> None:
        choices = {"pooling": POOLINGS, "contrastive": CONTRASTIVE_FORMS, "layer_contrast": LAYER_CONTRASTS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"unknown {_flag(name)} '{getattr(self, name)}': use one of {', '.join(allowed)}")
        require_positive(self, ("negatives", "contrastive_temperature", "projection_dim", "kd_temperature"))
        super().__post_init__()
        if self.contrastive_weight < 0:
            raise InputError(f"--contrastive-weight must not be negative, got {self.contrastive_weight}")
        if not 0 <= self.kd_weight <= 1:
            raise InputError(f"--kd-weight must be in [0, 1] (it mixes CE and KD), got {self.kd_weight}")
        require_counts(self, ("student_layers",))

    def to_dict(self) -> dict:
        return {"stage": self.stage, **asdict(self)}


@dataclass(frozen=True, kw_only=True)
class FineConfig(DistillConfig):
    """CoDIR-Fine: a fine-tuned classifier distilled on its labelled task."""

    stage: ClassVar[str] = "fine"
    task: str | None = setting(
        None,
        help="--stage fine: the teacher's GLUE task (sst2, mrpc, rte, cola, stsb, qnli, qqp, mnli, wnli) or "
        "'classification' / 'regression' for custom data. 'embedding': distil a sentence-embedding model on "
        "unlabelled text (--data as --stage pre reads it). 'ner': a token classifier on word-tagged sentences.",
        flags=("--task", "-t"),
        panel=DATA,
    )
    objective: str = setting(
        "codir",
        help="codir: contrastive on intermediate layers + KD; kd: logits only; mse: BERT-PKD [CLS] MSE + KD; "
        "none: plain fine-tuning of the same student. --task embedding: cosine (1 - cosine to the teacher's "
        "embedding), mse (MSE on the pooled embeddings, sentence-transformers' recipe), codir (cosine + the "
        "contrastive term).",
        panel=LOSS,
        choices=OBJECTIVES + ("cosine",),
    )
    # BERT-PKD's beta for the normalised [CLS] MSE (it searched 10..1000)
    mse_weight: float = setting(100.0, help="Weight of BERT-PKD's [CLS] MSE (objective mse).", panel=LOSS)
    # label: uniform over the anchor's negatives (today's default); hard: half from the rows the teacher
    # finds most similar among them (compress/bank/hard.py); instance: any other row is a negative, same
    # label included (CRD's instance discrimination), half of them the teacher's nearest rows: the term
    # must then reproduce the teacher's geometry within a class, which KD's one label does not teach
    negative_sampling: str = setting(
        "label",
        help="How codir draws its K negatives: label (uniformly among examples of another label, or beyond "
        "the margin), hard (half of them from the teacher's own nearest such examples, the rest as label) or "
        "instance (every other example is a negative, same label included; half from the teacher's nearest "
        "examples, the rest uniform). --task embedding: label draws random texts, hard half of them from the "
        "teacher's nearest texts.",
        panel=LOSS,
        choices=NEGATIVE_SAMPLING,
    )
    # regression: |y_i - y_j| above this is a negative (None: 20% of the range)
    negative_margin: float | None = setting(
        None,
        help="Regression tasks: targets further apart than this are negatives (default: 20% of the target range).",
        panel=LOSS,
    )
    # the transfer set (compress/transfer.py): unlabelled in-domain text and augmented copies of the labelled
    # sentences, labelled by the teacher's bank only (KD and contrastive terms, never CE)
    unlabeled: str | None = setting(
        None,
        help="--stage fine: unlabelled in-domain text for the transfer set (a .txt with one text per line, a "
        ".jsonl with a --text-column field, default 'text', and --text-pair-column, default 'text_pair', for "
        "pair tasks, or a data folder whose labels are ignored). The teacher labels it: KD and contrastive terms "
        "only, negatives by the teacher's argmax. Texts that are labelled or dev examples are dropped and counted.",
        panel=DATA,
        cli_type=Path | None,
        parse=optional_str,
    )
    unlabeled_per_epoch: int | None = setting(
        None, help="Rows without a label an epoch trains on (default: all); they rotate over epochs.", panel=DATA
    )
    labeled_repeat: int = setting(
        1,
        help="Times each labelled example is seen per epoch: raises CE's share beside a large transfer set.",
        panel=DATA,
    )
    augment: int = setting(
        0,
        help="--stage fine: new sentences made from each labelled one (token dropout, span deletion, swaps with "
        "the teacher's nearest vocabulary words), labelled by the teacher only. 0: off.",
        panel=DATA,
    )
    # vocabulary pruning (models/vocab.py): the student ships only the token rows its training text uses
    vocab: str | int = setting(
        "full",
        help="The student's vocabulary (--task ner: full or auto). full: the teacher's; auto: only the "
        "tokens the training text and transfer set use, plus special tokens and every single character (and byte) "
        "so any text still tokenizes; N: those plus the most frequent used tokens, N rows in all. The student is "
        "distilled with the vocabulary it ships with.",
        panel=SHAPE,
        cli_type=str,
        cli_default="full",
        parse=parse_vocab,
    )
    # width pruning (compress/prune.py): the fraction of each block's heads and FFN neurons the student keeps,
    # ranked by the teacher's |dL/dmask| over this many training sentences
    heads_keep: float = setting(
        1.0,
        help="Fraction of each layer's attention heads the student keeps: the teacher's most important ones "
        "(|dL/dmask| on training sentences), the rest removed. Not for deberta-v2, modernbert, mpnet.",
        panel=SHAPE,
    )
    ffn_keep: float = setting(
        1.0, help="Fraction of each layer's FFN neurons the student keeps, chosen the same way.", panel=SHAPE
    )
    importance_samples: int = setting(
        2048, help="Training sentences the head and neuron importance is scored on.", panel=SHAPE
    )
    # the student's shape from a latency budget (compress/shapes.py): INT8 p95 in ms on the target device
    latency_budget: float | None = setting(
        None,
        help="INT8 p95 latency budget in ms (batch 1): times student shapes (layers x heads x FFN) with random "
        "weights on the target and distils the largest that meets it.",
        panel=SHAPE,
    )
    budget_threads: int = setting(1, help="onnxruntime threads the budget is measured with.", panel=SHAPE)
    budget_seq_len: int | str = setting(
        128,
        help="Sequence length the budget is measured at, or 'real' for the task's dev sentences.",
        panel=SHAPE,
        cli_type=str,
        cli_default="128",
        parse=budget_seq_len,
    )
    budget_device: str | None = setting(
        None, help="Where the budget is measured: a name from --devices, ssh://user@host[:port], or local.",
        panel=SHAPE,
    )  # fmt: skip
    devices: str | None = setting(
        None, help="A devices.toml (as profile reads it) naming --budget-device.", panel=SHAPE,
        cli_type=Path | None, parse=optional_str,
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InputError(f"unknown --objective '{self.objective}': use one of {', '.join(OBJECTIVES)}")
        super().__post_init__()
        if self.mse_weight < 0:
            raise InputError(f"--mse-weight must not be negative, got {self.mse_weight}")
        if self.negative_margin is not None and self.negative_margin < 0:
            raise InputError(f"--negative-margin must not be negative, got {self.negative_margin}")
        if self.negative_sampling not in NEGATIVE_SAMPLING:
            raise InputError(f"unknown --negative-sampling '{self.negative_sampling}': use label, hard or instance")
        if self.negative_sampling != "label" and self.objective != "codir":
            raise InputError(f"--negative-sampling {self.negative_sampling} draws codir's negatives; --objective "
                             f"{self.objective} has none: drop it, or use --objective codir")  # fmt: skip
        require_counts(self, ("unlabeled_per_epoch", "labeled_repeat"))
        if self.augment < 0:
            raise InputError(f"--augment must not be negative, got {self.augment}: give new sentences per example")
        if self.objective == "none" and (self.unlabeled or self.augment):
            flag = "--unlabeled" if self.unlabeled else "--augment"
            raise InputError(
                f"{flag} needs a teacher term, and --objective none is plain fine-tuning on labels: "
                "use --objective codir or kd, or drop it"
            )
        self._check_width()
        parse_vocab(self.vocab)
        if self.unlabeled_per_epoch is not None and not self.unlabeled:
            raise InputError("--unlabeled-per-epoch applies with --unlabeled only: give unlabelled text, or drop it")
        if not self.task:
            raise InputError("--task is required for --stage fine: name the task the teacher was fine-tuned on")

    def _check_width(self) -> None:
        for name in ("heads_keep", "ffn_keep"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise InputError(f"{_flag(name)} must be in (0, 1] (a fraction to keep), got {value}")
        require_counts(self, ("importance_samples", "budget_threads"))
        seq_len = self.budget_seq_len
        if seq_len != "real" and not (isinstance(seq_len, int) and seq_len >= 1):
            raise InputError(f"--budget-seq-len must be a length or 'real', got {seq_len!r}")
        if self.latency_budget is None:
            defaults = {f.name: f.default for f in fields(self)}
            for name in BUDGET_FIELDS:
                if getattr(self, name) != defaults[name]:
                    raise InputError(f"{_flag(name)} applies with --latency-budget only: give a budget, or drop it")
            return
        if self.latency_budget <= 0:
            raise InputError(f"--latency-budget must be positive (milliseconds of INT8 p95), got {self.latency_budget}")
        given = [_flag(n) for n in ("student_layers",) if getattr(self, n) is not None]
        given += [_flag(n) for n in ("heads_keep", "ffn_keep") if getattr(self, n) != 1.0]
        if given:
            raise InputError(
                f"--latency-budget picks the student's shape, and {', '.join(given)} also sets it: give only one"
            )

    @property
    def prunes(self) -> bool:
        """Whether the student loses heads or FFN neurons (or a budget may make it)."""
        return self.heads_keep < 1.0 or self.ffn_keep < 1.0 or self.latency_budget is not None

    @property
    def bank_pooling(self) -> str:
        """BERT-PKD matches [CLS] states whatever ``--pooling`` says, so its bank holds [CLS] summaries."""
        return "cls" if self.objective == "mse" else self.pooling


@dataclass(frozen=True, kw_only=True)
class PreConfig(DistillConfig):
    """CoDIR-Pre: a pretrained backbone distilled on unlabelled text into a general student."""

    stage: ClassVar[str] = "pre"
    # BERT's masking for the masked-LM terms (teachers with an MLM head)
    mlm_probability: float = setting(
        0.15,
        help="--stage pre with a masked-LM teacher: share of tokens masked (BERT's 80/10/10 split).",
        panel=LOSS,
    )
    # corpus sentences kept out of training to score the student after each epoch
    held_out: int = setting(
        1000,
        help="--stage pre: corpus texts kept out of training to score the student each epoch (at most a tenth).",
        panel=DATA,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.mlm_probability < 1:
            raise InputError(f"--mlm-probability must be in (0, 1), got {self.mlm_probability}: BERT uses 0.15")
        require_counts(self, ("held_out",))
        if self.max_eval_samples is not None:  # the held-out slice is the pre stage's dev set
            raise InputError("--max-eval-samples applies to --stage fine only: drop it, or run --stage fine")

    @property
    def bank_pooling(self) -> str:
        return self.pooling


@dataclass(frozen=True, kw_only=True)
class EmbedConfig(DistillConfig):
    """``--task embedding``: a sentence-embedding teacher (a sentence-transformers folder, or an encoder with
    ``--pooling`` and ``--normalize``) distilled on unlabelled text; the student is written as a
    sentence-transformers folder. The objectives match the teacher's pooled embedding (``compress/embed.py``)."""

    stage: ClassVar[str] = "embed"
    task: str | None = like(FineConfig, "task")
    objective: str = like(FineConfig, "objective")
    normalize: bool = setting(
        False,
        help="--task embedding with a bare encoder: unit-length embeddings, as sentence-transformers' Normalize "
        "module makes them (a sentence-transformers teacher's own modules decide).",
        panel=LOSS,
    )
    held_out: int = like(PreConfig, "held_out")
    # label (the fine stage's name): random texts, as CoDIR-Pre draws them; hard: half from the teacher's nearest
    negative_sampling: str = like(FineConfig, "negative_sampling")
    vocab: str | int = like(FineConfig, "vocab")  # the rows the training texts use, as for classification

    def __post_init__(self) -> None:
        parse_vocab(self.vocab)
        if self.negative_sampling == "instance":
            raise InputError("--negative-sampling instance is how --task embedding always draws (texts have no "
                             "labels): use label (random texts) or hard")  # fmt: skip
        if self.negative_sampling == "hard" and self.objective != "codir":
            raise InputError(f"--negative-sampling hard draws codir's negatives; --objective {self.objective} has "
                             "none: drop it, or use --objective codir")  # fmt: skip
        if self.objective not in EMBED_OBJECTIVES:
            raise InputError(
                f"--objective {self.objective} does not apply to --task embedding (an embedding has no logits): "
                f"use one of {', '.join(EMBED_OBJECTIVES)}"
            )
        super().__post_init__()
        require_counts(self, ("held_out",))
        for name in ("kd_temperature", "kd_weight"):  # logits distillation: an embedding model has no logits
            if getattr(self, name) != next(f.default for f in fields(self) if f.name == name):
                raise InputError(f"{_flag(name)} does not apply to --task embedding (no logits): drop it")
        if self.max_eval_samples is not None:  # the held-out slice is its dev set, as for --stage pre
            raise InputError("--max-eval-samples does not apply to --task embedding: use --held-out")

    @property
    def bank_pooling(self) -> str:
        return self.pooling


@dataclass(frozen=True, kw_only=True)
class TokenConfig(DistillConfig):
    """``--task ner``: a token classifier distilled on word-tagged sentences (``compress/tokens.py``). The
    teacher runs beside the student on each batch (its per-token logits and states are the targets), so
    there is no bank; codir's contrastive term is per token, its negatives the batch's tokens of another label."""

    stage: ClassVar[str] = "token"
    task: str | None = like(FineConfig, "task")
    objective: str = like(FineConfig, "objective")
    mse_weight: float = like(FineConfig, "mse_weight")
    # --task ner: sentences without tags, split into words on whitespace; the teacher's per-token outputs
    # are their only targets (KD, PKD, contrastive by the teacher's argmax), never CE
    unlabeled: str | None = like(FineConfig, "unlabeled")
    # label: a token's negatives are the batch's tokens of another tag (CoDIR's label-aware rule); instance:
    # every other token of the batch, same tag included (CRD's instance discrimination), a harder task
    token_negatives: str = setting(
        "label",
        help="--task ner: codir's negatives for each token: the batch's tokens of another tag (label), or every "
        "other token of the batch, same tag included (instance).",
        panel=LOSS,
        choices=TOKEN_NEGATIVES,
    )
    # first: the labelled positions (each word's first piece), as the logit terms read; all: every piece the
    # attention mask keeps ([CLS], continuations, [SEP] too), the context a first piece is computed from
    pkd_tokens: str = setting(
        "first",
        help="--task ner, --objective mse: match the teacher's hidden states at each word's first piece (first) or at "
        "every piece of the sentence (all).",
        panel=LOSS,
        choices=PKD_TOKENS,
    )
    vocab: str | int = like(FineConfig, "vocab")  # --task ner: full or auto (a row budget would re-split words)

    def __post_init__(self) -> None:
        if isinstance(parse_vocab(self.vocab), int):
            raise InputError(f"--vocab {self.vocab} would split words into other pieces than the teacher reads, and "
                             "--task ner distils per piece: use --vocab auto")  # fmt: skip
        if self.objective not in OBJECTIVES:
            raise InputError(f"--objective {self.objective} does not apply to --task ner: use one of "
                             f"{', '.join(OBJECTIVES)}")  # fmt: skip
        super().__post_init__()
        if self.mse_weight < 0:
            raise InputError(f"--mse-weight must not be negative, got {self.mse_weight}")
        if self.token_negatives not in TOKEN_NEGATIVES:
            raise InputError(f"unknown --token-negatives '{self.token_negatives}': use label or instance")
        if self.token_negatives != "label" and self.objective != "codir":
            raise InputError(f"--token-negatives draws codir's negatives; --objective {self.objective} has none: "
                             "drop it, or use --objective codir")  # fmt: skip
        if self.pkd_tokens not in PKD_TOKENS:
            raise InputError(f"unknown --pkd-tokens '{self.pkd_tokens}': use first or all")
        if self.pkd_tokens != "first" and self.objective != "mse":
            raise InputError(f"--pkd-tokens picks where mse matches hidden states; --objective {self.objective} has "
                             "no such term: drop it, or use --objective mse")  # fmt: skip
        if self.objective == "none" and self.unlabeled:
            raise InputError("--unlabeled needs a teacher term, and --objective none is plain fine-tuning on tags: "
                             "use --objective codir or kd, or drop it")  # fmt: skip
        # the token term contrasts every labelled position with the batch's positions of another label
        for name in ("pooling", "contrastive", "negatives", "layer_contrast"):
            if getattr(self, name) != next(f.default for f in fields(self) if f.name == name):
                raise InputError(f"{_flag(name)} does not apply to --task ner (its contrastive term is per token, "
                                 "against the batch's tokens of another label): drop it")  # fmt: skip

    @property
    def bank_pooling(self) -> str:
        return self.pooling


# what run_compress takes: its class picks the stage
CompressConfig = FineConfig | PreConfig | EmbedConfig | TokenConfig
CONFIGS = {config.stage: config for config in (FineConfig, PreConfig, EmbedConfig, TokenConfig)}


def _stage_name(config: type) -> str:
    return {EmbedConfig: "--task embedding", TokenConfig: "--task ner"}.get(config, f"--stage {config.stage}")


def stage_config(stage: str, values: dict[str, Any]) -> CompressConfig:
    """The config of ``stage`` (``--task embedding`` picks the embed stage) from the settings of every stage
    (the command takes all of them); one that only another stage reads, set away from its default, is refused
    rather than silently ignored."""
    task = values.get("task")
    if stage == "pre" and task:
        raise InputError(
            f"--task {values['task']} does not apply to --stage pre (it distils on unlabelled text): drop --task"
        )
    if is_ner(task) and stage == "pre":
        raise InputError("--task ner does not apply to --stage pre: drop --stage")
    cls = CONFIGS["embed" if is_embedding(task) else "token" if is_ner(task) else stage]
    own = {f.name for f in fields(cls)}
    for other in CONFIGS.values():
        for item in fields(other):
            if item.name not in own and item.name in values and values[item.name] != item.default:
                raise InputError(f"{_flag(item.name)} applies to {_stage_name(other)} only: drop it, or run "
                                 f"{_stage_name(other)}")  # fmt: skip
    chosen = {name: value for name, value in values.items() if name in own}
    if cls is EmbedConfig:
        chosen["task"] = EMBEDDING_TASK
    if cls is TokenConfig:
        chosen["task"] = NER_TASK
    return cls(**chosen)
