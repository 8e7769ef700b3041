"""The settings every training recipe shares: what the engine reads (optimisation, data order,
logging, checkpoints) and how the run reads its data and where it runs. ``FinetuneConfig`` and
the CoDIR stages' configs add their own fields to these, so a setting the engine gains is declared once."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from codir_edge.core.config_checks import require_counts, require_positive, require_warmup_ratio
from codir_edge.core.errors import InputError
from codir_edge.core.settings import CHECKPOINTS, DATA, RUNTIME, TRAINING, setting

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def checkpoint_steps(every: int) -> int | None:
    """``--checkpoint-every`` as the configs hold it: None for epoch ends only."""
    if every < 0:
        raise InputError(f"--checkpoint-every must not be negative, got {every}: pass 0 or more steps")
    return every or None


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    # optimisation: AdamW with linear warm-up then linear decay to zero, clipped gradients
    epochs: int = setting(3, help="Passes over the training set.", panel=TRAINING)
    # measured: on a 6k-example SST-2 epoch of MiniLM-L6, 1e-4 > 2e-4 > 5e-5
    lr: float = setting(1e-4, help="Peak learning rate (AdamW, linear warm-up and decay).", panel=TRAINING)
    # the global batch: under torchrun each rank takes a share
    batch_size: int = setting(32, help="Examples per optimizer step.", panel=TRAINING)
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    # data
    max_length: int = setting(128, help="Truncate inputs to this many tokens.", panel=DATA)
    max_train_samples: int | None = setting(
        None, help="Train on a seeded random subset of this size.", panel=TRAINING
    )
    max_eval_samples: int | None = setting(
        None, help="Evaluate on a seeded random subset of this size.", panel=TRAINING
    )
    group_by_length: bool = True  # cheap batches on CPU: SST-2's median sentence is 10 tokens
    eval_batch_size: int = 128
    # runtime
    seed: int = setting(42, help="Random seed for initialisation, data order and subsampling.", panel=TRAINING)
    device: str = setting(
        "auto", help="Where to run: auto picks CUDA when a GPU is visible.", panel=RUNTIME, choices=DEVICES
    )
    precision: str = setting(
        "auto",
        help="auto: bf16 autocast on GPUs with bf16 (fp16 with loss scaling otherwise), fp32 on CPU.",
        panel=RUNTIME,
        choices=PRECISIONS,
    )
    log_every: int = 50
    # steps; a checkpoint is also written at every epoch end
    checkpoint_every: int | None = setting(
        500,
        help="Save a checkpoint every this many steps (and at each epoch end); 0: epoch ends only.",
        panel=CHECKPOINTS,
        cli_type=int,
        parse=checkpoint_steps,
    )
    trust_remote_code: bool = setting(
        False,
        help="Allow model folders to run their own Python code (off by default: only for folders you trust).",
        panel=RUNTIME,
    )

    def __post_init__(self) -> None:
        positive = ("epochs", "lr", "batch_size", "max_length", "eval_batch_size", "log_every", "max_grad_norm")
        require_positive(self, positive)
        if self.weight_decay < 0:
            raise InputError(f"--weight-decay must not be negative, got {self.weight_decay}")
        require_warmup_ratio(self.warmup_ratio)
        require_counts(self, ("max_train_samples", "max_eval_samples", "checkpoint_every"))

    def to_dict(self) -> dict:
        return asdict(self)
