"""The fixed-shape variant for phone accelerators: NNAPI and Core ML take static shapes and QDQ
INT8 with u8 activations, not the dynamic INT8 operators (MatMulInteger, DynamicQuantizeLinear)
that the CPU variants use.

The fp32 graph gets its batch and sequence dimensions fixed, then is quantized statically in QDQ
form with u8 activations and u8 per-tensor weights, the form both accelerators read. onnxruntime's
mobile usability checker then says, for each accelerator, how many nodes it would take and in how
many partitions: the figure that tells an app developer whether to enable it at all.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from codir_edge.core.errors import InputError
from codir_edge.export.accelerators import stricter_usability
from codir_edge.export.config import AUTO, OFF, fixed_shape

FIXED_OPS = ["MatMul"]  # what the QDQ pass quantizes: the weights that hold almost all of the work
SHAPE_ROUNDING = 8
ACCELERATORS = {  # name -> onnxruntime's supported-operator list for it
    "nnapi": "nnapi_supported_ops.md",
    "coreml": "coreml_supported_mlprogram_ops.md",
}


def resolve(value: str, ort: bool, dev_lengths: np.ndarray | None, max_length: int,
            percentile: float = 99) -> tuple[int, int] | None:  # fmt: skip
    """(batch, length), or None when no fixed-shape variant is wanted. ``auto`` means one with --ort,
    at batch 1 and the dev sentences' ``percentile`` length rounded up to a multiple of 8 (128, or
    --max-length when shorter, without data). A classifier's label survives the cut of its 1% longest
    texts (99); a tagger loses every entity past the cut, so it takes the longest (100)."""
    parsed = fixed_shape(value)
    if parsed == OFF or (parsed == AUTO and not ort):
        return None
    if parsed == AUTO:
        if dev_lengths is None or not len(dev_lengths):
            return 1, min(128, max_length)
        wanted = float(np.percentile(dev_lengths, percentile))
        return 1, min(max_length, max(SHAPE_ROUNDING, math.ceil(wanted / SHAPE_ROUNDING) * SHAPE_ROUNDING))
    batch, length = parsed
    if length > max_length:
        raise InputError(f"--fixed-shape {batch}x{length} is longer than --max-length {max_length}: shorten it")
    return batch, length


def fix_shapes(source: Path, destination: Path, batch: int, length: int) -> None:
    """Every input [batch_size, sequence_length] becomes [batch, length] and the outputs follow. The
    now-constant shape arithmetic is folded by onnxruntime when the graph loads (and when the .ort is
    made); a graph saved after offline folding fails to load again in onnxruntime 1.32 ("Attempt to
    replace the existing tensor"), so it is not folded here."""
    import onnx
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_input_shape_fixed

    model = onnx.load(str(source))
    for value in model.graph.input:
        make_input_shape_fixed(model.graph, value.name, [batch, length])
    fix_output_shapes(model)
    onnx.save(model, str(destination))


def usability(path: Path, accelerators: tuple[str, ...] = tuple(ACCELERATORS)) -> dict[str, dict]:
    """Per accelerator: nodes it would take, their share, partitions, and onnxruntime's verdict
    (YES / MAYBE / NO), after the basic optimisations the .ort conversion applies too; ``ours`` holds
    the same figures with the limits onnxruntime's checker does not apply (``accelerators.py``)."""
    import contextlib
    import io
    import tempfile

    import onnx
    from onnxruntime.tools.mobile_helpers import usability_checker as checker
    from onnxruntime.tools.onnx_model_utils import optimize_model

    with tempfile.TemporaryDirectory() as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        optimize_model(path, optimized)
        model = onnx.shape_inference.infer_shapes(onnx.load(str(optimized)), strict_mode=True)
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for name in accelerators:
            ops_file = ACCELERATORS[name]
            if name == "nnapi":
                info = checker.check_nnapi_partitions(model, require_fixed_input_sizes=True)
            else:
                info = checker.check_coreml_partitions(model, True, ops_file)
            out[name] = {
                "nodes": info.num_nodes,
                "supported_nodes": info.num_supported_nodes,
                "share": round(info.num_supported_nodes / max(info.num_nodes, 1), 4),
                "partitions": info.num_partitions,
                "verdict": info.suitability().name,
                "unsupported_ops": sorted(info.unsupported_ops),
                "ours": stricter_usability(model, Path(checker.__file__).parent / ops_file, name),
            }
    return out
