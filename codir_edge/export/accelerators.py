"""Our own partition check for phone accelerators: onnxruntime's usability checker, plus the limits it
does not check, so that a YES is not taken on the operator list's word.

onnxruntime's checker decides per node by operator type only, and says so. Users report, and the
execution providers' builders enforce, limits beyond the type:

- NNAPI runs a Gather with non-constant indices only when they are int32 (``input_ids`` are int64);
- NNAPI runs a quantized MatMul (QDQ: a DequantizeLinear feeding it, or QLinearMatMul) only when input A
  is 2-D, where BERT's MatMuls read [batch, length, width];
- Core ML refuses a tensor with a dimension above 16,384 (a 30k-row embedding table, for one).

Each rule marks the nodes it catches as unsupported, and onnxruntime's own partitioner
(``check_partitioning``) counts nodes and partitions over that stricter answer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

COREML_MAX_DIM = 16384


def _ops_in(ops_file: Path) -> set[str]:
    """``domain:Op`` entries of onnxruntime's supported-operator table (a markdown file it ships)."""
    ops = set()
    for line in ops_file.read_text(encoding="utf-8").splitlines():
        cells = line.strip().split("|")
        if line.startswith("|") and len(cells) == 4 and ":" in cells[1]:
            ops.add(cells[1])
    return ops


class _Shapes:
    """What the rules read about a tensor: its shape, element type and whether it is a constant."""

    def __init__(self, model):
        graph = model.graph
        self.values = {v.name: v for v in [*graph.input, *graph.output, *graph.value_info]}
        self.initializers = {init.name: init for init in graph.initializer}
        self.producer = {out: node for node in graph.node for out in node.output}

    def dims(self, name: str) -> list[int] | None:
        if name in self.initializers:
            return list(self.initializers[name].dims)
        value = self.values.get(name)
        if value is None or not value.type.HasField("tensor_type"):
            return None
        return [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]

    def elem_type(self, name: str) -> int | None:
        if name in self.initializers:
            return self.initializers[name].data_type
        value = self.values.get(name)
        return value.type.tensor_type.elem_type if value is not None else None

    def constant(self, name: str) -> bool:
        return name in self.initializers or getattr(self.producer.get(name), "op_type", None) == "Constant"


def _nnapi_rule(shapes: _Shapes, node) -> str | None:
    from onnx import TensorProto

    indices = node.input[1] if node.op_type == "Gather" else None
    if indices and not shapes.constant(indices) and shapes.elem_type(indices) != TensorProto.INT32:
        return "Gather indices not int32"
    quantized = node.op_type == "QLinearMatMul" or (
        node.op_type == "MatMul" and getattr(shapes.producer.get(node.input[0]), "op_type", None) == "DequantizeLinear"
    )
    if quantized:
        dims = shapes.dims(node.input[0])
        if dims is None or len(dims) != 2:
            return "quantized MatMul input A not 2-D"
    return None


def _coreml_rule(shapes: _Shapes, node) -> str | None:
    for name in (*node.input, *node.output):
        dims = shapes.dims(name) if name else None
        if dims and max(dims) > COREML_MAX_DIM:
            return f"dimension above {COREML_MAX_DIM}"
    return None


class _StricterChecker:
    """onnxruntime's operator list with ``rule`` on top; the interface ``check_partitioning`` reads."""

    def __init__(self, ops: set[str], rule: Callable, shapes: _Shapes):
        self.ops, self.rule, self.shapes = ops, rule, shapes
        self.caught: dict[str, set[int]] = {}  # rule -> the nodes it caught (the partitioner may ask twice)

    def is_op_supported(self, node) -> bool:
        if f"{node.domain or 'ai.onnx'}:{node.op_type}" not in self.ops:
            return False
        reason = self.rule(self.shapes, node)
        if reason:
            self.caught.setdefault(reason, set()).add(id(node))
        return reason is None

    def get_caveats(self) -> list[str]:
        return sorted(self.caught)


def stricter_usability(model, ops_file: Path, accelerator: str) -> dict:
    """Nodes, share, partitions and verdict for ``accelerator`` ("nnapi" or "coreml") on a shape-inferred,
    optimised model, with our rules applied; ``caveats`` counts the nodes each rule took away."""
    from onnxruntime.tools.mobile_helpers.usability_checker import check_partitioning

    rule = _nnapi_rule if accelerator == "nnapi" else _coreml_rule
    checker = _StricterChecker(_ops_in(ops_file), rule, _Shapes(model))
    info = check_partitioning(model.graph, checker, True)
    return {
        "nodes": info.num_nodes,
        "supported_nodes": info.num_supported_nodes,
        "share": round(info.num_supported_nodes / max(info.num_nodes, 1), 4),
        "partitions": info.num_partitions,
        "verdict": info.suitability().name,
        "caveats": {reason: len(nodes) for reason, nodes in sorted(checker.caught.items())},
    }
