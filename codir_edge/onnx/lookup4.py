"""Word-embedding lookups stored in 4 bits (``export --embedding-bits 4``).

After INT8 quantization the word-embedding table is the largest tensor of a small encoder: 30,522 x 384
bytes is 11.7 MB of a 17.6 MB file, and still 5.1 MB of 10.9 MB after ``compress --vocab auto``. A
lookup reads a handful of rows per sentence, so the table is memory and download size, never compute:
onnxruntime's ``GatherBlockQuantized`` (com.microsoft) gathers rows from a 4-bit table and dequantizes
only those, with one scale and zero point per block of ``block`` values along each row (asymmetric),
which halves the table again.

Only lookups by a graph input (``input_ids``, ``token_type_ids``) along the table's rows are rewritten,
whether their table is float, u8 gathered then dequantized (onnxruntime's dynamic INT8, QOperator) or u8
dequantized then gathered (static QDQ), one scale and zero point for the table: the 4-bit table is made
from the dequantized values then. A fused graph whose word lookup sits inside
``QEmbedLayerNormalization`` has none to rewrite (the names returned say so).

The values are packed two per uint8 byte (low nibble first) with ``bits=4``, MatMulNBits' layout, not
as the uint4 tensor type: the ORT format (``model.ort``) cannot hold uint4 tensors, and the packed form
keeps the IR version. Checked to run, with the same outputs, in onnxruntime 1.23.2 to 1.32.0 (Python;
1.22.1 refuses the ``bits`` attribute), the ORT format, onnxruntime-node 1.30 and onnxruntime-web's wasm
build; ``runtime_needs`` claims the file for the running onnxruntime only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BLOCK = 64  # values per scale: 6 blocks per row of a 384-wide table
LEVELS = 15  # uint4


def block_size(width: int, wanted: int = BLOCK) -> int | None:
    """The block for rows of ``width`` values: ``wanted``, or the largest power of two from 16 up that
    divides the width (onnxruntime takes powers of two of at least 16); None when none does."""
    size = wanted
    while size >= 16:
        if width % size == 0:
            return size
        size //= 2
    return None


def quantize_blocks(table: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint4 values (V, D) as uint8, float32 scales (V, D / block), uint4 zero points (V, D / block)):
    asymmetric per block, with 0 exactly representable (a padding row stays zero)."""
    rows, width = table.shape
    blocks = table.astype(np.float32).reshape(rows, width // block, block)
    low = np.minimum(blocks.min(axis=-1), 0.0)
    high = np.maximum(blocks.max(axis=-1), 0.0)
    scales = (high - low) / LEVELS
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    zeros = np.clip(np.round(-low / scales), 0, LEVELS).astype(np.uint8)
    values = np.clip(np.round(blocks / scales[..., None]) + zeros[..., None], 0, LEVELS).astype(np.uint8)
    return values.reshape(rows, width), scales, zeros


def dequantize_blocks(values: np.ndarray, scales: np.ndarray, zeros: np.ndarray) -> np.ndarray:
    """What ``GatherBlockQuantized`` returns for every row: (values - zero) * scale, blockwise."""
    rows, width = values.shape
    block = width // scales.shape[1]
    blocks = values.reshape(rows, -1, block).astype(np.float32) - zeros[..., None]
    return (blocks * scales[..., None]).reshape(rows, width)


def packed(values: np.ndarray) -> np.ndarray:
    """(V, D) uint4 values as (V, ceil(D / 2)) bytes, two per byte, the first in the low nibble."""
    values = values.astype(np.uint8)
    if values.shape[1] % 2:
        values = np.concatenate([values, np.zeros((values.shape[0], 1), np.uint8)], axis=1)
    return (values[:, 0::2] | (values[:, 1::2] << 4)).astype(np.uint8)


def _readers(model, name: str) -> list:
    return [n for n in model.graph.node if name in n.input]


def _dequantized(dequantize, tables: dict) -> np.ndarray | None:
    """The float values of a DequantizeLinear of a 2-D constant with one scale and zero point, else None."""
    from onnx import numpy_helper

    source = tables.get(dequantize.input[0])
    params = [tables.get(name) for name in dequantize.input[1:]]
    if source is None or len(source.dims) != 2 or not params or any(p is None or len(p.dims) for p in params):
        return None
    scale = numpy_helper.to_array(params[0]).astype(np.float32)
    zero = numpy_helper.to_array(params[1]).astype(np.float32) if len(params) > 1 else np.float32(0)
    return (numpy_helper.to_array(source).astype(np.float32) - zero) * scale


def _lookup(model, node, tables: dict, producers: dict) -> tuple[np.ndarray, str, str, object | None] | None:
    """For a Gather by a graph input: (the table's float values, its name, the output the 4-bit lookup
    writes, the DequantizeLinear it replaces too or None), in each form quantizers leave a lookup in:
    a float table; a u8 table gathered, then one DequantizeLinear (dynamic, QOperator); a u8 table
    dequantized, then gathered (static, QDQ). None for any other Gather."""
    from onnx import numpy_helper

    if any(a.name == "axis" and a.i != 0 for a in node.attribute):
        return None  # a lookup along another axis than the rows
    data = node.input[0]
    if data in tables:
        table = tables[data]
        if len(table.dims) != 2:
            return None
        if table.data_type == 1:  # float
            return numpy_helper.to_array(table), data, node.output[0], None
        after = _readers(model, node.output[0])
        if len(after) == 1 and after[0].op_type == "DequantizeLinear" and after[0].input[0] == node.output[0]:
            params = {**tables, node.output[0]: table}  # the DequantizeLinear's input is the table's rows
            values = _dequantized(after[0], params)
            return None if values is None else (values, data, after[0].output[0], after[0])
        return None
    before = producers.get(data)
    if before is not None and before.op_type == "DequantizeLinear" and len(_readers(model, data)) == 1:
        values = _dequantized(before, tables)
        return None if values is None else (values, before.input[0], node.output[0], before)
    return None


def four_bit_lookups(source: Path, destination: Path, block: int = BLOCK) -> list[str]:
    """Write ``source`` with every lookup by a graph input stored in 4 bits to ``destination``; the
    inputs whose lookups were rewritten (none: the graph is written as it was)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    tables = {i.name: i for i in model.graph.initializer}
    inputs = {i.name for i in model.graph.input}
    producers = {out: n for n in model.graph.node for out in n.output}
    swaps, folded, new_tables = {}, set(), []  # Gather's output -> its replacement; DequantizeLinears folded in
    for node in model.graph.node:
        by_input = node.op_type == "Gather" and len(node.input) == 2 and node.input[1] in inputs
        found = _lookup(model, node, tables, producers) if by_input else None
        size = block_size(found[0].shape[1], block) if found is not None else None
        if size is None:
            continue
        values, table, out, dequantize = found
        q, scales, zeros = quantize_blocks(values, size)
        name = f"{table}/q4"
        new_tables += [numpy_helper.from_array(packed(q), name), numpy_helper.from_array(scales, f"{name}/scales"),
                       numpy_helper.from_array(packed(zeros), f"{name}/zero_points")]  # fmt: skip
        swaps[node.output[0]] = helper.make_node(
            "GatherBlockQuantized",
            [name, node.input[1], f"{name}/scales", f"{name}/zero_points"],
            [out],
            name=f"{node.name}/q4",
            domain="com.microsoft",
            gather_axis=0,
            quantize_axis=1,
            block_size=size,
            bits=4,
        )
        if dequantize is not None:
            folded.add(dequantize.output[0])
    if swaps:
        nodes = [swaps.get(n.output[0], n) for n in model.graph.node if n.output[0] not in folded]
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        model.graph.initializer.extend(new_tables)
        used = {name for n in model.graph.node for name in n.input}
        kept = [i for i in model.graph.initializer if i.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
        if not any(o.domain == "com.microsoft" for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(destination))
    return [n.input[1] for n in swaps.values()]
