"""4-bit word-embedding lookups (``onnx/lookup4.py``): real graphs run in onnxruntime, against the
values they stand for."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from codir_edge.onnx.lookup4 import block_size, dequantize_blocks, four_bit_lookups, quantize_blocks


def _lookup_graph(path, table: np.ndarray, form: str = "float") -> np.ndarray:
    """ids -> Gather(table) -> + 1, the table in one of the forms quantizers leave: float; ``dynamic`` (a u8
    table gathered, then dequantized); ``qdq`` (a u8 table dequantized, then gathered). Returns the values
    the graph looks up (the u8 ones dequantized)."""
    nodes, inits = [], []
    if form != "float":
        low, high = min(float(table.min()), 0.0), max(float(table.max()), 0.0)
        scale = np.float32((high - low) / 255)
        zero = int(round(-low / scale))
        q = np.clip(np.round(table / scale) + zero, 0, 255).astype(np.uint8)
        looked_up = (q.astype(np.float32) - np.float32(zero)) * scale
        inits += [numpy_helper.from_array(q, "w_q"),
                  numpy_helper.from_array(np.float32(scale), "w_scale"),
                  numpy_helper.from_array(np.uint8(zero), "w_zero")]  # fmt: skip
        if form == "dynamic":
            nodes += [
                helper.make_node("Gather", ["w_q", "input_ids"], ["rows_q"], name="lookup"),
                helper.make_node("DequantizeLinear", ["rows_q", "w_scale", "w_zero"], ["rows"], name="dq"),
            ]
        else:
            nodes += [
                helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], name="dq"),
                helper.make_node("Gather", ["w", "input_ids"], ["rows"], name="lookup"),
            ]
    else:
        looked_up = table
        inits.append(numpy_helper.from_array(table, "w"))
        nodes.append(helper.make_node("Gather", ["w", "input_ids"], ["rows"], name="lookup"))
    inits.append(numpy_helper.from_array(np.float32(1.0), "one"))
    nodes.append(helper.make_node("Add", ["rows", "one"], ["out"], name="add"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "t"])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", "t", table.shape[1]])],
                              inits)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return looked_up


def _run(path, ids: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input_ids": ids})[0]


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 40), blocks=st.integers(1, 7), block=st.sampled_from([16, 32, 64]), seed=st.integers(0, 99))
def test_blocks_dequantize_within_half_a_step_and_keep_zero_exact(rows, blocks, block, seed):
    table = np.random.default_rng(seed).normal(0, 0.1, (rows, blocks * block)).astype(np.float32)
    table[0, :block] = 0.0  # a zero block (a padding row) must come back as exact zeros
    values, scales, zeros = quantize_blocks(table, block)
    assert values.max() <= 15 and zeros.max() <= 15 and scales.shape == (rows, blocks)
    back = dequantize_blocks(values, scales, zeros)
    step = np.repeat(scales, block, axis=1)
    assert (np.abs(back - table) <= step / 2 + 1e-6).all()
    assert (back[0, :block] == 0).all()


def test_block_size_is_the_largest_power_of_two_from_16_that_divides_the_width():
    assert block_size(384) == 64 and block_size(768) == 64 and block_size(312) is None
    assert block_size(96) == 32 and block_size(48) == 16 and block_size(40) is None


@pytest.mark.parametrize("form", ["float", "dynamic", "qdq"])
@pytest.mark.parametrize("width", [64, 320])  # 320: five blocks, an odd count of zero points to pack
def test_a_lookup_by_an_input_runs_4_bit_with_the_values_it_stands_for(tmp_path, form, width):
    table = np.random.default_rng(0).normal(0, 0.05, (300, width)).astype(np.float32)
    source, rewritten = tmp_path / "a.onnx", tmp_path / "b.onnx"
    looked_up = _lookup_graph(source, table, form)
    assert four_bit_lookups(source, rewritten) == ["input_ids"]
    model = onnx.load(str(rewritten))
    assert [n.op_type for n in model.graph.node] == ["GatherBlockQuantized", "Add"]
    assert model.ir_version == 8 and not {"w", "w_q", "w_scale"} & {i.name for i in model.graph.initializer}
    ids = np.array([[0, 7, 299, 7]], dtype=np.int64)
    got = _run(rewritten, ids)
    reference = _run(source, ids)
    assert np.abs(got - reference).max() <= (table.max() - table.min()) / 15  # within one 4-bit step of any block
    values, scales, zeros = quantize_blocks(looked_up, 64)  # exactly what GatherBlockQuantized dequantizes
    np.testing.assert_allclose(got[0], dequantize_blocks(values, scales, zeros)[ids[0]] + 1.0, atol=1e-6)
    assert rewritten.stat().st_size < source.stat().st_size * (0.6 if form == "float" else 0.75)


def test_a_graph_without_a_lookup_by_an_input_is_written_as_it_was(tmp_path):
    table = np.ones((4, 32), np.float32)
    source, rewritten = tmp_path / "a.onnx", tmp_path / "b.onnx"
    _lookup_graph(source, table)
    model = onnx.load(str(source))
    model.graph.node[0].input[1] = "ids_computed"  # the indices come from a node now, not an input
    model.graph.node.insert(0, helper.make_node("Identity", ["input_ids"], ["ids_computed"], name="identity"))
    onnx.save(model, str(source))
    assert four_bit_lookups(source, rewritten) == []
    assert [n.op_type for n in onnx.load(str(rewritten)).graph.node] == ["Identity", "Gather", "Add"]
