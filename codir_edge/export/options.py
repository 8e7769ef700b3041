"""What ``codir-edge export`` and ``codir-edge verify`` take: :class:`ExportConfig` and the commands' own
inputs, in the order their help lists them. The CLI and the pipeline both read this declaration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.command_options import OutputOptions
from codir_edge.core.settings import CommandSpec, like, setting
from codir_edge.data.options import DATA_HELP, ColumnOptions
from codir_edge.export.config import ExportConfig


@dataclass(frozen=True, kw_only=True)
class ExportInputs(OutputOptions, ColumnOptions):
    model_dir: Path = setting(
        help="Sequence-classification folder (finetune or compress output).", argument=True, metavar="MODEL_DIR"
    )
    out: Path = like(OutputOptions, "out", help="Bundle folder, written atomically.")
    data: str | None = setting(None, help=DATA_HELP, flags=("--data", "-d"))


@dataclass(frozen=True, kw_only=True)
class VerifyInputs:
    bundle: Path = setting(
        help="Bundle folder written by codir-edge export, or one .onnx/.ort file in it (checked against the "
        "bundle's manifest).",
        argument=True,
        metavar="BUNDLE",
    )


EXPORT = CommandSpec(
    (ExportInputs, ExportConfig),
    order=(
        "model_dir", "out", "quantize", "task", "data", "calibration_samples", "calibration_method", "optimize",
        "fp16", "ort", "tokenizer_in_graph", "tune_threads", "tune_lengths", "fixed_shape", "opset", "atol",
        "max_accuracy_drop", "target", "max_length", "max_eval_samples", "text_column", "text_pair_column",
        "label_column", "overwrite", "json_path", "trust_remote_code", "quiet",
    ),
)  # fmt: skip
VERIFY = CommandSpec((VerifyInputs,))
