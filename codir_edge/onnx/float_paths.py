"""The nodes of a graph that quantization must leave in float: integer arithmetic in disguise.

Some encoders compute indices in float. MPNet's relative-position buckets take ``log`` of a
distance (``-inf`` at distance 0), scale it and cast it to an integer index into a bias table;
position ids and attention masks are computed from the inputs with Casts, CumSums and comparisons.
Calibrating Q/DQ on such a path gives a ``-inf`` or ``nan`` range, a NaN scale and garbage indices
(a Gather then fails with an index out of bounds), and rounding a mask or a compared value can flip
a decision that must be exact. None of these nodes carries weights, so keeping them in float costs
neither size nor speed.

Two sets, found by walking the graph:

- **the index cone**: every node an integer-valued input depends on. It starts from the inputs that
  are indices or shapes (a Gather's indices, a Reshape's shape, a Cast to an integer or boolean type,
  a comparison's operands, Where's condition, ...) and walks back through producers. It does not walk
  through ``Shape`` or ``Size``: they read their input's shape, not its values.
- **the input cone**: every node computed from the graph's integer inputs and small constants alone
  (the attention mask turned into an additive ``-inf`` bias, position ids). A node that also reads
  a weight (an embedding table, a projection) is not in it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

# Inputs (by position) that hold indices, shapes, axes or counts rather than values.
INDEX_INPUTS: dict[str, tuple[int, ...]] = {
    "Gather": (1,),
    "GatherElements": (1,),
    "GatherND": (1,),
    "ScatterElements": (1,),
    "ScatterND": (1,),
    "OneHot": (0, 1),
    "Range": (0, 1, 2),
    "Reshape": (1,),
    "Expand": (1,),
    "Tile": (1,),
    "Slice": (1, 2, 3, 4),
    "ConstantOfShape": (0,),
    "TopK": (1,),
    "Unsqueeze": (1,),
    "Squeeze": (1,),
    "CumSum": (1,),
    "Pad": (1, 2, 3),
    "Split": (1,),
    "Trilu": (1,),
    "Where": (0,),
}
# Every operand of these decides a boolean: rounding it can flip the answer.
COMPARISONS = frozenset({"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Not", "And", "Or", "Xor"})
SHAPE_READERS = frozenset({"Shape", "Size"})
SMALL_CONSTANT = 8  # elements: a scalar, an axis list or a shape, never a weight


def _is_integer_type(elem_type: int) -> bool:
    import onnx

    return elem_type not in (
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.BFLOAT16,
        onnx.TensorProto.DOUBLE,
        onnx.TensorProto.UNDEFINED,
    )


def _index_sinks(node) -> Iterable[str]:
    """The inputs of ``node`` that must hold exact values."""
    if node.op_type in COMPARISONS:
        return node.input
    if node.op_type == "Cast":
        to = next((a.i for a in node.attribute if a.name == "to"), 0)
        return node.input if _is_integer_type(to) else ()
    return [node.input[i] for i in INDEX_INPUTS.get(node.op_type, ()) if i < len(node.input)]


def index_cone(graph) -> set[str]:
    """Names of the nodes an index, shape or exact decision depends on."""
    producer = {out: node for node in graph.node for out in node.output}
    found: set[str] = set()
    stack = [name for node in graph.node for name in _index_sinks(node) if name]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in found:
            continue
        found.add(node.name)
        if node.op_type not in SHAPE_READERS:
            stack.extend(name for name in node.input if name)
    return found


def _small_constants(graph) -> set[str]:
    import numpy as np

    small = {t.name for t in graph.initializer if int(np.prod(t.dims)) <= SMALL_CONSTANT}
    for node in graph.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is None or int(np.prod(value.dims)) <= SMALL_CONSTANT:
                small.update(node.output)
    return small


def input_cone(graph) -> set[str]:
    """Names of the nodes computed from the graph's integer inputs and small constants alone."""
    derived = {i.name for i in graph.input if _is_integer_type(i.type.tensor_type.elem_type)}
    constant = _small_constants(graph)
    found: set[str] = set()
    for node in graph.node:  # ONNX lists nodes in topological order
        inputs = [name for name in node.input if name]
        only_inputs_and_constants = all(n in derived or n in constant for n in inputs)
        if node.op_type != "Constant" and only_inputs_and_constants and any(n in derived for n in inputs):
            found.add(node.name)
            derived.update(node.output)
    return found


def float_paths(model_path: Path) -> tuple[str, ...]:
    """Every node of the graph at ``model_path`` that quantization must keep in float, sorted.

    Export quantizes one source graph several times (dynamic per channel and per tensor, static QDQ,
    each trial of the accuracy-aware search), so the answer is kept per file and its size and time of
    change: a graph is loaded and walked once, and a rewritten file is read again."""
    stat = Path(model_path).stat()
    return _float_paths(str(Path(model_path).resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _float_paths(path: str, mtime_ns: int, size: int) -> tuple[str, ...]:  # mtime and size: the cache key
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    # quantizers exclude nodes by name: an unnamed one cannot be listed (exporters name them all), and
    # the candidate check after quantization catches what a missing name would let through
    return tuple(sorted(name for name in index_cone(graph) | input_cone(graph) if name))
