"""The NNAPI variant: a fixed-shape QDQ graph rewritten so that Android's NNAPI takes it whole, which the
QDQ fixed-shape variant is not (NNAPI splits it at every Erf and LayerNormalization, and its builder
refuses int64 lookups and 3-D quantized MatMuls, which onnxruntime's checker does not say).

From the fixed-shape fp32 graph:

- the lookups Core ML also stops at become a Slice and arithmetic (``coreml.rewrite_gathers``);
- the inputs are int32 (NNAPI has no int64, and takes a non-constant Gather index only as int32);
- every MatMul over a weight reads a 2-D input: [1, L, H] is reshaped to [L, H] before it and back after;
- GELU's Erf becomes tanh's approximation, ``erf(u) ~ tanh(2/sqrt(pi) * (u + 0.08943 u^3))`` (the
  form of ``gelu(approximate='tanh')``, with u = x / sqrt(2)); it ships only within the accuracy limit;
- LayerNormalization becomes ReduceMean, Sub, Mul, Add, Sqrt and Div;
- the weight MatMuls are quantized statically (QDQ, u8 activations and per-tensor u8 weights), the
  attention's activation-by-activation MatMuls stay in float, and the word-embedding table is stored
  in u8 with one scale, dequantized after the lookup;
- when that loses more than ``--max-accuracy-drop`` on dev (per-tensor weights are NNAPI's only quantized
  MatMul, and a weight with one outlier column flattens the rest), the fewest most sensitive MatMuls stay
  in float (``export/mixed.py``): NNAPI runs a float MatMul too, so it still takes the graph whole.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from codir_edge.export.coreml import Initializers
from codir_edge.export.mixed import SENSITIVITY_SENTENCES, DropJudge, Search

TANH_SCALE, CUBIC = 2 / math.sqrt(math.pi), 2 * 0.044715  # erf(u) ~ tanh(TANH_SCALE * (u + CUBIC * u^3))


def _tanh_for_erf(node, g) -> list:
    from onnx import helper

    u, name = node.input[0], node.name or node.output[0]
    scale, cubic = g.add(f"{name}/scale", np.float32(TANH_SCALE)), g.add(f"{name}/cubic", np.float32(CUBIC))
    parts = [f"{name}/{p}" for p in ("u2", "u3", "cu3", "sum", "scaled")]
    return [helper.make_node("Mul", [u, u], [parts[0]], name=parts[0]),
            helper.make_node("Mul", [parts[0], u], [parts[1]], name=parts[1]),
            helper.make_node("Mul", [parts[1], cubic], [parts[2]], name=parts[2]),
            helper.make_node("Add", [u, parts[2]], [parts[3]], name=parts[3]),
            helper.make_node("Mul", [parts[3], scale], [parts[4]], name=parts[4]),
            helper.make_node("Tanh", [parts[4]], list(node.output), name=f"{name}/Tanh")]  # fmt: skip


def _decomposed_layer_norm(node, g) -> list:
    from onnx import helper

    name = node.name or node.output[0]
    axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
    eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
    x, gamma, beta = node.input[0], node.input[1], node.input[2] if len(node.input) > 2 else None
    p = {k: f"{name}/{k}" for k in ("mean", "centred", "squared", "var", "var_eps", "std", "normed", "scaled")}
    nodes = [helper.make_node("ReduceMean", [x], [p["mean"]], axes=[axis], keepdims=1, name=p["mean"]),
             helper.make_node("Sub", [x, p["mean"]], [p["centred"]], name=p["centred"]),
             helper.make_node("Mul", [p["centred"], p["centred"]], [p["squared"]], name=p["squared"]),
             helper.make_node("ReduceMean", [p["squared"]], [p["var"]], axes=[axis], keepdims=1, name=p["var"]),
             helper.make_node("Add", [p["var"], g.add(f"{name}/eps", np.float32(eps))], [p["var_eps"]],
                              name=p["var_eps"]),
             helper.make_node("Sqrt", [p["var_eps"]], [p["std"]], name=p["std"]),
             helper.make_node("Div", [p["centred"], p["std"]], [p["normed"]], name=p["normed"])]  # fmt: skip
    if beta is None:
        return [*nodes, helper.make_node("Mul", [p["normed"], gamma], [node.output[0]], name=p["scaled"])]
    return [*nodes, helper.make_node("Mul", [p["normed"], gamma], [p["scaled"]], name=p["scaled"]),
            helper.make_node("Add", [p["scaled"], beta], [node.output[0]], name=f"{name}/shifted")]  # fmt: skip


def _two_d_matmul(node, shape: tuple[int, int], g) -> list:
    """``MatMul(A [batch, length, H], W [H, N])``: A reshaped to [batch * length, H] before, the output
    back to [batch, length, N] after (``shape`` is the graph's fixed (batch, length))."""
    from onnx import helper

    name = node.name or node.output[0]
    rows, width = g.weights[node.input[1]].shape
    flat = g.add(f"{name}/flat_shape", np.array([-1, rows], dtype=np.int64))
    back = g.add(f"{name}/out_shape", np.array([*shape, width], dtype=np.int64))
    a2, y2 = f"{name}/a2d", f"{name}/y2d"
    return [helper.make_node("Reshape", [node.input[0], flat], [a2], name=f"{name}/Reshape_in"),
            helper.make_node("MatMul", [a2, node.input[1]], [y2], name=name),
            helper.make_node("Reshape", [y2, back], list(node.output), name=f"{name}/Reshape_out")]  # fmt: skip


class _Graph(Initializers):
    """The Core ML rewrite's initializer helper, plus the weights a MatMul may read."""

    def __init__(self, model):
        from onnx import numpy_helper

        super().__init__(model)
        self.weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer if len(i.dims) == 2}


