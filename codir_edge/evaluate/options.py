"""What ``codir-edge evaluate`` takes: :class:`EvaluateConfig` and the command's own inputs, in the order
its help lists them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.command_options import OutputOptions
from codir_edge.core.settings import DATA, CommandSpec, like, setting
from codir_edge.data.options import DATA_HELP, ColumnOptions
from codir_edge.evaluate.config import EvaluateConfig


@dataclass(frozen=True, kw_only=True)
class EvaluateInputs(ColumnOptions):
    model: Path = setting(
        help="A fine-tuned model folder (from finetune or compress, scored in PyTorch), a bundle from export (each "
        "variant scored in onnxruntime) or one .onnx/.ort file with tokenizer.json beside it.",
        argument=True,
        metavar="MODEL",
    )
    data: str = setting(help=DATA_HELP, flags=("--data", "-d"), panel=DATA)
    json_path: Path | None = like(OutputOptions, "json_path")


EVALUATE = CommandSpec(
    (EvaluateInputs, EvaluateConfig),
    order=(
        "model", "task", "data", "split", "text_column", "text_pair_column", "label_column", "max_length",
        "batch_size", "max_samples", "seed", "device", "json_path",
    ),
)  # fmt: skip
