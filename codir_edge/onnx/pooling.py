"""The sentence embedding inside the graph: pooling and normalisation appended to an encoder's ONNX
graph as standard operators, so that onnxruntime alone (an app with no sentence-transformers and no
pooling code of its own) gets the embedding from ``sentence_embedding``.

``last_hidden_state`` stays an output: sentence-transformers' ONNX backend and transformers.js's
feature-extraction pipeline read it and pool it themselves, so the one file serves all three.
The operators match ``models/sentence.pool``: padding never counts (mean over real tokens, max with
padding at -1e9, cls the first token), then x / max(||x||, 1e-12) when the model normalises.
"""

from __future__ import annotations

from pathlib import Path

from codir_edge.models.sentence import SentenceHead

HIDDEN = "last_hidden_state"
EMBEDDING = "sentence_embedding"
_PREFIX = "sentence_pooling/"


def add_sentence_embedding(source: Path, destination: Path, head: SentenceHead) -> None:
    """Write ``source`` with a ``sentence_embedding`` (batch, width) output computed by ``head``."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(source))
    graph = model.graph
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    nodes, inits = [], []

    def name(part: str) -> str:
        return _PREFIX + part

    def const(part: str, values, dtype=TensorProto.INT64) -> str:
        inits.append(helper.make_tensor(name(part), dtype, [len(values)] if isinstance(values, list) else [],
                                        values if isinstance(values, list) else [values]))  # fmt: skip
        return name(part)

    def reduce(op: str, data: str, axes: list[int], out: str, keepdims: int) -> None:
        """Reduce* with axes as an input (ReduceSum from opset 13, the others from 18) or an attribute."""
        if op == "ReduceSum" or opset >= 18:
            nodes.append(helper.make_node(op, [data, const(f"{out}_axes", axes)], [out], keepdims=keepdims))
        else:
            nodes.append(helper.make_node(op, [data], [out], axes=axes, keepdims=keepdims))

    width = _hidden_width(graph)
    if head.pooling == "cls":
        nodes.append(helper.make_node("Gather", [HIDDEN, const("first", 0)], [name("pooled")], axis=1))
    else:
        nodes.append(helper.make_node("Cast", ["attention_mask"], [name("mask")], to=TensorProto.FLOAT))
        nodes.append(helper.make_node("Unsqueeze", [name("mask"), const("last", [-1])], [name("mask3")]))
        if head.pooling == "mean":
            nodes.append(helper.make_node("Mul", [HIDDEN, name("mask3")], [name("masked")]))
            reduce("ReduceSum", name("masked"), [1], name("summed"), 0)
            reduce("ReduceSum", name("mask3"), [1], name("count"), 0)
            floor = const("floor", 1e-9, TensorProto.FLOAT)
            nodes.append(helper.make_node("Max", [name("count"), floor], [name("count_safe")]))
            nodes.append(helper.make_node("Div", [name("summed"), name("count_safe")], [name("pooled")]))
        else:  # max
            zero = const("zero", 0.0, TensorProto.FLOAT)
            nodes.append(helper.make_node("Greater", [name("mask3"), zero], [name("real")]))
            low = const("low", -1e9, TensorProto.FLOAT)
            nodes.append(helper.make_node("Where", [name("real"), HIDDEN, low], [name("filled")]))
            reduce("ReduceMax", name("filled"), [1], name("pooled"), 0)
    result = name("pooled")
    if head.normalize:
        reduce("ReduceL2", result, [-1], name("norm"), 1)
        tiny = const("tiny", 1e-12, TensorProto.FLOAT)
        nodes.append(helper.make_node("Max", [name("norm"), tiny], [name("norm_safe")]))
        nodes.append(helper.make_node("Div", [result, name("norm_safe")], [name("normalized")]))
        result = name("normalized")
    nodes.append(helper.make_node("Identity", [result], [EMBEDDING]))
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    batch = graph.output[0].type.tensor_type.shape.dim[0].dim_param or "batch_size"
    graph.output.append(helper.make_tensor_value_info(EMBEDDING, TensorProto.FLOAT, [batch, width]))
    onnx.checker.check_model(model)
    onnx.save(model, str(destination))


def _hidden_width(graph) -> int | str:
    output = next(o for o in graph.output if o.name == HIDDEN)
    last = output.type.tensor_type.shape.dim[-1]
    return last.dim_value or last.dim_param or "hidden_size"
