"""``evaluate``: the task metric of a trained model folder on a split (``models/scoring.py`` scores it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from codir_edge.data import DataSpec
from codir_edge.models.scoring import score_model_folder


@dataclass(frozen=True)
class EvalReport:
    model: str
    task: str
    split: str
    metrics: dict[str, float]
    examples: int
    wall_time_s: float
    examples_per_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def run_evaluate(
    model: Path,
    task_name: str,
    data: DataSpec,
    split: str = "dev",
    max_length: int = 128,
    batch_size: int = 128,
    max_samples: int | None = None,
    device: str = "auto",
    seed: int = 42,
) -> EvalReport:
    scored = score_model_folder(model, task_name, data, split, max_length, batch_size, max_samples, device, seed)
    rate = scored.examples / scored.seconds if scored.seconds else 0.0
    return EvalReport(str(model), scored.task, split, scored.metrics, scored.examples, scored.seconds, rate)
