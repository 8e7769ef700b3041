"""The settings every training recipe shares: what the engine reads (optimisation, data order,
logging, checkpoints) and how the run reads its data and where it runs. ``FinetuneConfig`` and
``CompressConfig`` add their own fields to these, so a setting the engine gains is declared once."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from codir_edge.core.config_checks import require_counts, require_positive, require_warmup_ratio
from codir_edge.core.errors import InputError


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    # optimisation: AdamW with linear warm-up then linear decay to zero, clipped gradients
    epochs: int = 3
    lr: float = 1e-4  # measured: on a 6k-example SST-2 epoch of MiniLM-L6, 1e-4 > 2e-4 > 5e-5
    batch_size: int = 32  # the global batch: under torchrun each rank takes a share
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    # data
    max_length: int = 128
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    group_by_length: bool = True  # cheap batches on CPU: SST-2's median sentence is 10 tokens
    eval_batch_size: int = 128
    # runtime
    seed: int = 42
    device: str = "auto"
    precision: str = "auto"
    log_every: int = 50
    checkpoint_every: int | None = 500  # steps; a checkpoint is also written at every epoch end
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        positive = ("epochs", "lr", "batch_size", "max_length", "eval_batch_size", "log_every", "max_grad_norm")
        require_positive(self, positive)
        if self.weight_decay < 0:
            raise InputError(f"--weight-decay must not be negative, got {self.weight_decay}")
        require_warmup_ratio(self.warmup_ratio)
        require_counts(self, ("max_train_samples", "max_eval_samples", "checkpoint_every"))

    def to_dict(self) -> dict:
        return asdict(self)
