"""Compression settings: one validated dataclass, saved inside every checkpoint and next to the student.

One class serves both stages (``stage = fine | pre``): they share the engine, the optimiser, the
contrastive loss and its settings, and a checkpoint compares every field on resume. Fields that
only one stage reads are checked to be at their defaults in the other (see ``FINE_ONLY`` and
``PRE_ONLY``), so a setting the run would ignore is an error, not a silent no-op.

Defaults follow the CoDIR release (T = 2, beta = 0.5, tau = 0.07, p = 128) except where a measurement
on SST-2 said otherwise: K = 25 instead of 100 and lambda = 0.1 come from the sweep in
``benchmarks/compress_quality.py`` (results in ``benchmarks/results/compress_sweep.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from codir_edge.core.config_checks import require_counts, require_positive
from codir_edge.core.errors import InputError
from codir_edge.training.config import TrainingConfig

OBJECTIVES = ("codir", "kd", "mse", "none")
POOLINGS = ("mean", "cls")
CONTRASTIVE_FORMS = ("infonce", "nce")
STAGES = ("fine", "pre")
# Read by one stage only: CoDIR-Pre has no task, labels or alternative objectives; CoDIR-Fine no
# masking and no held-out slice of a corpus.
FINE_ONLY = (
    "objective",
    "mse_weight",
    "negative_margin",
    "max_eval_samples",
    "unlabeled",
    "unlabeled_per_epoch",
    "labeled_repeat",
    "augment",
    "heads_keep",
    "ffn_keep",
    "importance_samples",
    "latency_budget",
    "budget_threads",
    "budget_seq_len",
    "budget_device",
    "devices",
)
BUDGET_FIELDS = ("budget_threads", "budget_seq_len", "budget_device", "devices")
PRE_ONLY = ("mlm_probability", "held_out")


@dataclass(frozen=True, kw_only=True)
class CompressConfig(TrainingConfig):
    """The shared training settings (``training/config.py``) plus CoDIR's."""

    task: str | None = None  # the fine stage's task; CoDIR-Pre has none
    stage: str = "fine"  # fine: distil a fine-tuned classifier on its task; pre: a backbone on unlabelled text
    # student
    student_layers: int | None = None  # None: half the teacher's layers (rounded down, at least 1)
    # objective: L = (1 - beta) CE + beta T^2 KL(t/T || s/T) + lambda L_con   (codir.md, step 5)
    objective: str = "codir"
    pooling: str = "mean"  # layer summary: masked mean of token states (paper) or [CLS] (release)
    contrastive: str = "infonce"  # softmax InfoNCE (paper) or CRD's binary NCE (release)
    negatives: int = 25  # K label-aware negatives per example; the release's 100 did no better on SST-2, at more cost
    contrastive_temperature: float = 0.07
    projection_dim: int = 128
    contrastive_weight: float = 0.1  # lambda: the release tunes it per task
    kd_temperature: float = 2.0
    kd_weight: float = 0.5  # beta
    mse_weight: float = 100.0  # BERT-PKD's beta for the normalised [CLS] MSE (it searched 10..1000)
    negative_margin: float | None = None  # regression: |y_i - y_j| above this is a negative (None: 20% of range)
    # CoDIR-Pre: BERT's masking for the masked-LM terms (teachers with an MLM head), and the corpus
    # sentences kept out of training to score the student after each epoch
    mlm_probability: float = 0.15
    held_out: int = 1000
    # CoDIR-Fine's transfer set (compress/transfer.py): unlabelled in-domain text and augmented copies of
    # the labelled sentences, labelled by the teacher's bank only (KD and contrastive terms, never CE)
    unlabeled: str | None = None  # a .txt, a .jsonl (text field: --text-column, default "text") or a data folder
    unlabeled_per_epoch: int | None = None  # unlabelled rows an epoch draws (None: all); they rotate over epochs
    labeled_repeat: int = 1  # times each labelled row is seen per epoch: the CE share of a large transfer set
    augment: int = 0  # new sentences made from each labelled one (token dropout, span deletion, word swaps)
    # width pruning (compress/prune.py): the fraction of each block's heads and FFN neurons the student keeps,
    # ranked by the teacher's |dL/dmask| over this many training sentences
    heads_keep: float = 1.0
    ffn_keep: float = 1.0
    importance_samples: int = 2048
    # the student's shape from a latency budget (compress/shapes.py): INT8 p95 in ms on the target device
    latency_budget: float | None = None
    budget_threads: int = 1
    budget_seq_len: int | str = 128  # a length, or "real" for the task's dev sentences one by one
    budget_device: str | None = None  # a name from --devices, ssh://user@host[:port], or local (default)
    devices: str | None = None  # a devices.toml, as profile reads it

    def __post_init__(self) -> None:
        choices = {"stage": STAGES, "objective": OBJECTIVES, "pooling": POOLINGS, "contrastive": CONTRASTIVE_FORMS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"unknown --{name} '{getattr(self, name)}': use one of {', '.join(allowed)}")
        require_positive(self, ("negatives", "contrastive_temperature", "projection_dim", "kd_temperature"))
        super().__post_init__()
        for name in ("contrastive_weight", "mse_weight"):
            if getattr(self, name) < 0:
                raise InputError(f"--{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        if not 0 <= self.kd_weight <= 1:
            raise InputError(f"--kd-weight must be in [0, 1] (it mixes CE and KD), got {self.kd_weight}")
        require_counts(self, ("student_layers",))
        if self.negative_margin is not None and self.negative_margin < 0:
            raise InputError(f"--negative-margin must not be negative, got {self.negative_margin}")
        if not 0 < self.mlm_probability < 1:
            raise InputError(f"--mlm-probability must be in (0, 1), got {self.mlm_probability}: BERT uses 0.15")
        require_counts(self, ("held_out", "unlabeled_per_epoch", "labeled_repeat"))
        if self.augment < 0:
            raise InputError(f"--augment must not be negative, got {self.augment}: give new sentences per example")
        if self.objective == "none" and (self.unlabeled or self.augment):
            flag = "--unlabeled" if self.unlabeled else "--augment"
            raise InputError(
                f"{flag} needs a teacher term, and --objective none is plain fine-tuning on labels: "
                "use --objective codir or kd, or drop it"
            )
        self._check_width()
        if self.unlabeled_per_epoch is not None and not self.unlabeled:
            raise InputError("--unlabeled-per-epoch applies with --unlabeled only: give unlabelled text, or drop it")
        self._check_stage_fields()

    def _check_width(self) -> None:
        for name in ("heads_keep", "ffn_keep"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise InputError(f"--{name.replace('_', '-')} must be in (0, 1] (a fraction to keep), got {value}")
        require_counts(self, ("importance_samples", "budget_threads"))
        seq_len = self.budget_seq_len
        if seq_len != "real" and not (isinstance(seq_len, int) and seq_len >= 1):
            raise InputError(f"--budget-seq-len must be a length or 'real', got {seq_len!r}")
        if self.latency_budget is None:
            defaults = {f.name: f.default for f in fields(self)}
            for name in BUDGET_FIELDS:
                if getattr(self, name) != defaults[name]:
                    raise InputError(
                        f"--{name.replace('_', '-')} applies with --latency-budget only: give a budget, or drop it"
                    )
            return
        if self.latency_budget <= 0:
            raise InputError(f"--latency-budget must be positive (milliseconds of INT8 p95), got {self.latency_budget}")
        given = [f"--{n.replace('_', '-')}" for n in ("student_layers",) if getattr(self, n) is not None]
        given += [f"--{n.replace('_', '-')}" for n in ("heads_keep", "ffn_keep") if getattr(self, n) != 1.0]
        if given:
            raise InputError(
                f"--latency-budget picks the student's shape, and {', '.join(given)} also sets it: give only one"
            )

    @property
    def prunes(self) -> bool:
        """Whether the student loses heads or FFN neurons (or a budget may make it)."""
        return self.heads_keep < 1.0 or self.ffn_keep < 1.0 or self.latency_budget is not None

    def _check_stage_fields(self) -> None:
        if self.stage == "fine" and not self.task:
            raise InputError("--task is required for --stage fine: name the task the teacher was fine-tuned on")
        if self.stage == "pre" and self.task:
            raise InputError(
                f"--task {self.task} does not apply to --stage pre (it distils on unlabelled text): drop --task"
            )
        other = "pre" if self.stage == "fine" else "fine"
        defaults = {f.name: f.default for f in fields(self)}
        for name in PRE_ONLY if self.stage == "fine" else FINE_ONLY:
            if getattr(self, name) != defaults[name]:
                raise InputError(
                    f"--{name.replace('_', '-')} applies to --stage {other} only: drop it, or run --stage {other}"
                )

    @property
    def uses_bank_features(self) -> bool:
        """Which objectives read the teacher's intermediate layers (all but ``kd`` and ``none``)."""
        return self.objective in ("codir", "mse")

    @property
    def bank_pooling(self) -> str:
        """BERT-PKD matches [CLS] states whatever ``--pooling`` says, so its bank holds [CLS] summaries."""
        return "cls" if self.objective == "mse" else self.pooling

    @property
    def uses_transfer_set(self) -> bool:
        """Whether rows without a label join training (unlabelled text or augmented sentences)."""
        return bool(self.unlabeled) or self.augment > 0
