"""Accuracy-aware INT8: when quantizing every MatMul costs more accuracy than allowed, keep the
fewest, most sensitive ones in fp32.

Sensitivity is each quantized MatMul's own output error on calibration sentences, simulated in
numpy from the fp32 graph: its input activations are read from one run of the fp32 graph, quantized
as onnxruntime will quantize them (u8 with the batch's range for dynamic INT8, the calibration
range for static), multiplied by the quantized weight, and compared with the fp32 product. One
fp32 run ranks every layer, instead of one quantization and one scoring per layer; the search then
keeps the top 1, 2, 4, ... in float, quantizing and scoring each trial for real, and bisects to
the fewest that hold the limit. An activation outlier (one feature hundreds of times larger than the
rest, as BERT-class models grow) ruins exactly the MatMul it feeds, and this ranking puts that one
first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class WeightScheme:
    """How the quantizer stores weights and activations, for the simulation."""

    per_channel: bool = True
    weight_signed: bool = True  # s8 symmetric; False: u8 asymmetric (the mobile QDQ form)
    reduce_range: bool = False  # 7-bit weights (x86 without VNNI)
    dynamic: bool = True  # activation range per batch (dynamic) or over all calibration batches (static)


def weight_matmuls(model) -> list[tuple[str, str, np.ndarray]]:
    """(node name, activation input, weight [K, N]) of every MatMul with a 2-D constant weight:
    the ones onnxruntime's quantizers replace."""
    from onnx import numpy_helper

    weights = {init.name: init for init in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in weights and len(weights[node.input[1]].dims) == 2:
            found.append((node.name, node.input[0], numpy_helper.to_array(weights[node.input[1]])))
    return found


def sensitivity(fp32_path: Path, feeds: list[dict[str, np.ndarray]], scheme: WeightScheme) -> list[tuple[str, float]]:
    """Each quantizable MatMul with its relative output error, the most sensitive first."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(fp32_path))
    matmuls = weight_matmuls(model)
    exposed = {inp for _, inp, _ in matmuls} - {o.name for o in model.graph.output}
    for name in sorted(exposed):
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    wanted = [inp for _, inp, _ in matmuls]
    names = [i.name for i in session.get_inputs()]
    batches = [dict(zip(wanted, session.run(wanted, {n: f[n] for n in names}), strict=True)) for f in feeds]
    errors = []
    for node, inp, weight in matmuls:
        activations = [b[inp].reshape(-1, weight.shape[0]).astype(np.float64) for b in batches]
        whole = (min(0.0, min(a.min() for a in activations)), max(0.0, max(a.max() for a in activations)))
        quantized_weight = _quantize_weight(weight.astype(np.float64), scheme)
        num = den = 0.0
        for a in activations:
            low, high = (min(0.0, a.min()), max(0.0, a.max())) if scheme.dynamic else whole
            exact = a @ weight
            approx = _quantize_u8(a, low, high) @ quantized_weight
            num += float(np.sum((approx - exact) ** 2))
            den += float(np.sum(exact**2))
        errors.append((node, (num / den) ** 0.5 if den > 0 else 0.0))
    return sorted(errors, key=lambda e: -e[1])


def _quantize_u8(x: np.ndarray, low: float, high: float) -> np.ndarray:
    scale = (high - low) / 255 or 1.0
    zero = np.round(-low / scale)
    return (np.clip(np.round(x / scale) + zero, 0, 255) - zero) * scale


def _quantize_weight(w: np.ndarray, scheme: WeightScheme) -> np.ndarray:
    axis = 0 if scheme.per_channel else None  # per output channel: a column of the [K, N] weight
    if scheme.weight_signed:
        levels = 63 if scheme.reduce_range else 127
        scale = np.max(np.abs(w), axis=axis, keepdims=True) / levels
        scale = np.where(scale == 0, 1.0, scale)
        return np.clip(np.round(w / scale), -levels, levels) * scale
    low = np.minimum(np.min(w, axis=axis, keepdims=True), 0.0)
    high = np.maximum(np.max(w, axis=axis, keepdims=True), 0.0)
    scale = np.where(high - low == 0, 1.0, (high - low) / 255)
    zero = np.round(-low / scale)
    return (np.clip(np.round(w / scale) + zero, 0, 255) - zero) * scale


@dataclass(frozen=True)
class Search:
    keep_float: tuple[str, ...]  # () when the fully quantized graph already holds the limit
    drop: float  # points, of the graph finally written
    trials: list[dict]  # {"kept": k, "drop": points} in the order tried


def fewest_in_float(
    ranking: list[str],
    quantize: Callable[[tuple[str, ...]], Path],
    drop_of: Callable[[Path], float],
    limit: float,
) -> Search | None:
    """The shortest prefix of ``ranking`` whose exclusion brings the drop to ``limit`` or below (None
    when even all of them do not). Doubling then bisection: a handful of quantize-and-score trials,
    assuming that keeping more layers in float never costs accuracy, which the trials record."""
    trials: list[dict] = []
    results: dict[int, float] = {}

    def trial(k: int) -> float:
        if k not in results:
            results[k] = drop_of(quantize(tuple(ranking[:k])))
            trials.append({"kept": k, "drop": round(results[k], 4)})
        return results[k]

    if trial(0) <= limit:
        return Search((), results[0], trials)
    low, high = 0, 1
    while trial(high) > limit:
        if high == len(ranking):
            return None
        low, high = high, min(2 * high, len(ranking))
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if trial(middle) <= limit else (middle, high)
    quantize(tuple(ranking[:high]))  # the file on disk is the one that held
    return Search(tuple(ranking[:high]), results[high], trials)
