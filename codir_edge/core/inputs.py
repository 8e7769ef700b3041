"""Model inputs for a measurement: synthetic with exact lengths, or real tokenized sentences.

Synthetic inputs measure the cost of a given shape; real ones measure what an app sees (SST-2's
median sentence is about 10 tokens, so a fixed length-128 figure overstates typical latency).
Feeds are plain lists of token ids here, so they travel to the worker process as JSON.
"""

from __future__ import annotations

import numpy as np

REAL = "real"  # the seq_len of configurations fed with real sentences


# Used when nothing says how large the vocabulary is (an .ort file alone): every model we take has more.
SAFE_VOCAB = 1000


def synthetic_token_ids(batch_size: int, seq_len: int, seed: int = 0, vocab: int = 30000) -> list[list[int]]:
    """``batch_size`` rows of exactly ``seq_len`` token ids below ``vocab``, drawn above the first tenth
    of the vocabulary (at most 1000), where families keep their special and unused tokens."""
    rng = np.random.default_rng(seed)
    low = min(1000, vocab // 10)
    body = rng.integers(low, vocab, size=(batch_size, max(seq_len - 2, 0)))
    return [[low, *row.tolist(), low][:seq_len] for row in body]


def onnx_vocab_size(path) -> int:
    """Rows of the embedding table that ``input_ids`` indexes, read from the graph (``SAFE_VOCAB``
    when the graph does not show it plainly, or is not an ONNX protobuf)."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # an .ort flatbuffer, or a file onnxruntime will judge itself
        return SAFE_VOCAB
    tables = {init.name: init.dims for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[1] == "input_ids":
            dims = tables.get(node.input[0])
            if dims:
                return int(dims[0])
    return SAFE_VOCAB


def real_batches(token_ids: list[list[int]], batch_size: int, count: int) -> list[list[list[int]]]:
    """``count`` batches of consecutive sentences, cycling through the data set."""
    if not token_ids:
        return []
    return [[token_ids[(b * batch_size + i) % len(token_ids)] for i in range(batch_size)] for b in range(count)]


def to_feed(rows: list[list[int]], input_names: list[str], dtype=np.int64, pad_id: int = 0) -> dict[str, np.ndarray]:
    """Right-padded arrays for the model's own input names (token_type_ids only if the model takes it)."""
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=dtype)
    mask = np.zeros((len(rows), width), dtype=dtype)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {name: arrays[name] for name in input_names if name in arrays}
