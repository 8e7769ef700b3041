"""What ``codir-edge finetune`` takes: :class:`FinetuneConfig` and the command's own inputs, in the
order its help lists them. The CLI and the pipeline both read this declaration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.command_options import OutputOptions, ResumeOption
from codir_edge.core.settings import DATA, CommandSpec, setting
from codir_edge.data.options import DATA_HELP, TrainDataOptions
from codir_edge.finetune.config import FinetuneConfig


@dataclass(frozen=True, kw_only=True)
class FinetuneInputs(OutputOptions, ResumeOption, TrainDataOptions):
    data: str = setting(help=DATA_HELP, flags=("--data", "-d"), panel=DATA)
    model: Path | None = setting(
        None,
        help="Encoder model folder or hub id to fine-tune (default: the bundled all-MiniLM-L6-v2).",
        flags=("--model", "-m"),
    )


FINETUNE = CommandSpec(
    (FinetuneInputs, FinetuneConfig),
    order=(
        "task", "data", "out", "model", "eval_data", "text_column", "text_pair_column", "label_column", "labels",
        "epochs", "lr", "batch_size", "max_length", "max_train_samples", "max_eval_samples", "seed", "device",
        "precision", "overwrite", "resume", "checkpoint_every", "json_path", "quiet", "trust_remote_code",
    ),
)  # fmt: skip
