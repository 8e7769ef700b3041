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


SENSITIVITY_SENTENCES = 64  # calibration sentences the layer ranking runs on


@dataclass(frozen=True)
class DropJudge:
    """How a quantized graph is judged: its drop in points of the task metric against fp32 on dev, and
    the most it may lose (``--max-accuracy-drop``)."""

    drop_of: Callable[[Path], float]
    limit: float


# The fixed-shape mobile graphs' QDQ form: u8 per-tensor weights, calibrated u8 activations (NNAPI's and
# Core ML's quantized MatMul take nothing else).
MOBILE_QDQ = WeightScheme(per_channel=False, weight_signed=False, dynamic=False)


def weight_matmuls(model) -> list[tuple[str, str, np.ndarray]]:
    """(node name, activation input, weight [K, N]) of every MatMul or Gemm with a 2-D constant weight:
    the ones onnxruntime's quantizers replace. Gemm is how the pooler and the classifier head export, and
    dynamic INT8 quantizes them too: a search that could not keep them in float could not undo their damage."""
    from onnx import helper, numpy_helper

    weights = {init.name: init for init in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or node.input[1] not in weights:
            continue
        weight = numpy_helper.to_array(weights[node.input[1]])
        if weight.ndim != 2:
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attributes.get("transA", 0):
            continue  # the activation transposed: not a form the quantizers take
        found.append((node.name, node.input[0], weight.T if attributes.get("transB", 0) else weight))
    return found


def activation_matmuls(model) -> list[tuple[str, str, str]]:
    """(node name, input A, input B) of every MatMul over two computed tensors (the attention's Q·K^T and
    P·V): the quantizers take these too, with both inputs quantized as activations."""
    constants = {init.name for init in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    return [(node.name, node.input[0], node.input[1]) for node in model.graph.node
            if node.op_type == "MatMul" and not {node.input[0], node.input[1]} & constants]  # fmt: skip


def sensitivity(fp32_path: Path, feeds: list[dict[str, np.ndarray]], scheme: WeightScheme,
                op_types: tuple[str, ...] = ("MatMul", "Gemm"),
                activations: bool = True) -> list[tuple[str, float]]:  # fmt: skip
    """Each quantizable MatMul (over a weight, or over two activations) with its relative output error, the
    most sensitive first. Only what the quantizer at hand takes is ranked, so that a search never "keeps in
    float" a node that was never quantized: ``op_types`` (the fixed-shape QDQ pass leaves Gemm in float),
    ``activations`` (static QDQ quantizes the attention's products of two activations; dynamic INT8 and the
    NNAPI rewrite leave them in float)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(fp32_path))
    kinds = {node.name: node.op_type for node in model.graph.node}
    weighted = [m for m in weight_matmuls(model) if kinds[m[0]] in op_types]
    paired = activation_matmuls(model) if activations else []
    wanted = sorted({inp for _, inp, _ in weighted} | {x for _, a, b in paired for x in (a, b)})
    for name in sorted(set(wanted) - {o.name for o in model.graph.output}):
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    batches = [dict(zip(wanted, session.run(wanted, {n: f[n] for n in names}), strict=True)) for f in feeds]
    errors = [(node, _weight_error([b[inp] for b in batches], weight, scheme)) for node, inp, weight in weighted]
    errors += [(node, _pair_error([b[a] for b in batches], [b[c] for b in batches], scheme.dynamic))
               for node, a, c in paired]  # fmt: skip
    return sorted(errors, key=lambda e: -e[1])


def _ranges(tensors: list[np.ndarray], dynamic: bool) -> list[tuple[float, float]]:
    """The u8 range each batch is quantized with: its own (dynamic) or the calibration's whole (static)."""
    own = [(min(0.0, float(t.min())), max(0.0, float(t.max()))) for t in tensors]
    if dynamic:
        return own
    whole = (min(low for low, _ in own), max(high for _, high in own))
    return [whole] * len(tensors)


def _relative(pairs) -> float:
    """sqrt(sum |approx - exact|^2 / sum |exact|^2) over (approx, exact) pairs."""
    num = den = 0.0
    for approx, exact in pairs:
        num += float(np.sum((approx - exact) ** 2))
        den += float(np.sum(exact**2))
    return (num / den) ** 0.5 if den > 0 else 0.0


def _weight_error(activations: list[np.ndarray], weight: np.ndarray, scheme: WeightScheme) -> float:
    activations = [a.reshape(-1, weight.shape[0]).astype(np.float64) for a in activations]
    quantized_weight = _quantize_weight(weight.astype(np.float64), scheme)
    ranges = _ranges(activations, scheme.dynamic)
    return _relative((_quantize_u8(a, *r) @ quantized_weight, a @ weight) for a, r in zip(activations, ranges,
                                                                                           strict=True))  # fmt: skip


def _pair_error(first: list[np.ndarray], second: list[np.ndarray], dynamic: bool) -> float:
    first, second = [a.astype(np.float64) for a in first], [b.astype(np.float64) for b in second]
    pairs = zip(first, _ranges(first, dynamic), second, _ranges(second, dynamic), strict=True)
    return _relative((np.matmul(_quantize_u8(a, *ra), _quantize_u8(b, *rb)), np.matmul(a, b))
                     for a, ra, b, rb in pairs)  # fmt: skip


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
    first_drop: float | None = None,
) -> Search | None:
    """The shortest prefix of ``ranking`` whose exclusion brings the drop to ``limit`` or below (None
    when even all of them do not). Doubling then bisection: a handful of quantize-and-score trials,
    assuming that keeping more layers in float never costs accuracy, which the trials record.
    ``first_drop``: the fully quantized graph's drop, when the caller has already measured it."""
    trials: list[dict] = [] if first_drop is None else [{"kept": 0, "drop": round(first_drop, 4)}]
    results: dict[int, float] = {} if first_drop is None else {0: first_drop}

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


def quantize_within(
    quantize: Callable[[tuple[str, ...]], Path],
    rank: Callable[[], list[str]],
    judge: DropJudge | None,
) -> Search | None:
    """Quantize everything; when that loses more than the ``judge``'s limit, keep the fewest of ``rank()``'s
    most sensitive MatMuls in float (:func:`fewest_in_float`; the ranking is only computed then). None
    without a judge (no dev data: nothing is searched), or when even all of them do not hold the limit:
    the file on disk is then the fully quantized one again, for the caller's gate to judge and name."""
    path = quantize(())
    if judge is None:
        return None
    first = judge.drop_of(path)
    if first <= judge.limit:
        return Search((), first, [{"kept": 0, "drop": round(first, 4)}])
    found = fewest_in_float(rank(), quantize, judge.drop_of, judge.limit, first_drop=first)
    if found is None:
        quantize(())
    return found
