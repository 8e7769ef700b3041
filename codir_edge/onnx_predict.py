"""Batched inference with onnxruntime (numpy only): the ONNX twin of ``models.predict``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codir_edge.data.encode import Encoded, eval_batches, pad_batch


def onnx_logits(
    model: Path, encoded: Encoded, threads: int = 1, batch_size: int = 64, provider: str = "CPUExecutionProvider"
) -> np.ndarray:
    """Outputs (N, C) float32 in the order of ``encoded``; feeds only the inputs the graph declares."""
    from codir_edge.onnx_session import create_session

    session = create_session(model, threads, provider)
    inputs = {i.name: (np.int32 if i.type == "tensor(int32)" else np.int64) for i in session.get_inputs()}
    outputs: list[np.ndarray] = [None] * len(encoded)  # type: ignore[list-item]
    for indices in eval_batches(encoded.lengths, batch_size):
        batch = pad_batch(encoded, indices)
        if "token_type_ids" not in batch:
            batch["token_type_ids"] = np.zeros_like(batch["input_ids"])
        feed = {name: batch[name].astype(dtype) for name, dtype in inputs.items()}
        logits = session.run(None, feed)[0]
        for row, value in zip(indices, np.asarray(logits, dtype=np.float32), strict=True):
            outputs[row] = value
    return np.stack(outputs)
