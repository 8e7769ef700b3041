"""How the fp32 graph is made: optimum-onnx's exporter, with eager attention.

Recent transformers route attention through PyTorch's fused SDPA, which exports as a pattern that
onnxruntime's BERT fusion does not recognise (no fused Attention node, slower on CPU); the eager
implementation exports the classic MatMul/Softmax pattern that it does fuse.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

from codir_edge.errors import InputError


def load_for_export(model_dir: Path, trust_remote_code: bool = False):
    from codir_edge.models.loading import load_trained_classifier

    return load_trained_classifier(model_dir, trust_remote_code, attn_implementation="eager").eval()


def export_fp32(model, out_file: Path, opset: int) -> None:
    """Write ``out_file`` with dynamic batch and sequence axes; optimum's own validation is off
    because ours (:mod:`codir_edge.export.parity`) is stricter and fails hard."""
    from optimum.exporters.onnx import onnx_export_from_model

    with tempfile.TemporaryDirectory(dir=out_file.parent) as tmp:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            logging.getLogger("optimum").setLevel(logging.ERROR)
            try:
                onnx_export_from_model(model, output=tmp, task="text-classification", opset=opset, do_validation=False)
            except ValueError as exc:
                raise InputError(
                    f"optimum cannot export this model at --opset {opset} ({exc}): try another opset"
                ) from exc
        produced = Path(tmp) / "model.onnx"
        if (Path(tmp) / "model.onnx_data").exists():
            raise InputError(
                "the model is over 2 GB, which a single-file ONNX bundle cannot hold: export a smaller model"
            )
        shutil.move(str(produced), out_file)
