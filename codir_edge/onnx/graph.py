"""Model to ONNX graph and to dynamic INT8: what ``export`` ships and what ``compress --latency-budget``
times student shapes with, in one place so a budget is measured on the graphs export would make.

``export_fp32`` goes through optimum-onnx's exporter with its own validation off: export's parity
check (:mod:`codir_edge.export.parity`) is stricter and fails hard. ``dynamic_int8`` quantizes
weights per channel (or per tensor) with activations quantized at run time; ``reduce_range`` (7-bit
weights) only for x86 targets without VNNI, where u8 x s8 products can saturate. A graph already
fused by the transformer optimizer holds com.microsoft operators whose outputs have no inferred
type: ``DefaultTensorType`` tells the quantizer to treat them as float.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

from codir_edge.core.errors import InputError

DEFAULT_OPSET = 17  # LayerNormalization is a standard op from 17 on; every onnxruntime since 1.14 runs it


def export_fp32(model, out_file: Path, opset: int = DEFAULT_OPSET, task: str = "text-classification") -> None:
    """Write ``out_file`` with dynamic batch and sequence axes; ``task`` is optimum's (``feature-extraction``
    for a bare encoder, whose output is ``last_hidden_state``)."""
    from optimum.exporters.onnx import onnx_export_from_model

    with tempfile.TemporaryDirectory(dir=out_file.parent) as tmp:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            logging.getLogger("optimum").setLevel(logging.ERROR)
            try:
                onnx_export_from_model(model, output=tmp, task=task, opset=opset, do_validation=False)
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


def dynamic_int8(source: Path, destination: Path, target: str, fused: bool, per_channel: bool = True,
                 keep_float: tuple[str, ...] = ()) -> None:  # fmt: skip
    """``keep_float``: MatMul node names left in fp32 (the accuracy-aware search's answer); the nodes
    that compute indices, shapes and masks stay in float too (:mod:`codir_edge.onnx.float_paths`)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from codir_edge.onnx.float_paths import float_paths

    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT} if fused else {}
    quantize_dynamic(
        str(source),
        str(destination),
        per_channel=per_channel,
        reduce_range=target == "avx2",
        weight_type=QuantType.QInt8,
        nodes_to_exclude=list(dict.fromkeys([*float_paths(source), *keep_float])),
        extra_options=extra,
    )