# ops that read an input without matching its type to another operand's: they take int32 ids as they are
TYPE_FREE = {"Gather", "Unsqueeze", "Squeeze", "Cast", "Shape", "Reshape", "Slice", "Flatten", "Identity"}


def _int32_inputs(model) -> int:
    """int64 graph inputs become int32; a node that compares or combines them with int64 values (RoBERTa's
    position ids: Equal to the padding id, CumSum) reads an int64 copy, which stays on the CPU. Returns
    how many copies were made."""
    from onnx import TensorProto, helper

    changed = {v.name for v in model.graph.input if v.type.tensor_type.elem_type == TensorProto.INT64}
    for value in model.graph.input:
        if value.name in changed:
            value.type.tensor_type.elem_type = TensorProto.INT32
    copies: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type in TYPE_FREE:
            continue
        for k, name in enumerate(node.input):
            if name in changed:
                copies.setdefault(name, f"{name}/int64")
                node.input[k] = copies[name]
    casts = [helper.make_node("Cast", [name], [copy], to=TensorProto.INT64, name=f"{copy}/Cast")
             for name, copy in copies.items()]  # fmt: skip
    for cast in reversed(casts):
        model.graph.node.insert(0, cast)
    return len(casts)


def rewrite_for_nnapi(model) -> tuple[dict[str, int], list[str]]:
    """Rewrite ``model`` in place (see the module docstring, up to quantization); returns what changed
    and the MatMuls that must stay in float (no constant B)."""
    from onnx import shape_inference

    from codir_edge.export.coreml import rewrite_gathers

    done = rewrite_gathers(model)
    done["int64_copies"] = _int32_inputs(model)
    # ranks are known where sizes are not (reshapes computed from shapes): hidden states are 3-D, and their
    # first two sizes are the graph's fixed batch and length
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in shape_inference.infer_shapes(model).graph.value_info}
    shape = tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)
    g = _Graph(model)
    done |= {"erf_to_tanh": 0, "layer_norms_decomposed": 0, "matmuls_2d": 0}
    nodes, keep_float = [], []
    for node in model.graph.node:
        if node.op_type == "Erf":
            nodes += _tanh_for_erf(node, g)
            done["erf_to_tanh"] += 1
        elif node.op_type == "LayerNormalization":
            nodes += _decomposed_layer_norm(node, g)
            done["layer_norms_decomposed"] += 1
        elif node.op_type == "MatMul" and node.input[1] in g.weights and ranks.get(node.input[0]) == 3:
            nodes += _two_d_matmul(node, shape, g)
            done["matmuls_2d"] += 1
        else:
            nodes.append(node)
            if node.op_type == "MatMul" and node.input[1] not in g.weights:
                keep_float.append(node.name)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return done, keep_float


