"""Our partition check (``export/accelerators.py``): each limit onnxruntime's operator-type checker does not
apply takes its nodes away, and only those, on graphs built to sit on either side of it; and the Core ML
rewrite (``export/coreml.py``) computes what the Gathers it replaces computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper, shape_inference

from codir_edge.export.accelerators import COREML_MAX_DIM, stricter_usability
from codir_edge.export.fixed import ACCELERATORS


def _ops_file(accelerator: str) -> Path:
    from onnxruntime.tools.mobile_helpers import usability_checker

    return Path(usability_checker.__file__).parent / ACCELERATORS[accelerator]


def _model(nodes, inputs, outputs, initializers):
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in initializers])
    return shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


@pytest.mark.parametrize(("dtype", "caught"), [(TensorProto.INT64, True), (TensorProto.INT32, False)])
def test_nnapi_takes_a_lookup_only_with_int32_ids(dtype, caught):
    model = _model(
        [helper.make_node("Gather", ["table", "ids"], ["rows"])],
        [helper.make_tensor_value_info("ids", dtype, [1, 8])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [1, 8, 4])],
        [("table", np.zeros((100, 4), np.float32))],
    )
    figures = stricter_usability(model, _ops_file("nnapi"), "nnapi")
    assert figures["supported_nodes"] == (0 if caught else 1)
    assert figures["caveats"] == ({"Gather indices not int32": 1} if caught else {})


@pytest.mark.parametrize(("shape", "caught"), [([1, 8, 4], True), ([8, 4], False)])
def test_nnapi_takes_a_quantized_matmul_only_on_2d_inputs(shape, caught):
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "scale", "zero"], ["wd"]),
        helper.make_node("MatMul", ["xd", "wd"], ["y"]),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [*shape[:-1], 4])],
        [("scale", np.array(0.1, np.float32)), ("zero", np.array(128, np.uint8)),
         ("wq", np.full((4, 4), 130, np.uint8))],
    )  # fmt: skip
    figures = stricter_usability(model, _ops_file("nnapi"), "nnapi")
    assert figures["nodes"] == 4 and figures["supported_nodes"] == (3 if caught else 4)
    assert figures["caveats"] == ({"quantized MatMul input A not 2-D": 1} if caught else {})
    # a float MatMul is not a quantized one: NNAPI takes it at any rank
    plain = _model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [*shape[:-1], 4])],
        [("w", np.ones((4, 4), np.float32))],
    )
    assert stricter_usability(plain, _ops_file("nnapi"), "nnapi")["supported_nodes"] == 1


@pytest.mark.parametrize(("width", "caught"), [(COREML_MAX_DIM + 1, True), (COREML_MAX_DIM, False)])
def test_coreml_refuses_a_dimension_above_its_cap_and_the_partition_splits(width, caught):
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Add", ["a", "big"], ["b"]),
        helper.make_node("ReduceSum", ["b"], ["s"], keepdims=1),
        helper.make_node("Relu", ["s"], ["y"]),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        [("big", np.zeros((1, width), np.float32))],
    )
    figures = stricter_usability(model, _ops_file("coreml"), "coreml")
    assert figures["supported_nodes"] == (2 if caught else 4)  # the Add and the ReduceSum read the wide tensor
    assert figures["partitions"] == (2 if caught else 1)
    assert figures["caveats"] == ({f"dimension above {COREML_MAX_DIM}": 2} if caught else {})


@settings(max_examples=40, deadline=None)
@given(axis=st.integers(0, 2), data=st.data())
def test_coreml_rewrite_keeps_what_a_gather_by_a_constant_index_picks(axis, data):
    """The pooler's pick of one position becomes Slice + Squeeze: the same values for any index, negative too."""
    import onnxruntime as ort

    from codir_edge.export.coreml import rewrite_gathers

    shape = [2, 5, 3]
    index = data.draw(st.integers(-shape[axis], shape[axis] - 1))
    out = [d for i, d in enumerate(shape) if i != axis]
    model = _model(
        [helper.make_node("Gather", ["x", "k"], ["y"], axis=axis)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
        [("k", np.array(index, np.int64))],
    )
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    assert rewrite_gathers(model)["gathers_to_slices"] == 1
    assert [n.op_type for n in model.graph.node] == ["Slice", "Squeeze"]
    np.testing.assert_array_equal(ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0], want)


def test_coreml_rewrite_turns_a_two_row_type_lookup_into_arithmetic_with_the_same_rows():
    import onnxruntime as ort

    from codir_edge.export.coreml import rewrite_gathers

    table = np.random.default_rng(1).random((2, 4), dtype=np.float32)
    model = _model(
        [helper.make_node("Gather", ["table", "types"], ["rows"])],
        [helper.make_tensor_value_info("types", TensorProto.INT64, [1, 6])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [1, 6, 4])],
        [("table", table)],
    )
    types = np.array([[0, 0, 1, 1, 0, 1]], np.int64)
    assert rewrite_gathers(model)["token_type_arithmetic"] == 1
    assert "Gather" not in {n.op_type for n in model.graph.node}
    got = ort.InferenceSession(model.SerializeToString()).run(None, {"types": types})[0]
    np.testing.assert_allclose(got, table[types], rtol=0, atol=1e-6)
