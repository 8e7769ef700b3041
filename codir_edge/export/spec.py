"""What to export for one model, read from its family's registry entry (``models/families.py``) and
its config: the inputs the graph takes, the name onnxruntime's transformer optimizer knows the
architecture by (None: its fusions do not apply, the graph runs plain) and the parity tolerance."""

from __future__ import annotations

from dataclasses import dataclass

from codir_edge.models.families import family_of, input_names
from codir_edge.onnx.graph import DEFAULT_OPSET

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "ExportSpec", "spec_for"]

MIN_OPSET = 14  # optimum's floor for BERT-family encoders


@dataclass(frozen=True)
class ExportSpec:
    model_type: str
    inputs: tuple[str, ...]
    optimizer_type: str | None  # model_type for onnxruntime.transformers.optimizer
    atol: float = 1e-4  # fp32 logits, PyTorch against onnxruntime


def spec_for(config: dict, model_dir) -> ExportSpec:
    family = family_of(config, str(model_dir))
    return ExportSpec(family.model_type, input_names(config), family.optimizer)
