"""How the fp32 graph is made: optimum-onnx's exporter, with eager attention.

Recent transformers route attention through PyTorch's fused SDPA, which exports as a pattern that
onnxruntime's BERT fusion does not recognise (no fused Attention node, slower on CPU); the eager
implementation exports the classic MatMul/Softmax pattern that it does fuse.
"""

from __future__ import annotations

from pathlib import Path

from codir_edge.onnx.graph import export_fp32

__all__ = ["export_fp32", "load_for_export"]


def load_for_export(model_dir: Path, trust_remote_code: bool = False):
    from codir_edge.models.loading import load_trained_classifier

    return load_trained_classifier(model_dir, trust_remote_code, attn_implementation="eager").eval()
