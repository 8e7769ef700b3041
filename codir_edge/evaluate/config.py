"""Evaluation settings, declared once for the command line (``core/settings.py``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from codir_edge.core.settings import DATA, like, setting
from codir_edge.data.options import TASK_HELP
from codir_edge.training.config import TrainingConfig


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    task: str = setting(help=TASK_HELP, flags=("--task", "-t"), panel=DATA)
    split: str = setting(
        "dev",
        help="Which split to score: dev, train or test (the data folder's test.tsv/.csv/.jsonl, or a hub set's "
        "test split: report on it, choose on dev).",
        choices=("dev", "train", "test"),
    )
    # None: the length a bundle (or a bundle's ONNX file) was exported at, which its tokenizer tells apps
    # to truncate at; 128 (training's default) for a model folder or a loose ONNX file
    max_length: int | None = like(
        TrainingConfig, "max_length", None,
        help="Truncate inputs to this many tokens. Default: the length a bundle was exported at (its manifest: "
        "what apps truncate at), else 128.", show_default=False,
    )  # fmt: skip
    # None: 1 for ONNX models (onnx/scoring.APP_BATCH: how an app runs them, and what profile scores
    # at), 128 for PyTorch folders (fp32, where batch mates do not change predictions)
    batch_size: int | None = setting(
        None,
        help="Examples per inference batch. Default: 1 for ONNX models, one text per call as an app runs them "
        "(dynamic INT8 quantizes a batch with one range, so batch mates change predictions); 128 for PyTorch.",
        show_default=False,
    )
    max_samples: int | None = setting(None, help="Score a seeded random subset of this size.")
    seed: int = like(TrainingConfig, "seed")
    device: str = like(TrainingConfig, "device")  # PyTorch folders only: ONNX models run on this machine's CPU

    def to_dict(self) -> dict:
        return asdict(self)
