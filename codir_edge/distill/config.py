"""Compression settings: one validated dataclass, saved inside every checkpoint and next to the student.

Defaults follow the CoDIR release (T = 2, beta = 0.5, tau = 0.07, p = 128) except where a measurement
on SST-2 said otherwise: K = 25 instead of 100 and lambda = 0.1 come from the sweep in
``benchmarks/compress_quality.py`` (results in ``benchmarks/results/compress_sweep.json``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from codir_edge.config_checks import require_counts, require_positive, require_warmup_ratio
from codir_edge.errors import InputError

OBJECTIVES = ("codir", "kd", "mse", "none")
POOLINGS = ("mean", "cls")
CONTRASTIVE_FORMS = ("infonce", "nce")


@dataclass(frozen=True)
class CompressConfig:
    task: str
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
    # optimisation: AdamW, linear warm-up then decay, clipped gradients (as finetune)
    epochs: int = 3
    lr: float = 1e-4
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    # data
    max_length: int = 128
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    group_by_length: bool = True
    eval_batch_size: int = 128
    # runtime
    seed: int = 42
    device: str = "auto"
    precision: str = "auto"
    log_every: int = 50
    checkpoint_every: int | None = 500  # steps; a checkpoint is also written at every epoch end
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        choices = {"objective": OBJECTIVES, "pooling": POOLINGS, "contrastive": CONTRASTIVE_FORMS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"unknown --{name} '{getattr(self, name)}': use one of {', '.join(allowed)}")
        positive = (
            "negatives",
            "contrastive_temperature",
            "projection_dim",
            "kd_temperature",
            "epochs",
            "lr",
            "batch_size",
            "max_length",
            "eval_batch_size",
            "log_every",
            "max_grad_norm",
        )
        require_positive(self, positive)
        for name in ("contrastive_weight", "mse_weight", "weight_decay"):
            if getattr(self, name) < 0:
                raise InputError(f"--{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        if not 0 <= self.kd_weight <= 1:
            raise InputError(f"--kd-weight must be in [0, 1] (it mixes CE and KD), got {self.kd_weight}")
        require_warmup_ratio(self.warmup_ratio)
        require_counts(self, ("student_layers", "max_train_samples", "max_eval_samples", "checkpoint_every"))
        if self.negative_margin is not None and self.negative_margin < 0:
            raise InputError(f"--negative-margin must not be negative, got {self.negative_margin}")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def uses_bank_features(self) -> bool:
        """Which objectives read the teacher's intermediate layers (all but ``kd`` and ``none``)."""
        return self.objective in ("codir", "mse")

    @property
    def bank_pooling(self) -> str:
        """BERT-PKD matches [CLS] states whatever ``--pooling`` says, so its bank holds [CLS] summaries."""
        return "cls" if self.objective == "mse" else self.pooling