def quantize_word_embeddings(model) -> int:
    """Store the table of every lookup by an input (the word embeddings) in u8 with one scale and zero
    point, dequantized after the lookup; how many tables were."""
    from onnx import helper, numpy_helper

    tables = {i.name: i for i in model.graph.initializer}
    inputs = {i.name for i in model.graph.input}
    changed, nodes = 0, []
    for node in model.graph.node:
        table = tables.get(node.input[0]) if node.op_type == "Gather" else None
        if table is None or node.input[1] not in inputs:
            nodes.append(node)
            continue
        values = numpy_helper.to_array(table).astype(np.float32)
        low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
        scale = (high - low) / 255 or 1.0
        zero = int(round(-low / scale))
        table.CopyFrom(numpy_helper.from_array(np.clip(np.round(values / scale) + zero, 0, 255).astype(np.uint8),
                                               table.name))  # fmt: skip
        model.graph.initializer.extend([numpy_helper.from_array(np.float32(scale), f"{table.name}/scale"),
                                        numpy_helper.from_array(np.uint8(zero), f"{table.name}/zero")])  # fmt: skip
        rows = f"{node.output[0]}/u8"
        nodes += [helper.make_node("Gather", [node.input[0], node.input[1]], [rows], name=node.name, axis=0),
                  helper.make_node("DequantizeLinear", [rows, f"{table.name}/scale", f"{table.name}/zero"],
                                   list(node.output), name=f"{node.name}/DequantizeLinear")]  # fmt: skip
        changed += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return changed


def as_int32(feeds: list[dict]) -> list[dict]:
    return [{k: np.asarray(v).astype(np.int32) for k, v in feed.items()} for feed in feeds]


def nnapi_graph(fixed_fp32: Path, destination: Path, work: Path, feeds: list[dict], calibration_method: str,
                target: str, judge: DropJudge | None = None) -> tuple[dict[str, int], Search | None]:  # fmt: skip
    """The NNAPI variant of a fixed-shape fp32 graph, written to ``destination``; ``feeds`` (int64 as the
    other variants take them) calibrate its activations. Returns what was rewritten and, with a ``judge``
    (dev scoring against the drop limit), the accuracy-aware search: per-tensor u8 weights can cost more
    than the limit, and a MatMul kept in float still runs on NNAPI (one partition either way), so the
    fewest most sensitive ones are kept in float rather than the variant being left out."""
    import onnx

    from codir_edge.export import quantize as q
    from codir_edge.export.mixed import MOBILE_QDQ, quantize_within, sensitivity

    model = onnx.load(str(fixed_fp32))
    done, keep_float = rewrite_for_nnapi(model)
    onnx.checker.check_model(model)
    rewritten, quantized = work / "nnapi_float.onnx", work / "nnapi_qdq.onnx"
    onnx.save(model, str(rewritten))
    int32 = as_int32(feeds)

    def quantize(keep: tuple[str, ...]) -> Path:
        q.static_int8(rewritten, quantized, int32, calibration_method, target, op_types=["MatMul"],
                      keep_float=(*keep_float, *keep), weights_u8_per_tensor=True,
                      ranges=work / "nnapi.ranges.json")  # fmt: skip
        model = onnx.load(str(quantized))
        done["embedding_tables_u8"] = quantize_word_embeddings(model)
        onnx.save(model, str(destination))
        return destination

    def rank() -> list[str]:  # the attention's MatMuls, and whatever the rewrite kept, are float already
        ranked = sensitivity(rewritten, int32[:SENSITIVITY_SENTENCES], MOBILE_QDQ, ("MatMul",), activations=False)
        return [name for name, _ in ranked if name not in keep_float]

    return done, quantize_within(quantize, rank, judge)
