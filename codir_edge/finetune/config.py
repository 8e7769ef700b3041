"""Fine-tuning settings: the shared training settings plus the task, written next to the model."""

from __future__ import annotations

from dataclasses import dataclass

from codir_edge.core.settings import DATA, setting
from codir_edge.data.options import TASK_HELP
from codir_edge.training.config import TrainingConfig


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(TrainingConfig):
    task: str = setting(help=TASK_HELP, flags=("--task", "-t"), panel=DATA)
