"""What to export, per architecture, apart from how (as optimum-onnx separates its model configs
from its converter): the inputs a graph takes, the opset, the parity tolerance, and the name
onnxruntime's transformer optimizer knows the architecture by."""

from __future__ import annotations

from dataclasses import dataclass

from codir_edge.errors import InputError

DEFAULT_OPSET = 17  # LayerNormalization is a standard op from 17 on; every onnxruntime since 1.14 runs it
MIN_OPSET = 14  # optimum's floor for BERT-family encoders


@dataclass(frozen=True)
class ExportSpec:
    model_type: str
    inputs: tuple[str, ...]
    optimizer_type: str  # model_type for onnxruntime.transformers.optimizer
    atol: float = 1e-4  # fp32 logits, PyTorch against onnxruntime


_BERT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_NO_SEGMENTS = ("input_ids", "attention_mask")

SPECS: dict[str, ExportSpec] = {
    spec.model_type: spec
    for spec in (
        ExportSpec("bert", _BERT_INPUTS, "bert"),
        ExportSpec("roberta", _NO_SEGMENTS, "bert"),
        ExportSpec("xlm-roberta", _NO_SEGMENTS, "bert"),
        ExportSpec("camembert", _NO_SEGMENTS, "bert"),
        ExportSpec("distilbert", _NO_SEGMENTS, "bert"),
        ExportSpec("electra", _BERT_INPUTS, "bert"),
        ExportSpec("mpnet", _NO_SEGMENTS, "bert"),
    )
}


def spec_for(config: dict, model_dir) -> ExportSpec:
    model_type = config.get("model_type")
    if model_type not in SPECS:
        raise InputError(
            f"{model_dir} is a '{model_type}' model, which export does not support: use one of {', '.join(SPECS)}"
        )
    return SPECS[model_type]
