"""The Core ML variant: a graph that Core ML's MLProgram format takes whole, after the embedding lookup.

MLProgram has no QuantizeLinear/DequantizeLinear, so the QDQ fixed-shape variant bounces between Core ML
and the CPU dozens of times; and it has no Gather, which BERT's export uses three times. So this variant
is the fp32 graph with fixed shapes, rewritten where Core ML would stop, then stored in fp16 (inputs and
outputs stay int64 and fp32, so an app feeds it as any other variant):

- the word-embedding lookup stays a Gather: it runs on the CPU, first, and its output is the Core ML
  part's input, so the table's rows (30,522 for BERT, above Core ML's 16,384 cap on a dimension) never
  reach Core ML;
- the token-type lookup (two rows) becomes arithmetic: row 0 plus the type id times (row 1 - row 0);
- the pooler's pick of the first position (a Gather with a constant index) becomes a Slice and a Squeeze;
- LayerNormalization and GELU stay single operators (the exporter's opset writes LayerNormalization, and
  GELU as Erf, which Core ML takes).

onnxruntime's checker and ours (``accelerators.py``) then say how much of it Core ML takes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TYPE_ROWS = 2  # a token-type table this small becomes arithmetic; a larger one keeps its Gather


def _constants(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _slice_for_gather(node, index: int, g) -> list:
    """``Gather(x, k, axis)`` with a constant scalar ``k``: ``Squeeze(Slice(x, k, k+1, axis), axis)``."""
    from onnx import helper

    name = node.name or node.output[0]
    end = index + 1 if index != -1 else np.iinfo(np.int64).max  # -1 + 1 would be an empty slice
    starts, ends, axes = (g.add(f"{name}/{part}", np.array([v], dtype=np.int64))
                          for part, v in (("starts", index), ("ends", end), ("axes", g.axis(node))))  # fmt: skip
    sliced = f"{name}/sliced"
    return [helper.make_node("Slice", [node.input[0], starts, ends, axes], [sliced], name=f"{name}/Slice"),
            helper.make_node("Squeeze", [sliced, axes], list(node.output), name=f"{name}/Squeeze")]  # fmt: skip


def _arithmetic_for_types(node, table: np.ndarray, g) -> list:
    """``Gather(types_table, ids)`` over two rows: ``row0 + float(ids)[..., None] * (row1 - row0)``."""
    from onnx import TensorProto, helper

    name = node.name or node.output[0]
    row0, step = g.add(f"{name}/row0", table[0]), g.add(f"{name}/step", table[1] - table[0])
    last = g.add(f"{name}/last_axis", np.array([-1], dtype=np.int64))
    as_float, column, scaled = f"{name}/as_float", f"{name}/column", f"{name}/scaled"
    return [helper.make_node("Cast", [node.input[1]], [as_float], to=TensorProto.FLOAT, name=f"{name}/Cast"),
            helper.make_node("Unsqueeze", [as_float, last], [column], name=f"{name}/Unsqueeze"),
            helper.make_node("Mul", [column, step], [scaled], name=f"{name}/Mul"),
            helper.make_node("Add", [scaled, row0], list(node.output), name=f"{name}/Add")]  # fmt: skip


class Initializers:
    """New initializers for the rewritten graph, and a node's ``axis`` attribute."""

    def __init__(self, model):
        self.model = model

    def add(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    @staticmethod
    def axis(node) -> int:
        return next((a.i for a in node.attribute if a.name == "axis"), 0)


def rewrite_gathers(model) -> dict[str, int]:
    """Replace, in place, the Gathers Core ML would stop at (see the module docstring); how many of each."""
    constants, g = _constants(model), Initializers(model)
    graph_inputs = {i.name for i in model.graph.input}
    done = {"gathers_to_slices": 0, "token_type_arithmetic": 0}
    nodes = []
    for node in model.graph.node:
        indices = constants.get(node.input[1]) if node.op_type == "Gather" else None
        table = constants.get(node.input[0]) if node.op_type == "Gather" else None
        if indices is not None and indices.ndim == 0 and table is None:
            nodes += _slice_for_gather(node, int(indices), g)
            done["gathers_to_slices"] += 1
        elif (table is not None and table.ndim == 2 and table.shape[0] == TYPE_ROWS and g.axis(node) == 0
              and node.input[1] in graph_inputs):  # fmt: skip
            nodes += _arithmetic_for_types(node, table.astype(np.float32), g)
            done["token_type_arithmetic"] += 1
        else:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return done


def coreml_graph(fixed_fp32: Path, destination: Path) -> dict[str, int]:
    """The Core ML variant of a fixed-shape fp32 graph, written to ``destination`` (fp16 inside, int64
    and fp32 at its inputs and outputs); returns what ``rewrite_gathers`` changed."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fixed_fp32))
    done = rewrite_gathers(model)
    onnx.checker.check_model(model)
    half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    onnx.save(half, str(destination))
    return done
