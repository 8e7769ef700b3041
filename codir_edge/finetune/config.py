"""Fine-tuning settings: one validated dataclass, written next to the model it produced."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from codir_edge.config_checks import require_counts, require_positive, require_warmup_ratio
from codir_edge.errors import InputError


@dataclass(frozen=True)
class FinetuneConfig:
    task: str
    # optimisation: AdamW with linear warm-up then linear decay to zero, clipped gradients
    epochs: int = 3
    lr: float = 1e-4  # measured: on a 6k-example SST-2 epoch of MiniLM-L6, 1e-4 > 2e-4 > 5e-5
    batch_size: int = 32
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
        require_positive(
            self, ("epochs", "lr", "batch_size", "max_length", "eval_batch_size", "log_every", "max_grad_norm")
        )
        require_counts(self, ("max_train_samples", "max_eval_samples", "checkpoint_every"))
        require_warmup_ratio(self.warmup_ratio)
        if self.weight_decay < 0:
            raise InputError(f"weight decay must not be negative, got {self.weight_decay}")

    def to_dict(self) -> dict:
        return asdict(self)
