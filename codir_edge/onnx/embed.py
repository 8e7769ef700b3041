"""Sentence embeddings from an exported graph's ``sentence_embedding`` output (numpy and onnxruntime
only): what export scores its variants on and what ``evaluate --task embedding`` reports for a bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codir_edge.data.encode import Encoded
from codir_edge.onnx.pooling import EMBEDDING
from codir_edge.onnx.predict import run_batches


def onnx_embeddings(model: Path, encoded: Encoded, threads: int = 1, batch_size: int = 1) -> np.ndarray:
    """(N, d) float32 in the order of ``encoded``, ``batch_size`` texts per call (1: as an app calls it;
    dynamic INT8 quantizes each call's activations with one range, so batch mates change the result)."""
    from codir_edge.core.errors import InputError
    from codir_edge.onnx.session import create_session

    session = create_session(model, threads)
    if EMBEDDING not in [o.name for o in session.get_outputs()]:
        raise InputError(f"{model} has no {EMBEDDING} output: export the model with --task embedding")
    out: np.ndarray | None = None
    for rows, (values,) in run_batches(session, encoded, batch_size, [EMBEDDING]):
        if out is None:
            out = np.zeros((len(encoded), values.shape[-1]), dtype=np.float32)
        out[rows] = values
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)
