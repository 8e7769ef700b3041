"""Sentence embeddings from an exported graph's ``sentence_embedding`` output (numpy and onnxruntime
only): what export scores its variants on and what ``evaluate --task embedding`` reports for a bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codir_edge.data.encode import Encoded, eval_batches, pad_batch
from codir_edge.onnx.pooling import EMBEDDING


def onnx_embeddings(model: Path, encoded: Encoded, threads: int = 1, batch_size: int = 1) -> np.ndarray:
    """(N, d) float32 in the order of ``encoded``, ``batch_size`` texts per call (1: as an app calls it;
    dynamic INT8 quantizes each call's activations with one range, so batch mates change the result)."""
    from codir_edge.core.errors import InputError
    from codir_edge.onnx.session import create_session

    session = create_session(model, threads)
    if EMBEDDING not in [o.name for o in session.get_outputs()]:
        raise InputError(f"{model} has no {EMBEDDING} output: export the model with --task embedding")
    declared = {i.name: (np.int32 if i.type == "tensor(int32)" else np.int64) for i in session.get_inputs()}
    out: np.ndarray | None = None
    for rows in eval_batches(encoded.lengths, batch_size):
        batch = pad_batch(encoded, rows)
        batch.setdefault("token_type_ids", np.zeros_like(batch["input_ids"]))
        (values,) = session.run([EMBEDDING], {name: batch[name].astype(kind) for name, kind in declared.items()})
        if out is None:
            out = np.zeros((len(encoded), values.shape[-1]), dtype=np.float32)
        out[rows] = values
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)
