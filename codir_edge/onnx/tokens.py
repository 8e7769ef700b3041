"""Per-token logits from an exported token classifier (numpy and onnxruntime only): what export
checks its variants with and what ``evaluate`` and ``profile --data`` score for ``--task ner``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codir_edge.data.encode import Encoded
from codir_edge.onnx.predict import fixed_logits, fixed_shape_of, run_batches


def onnx_token_logits(model: Path, encoded: Encoded, threads: int = 1, batch_size: int = 1) -> list[np.ndarray]:
    """Each sentence's (T_i, C) float32 logits at its own length, in the order of ``encoded``;
    ``batch_size`` sentences per call (1: as an app calls it). A fixed-shape graph is fed as an app
    must feed it, at its shape: a sentence longer than its length gets logits for the pieces it kept
    only, and the words after them count as missed."""
    from codir_edge.core.errors import InputError
    from codir_edge.onnx.session import create_session

    session = create_session(model, threads)
    output = session.get_outputs()[0]
    if len(output.shape) != 3:
        raise InputError(f"{model} outputs {output.name} of rank {len(output.shape)}, not per-token logits "
                         "[batch, sequence, labels]: export the token classifier with --task ner")  # fmt: skip
    if (shape := fixed_shape_of(session)) is not None:  # rows cut at its length: the words after are missed
        logits = fixed_logits(session, encoded, *shape)
        return [logits[i, : min(len(ids), shape[1])] for i, ids in enumerate(encoded.input_ids)]
    out: list[np.ndarray] = [None] * len(encoded)  # type: ignore[list-item]
    for rows, (logits,) in run_batches(session, encoded, batch_size, [output.name]):
        for row, i in enumerate(rows):
            out[i] = logits[row, : len(encoded.input_ids[i])].astype(np.float32)
    return out


def score_tagger_onnx(model: Path, tokens, split, labels: list[str], threads: int = 1,
                      batch_size: int = 1) -> tuple[dict[str, float], float]:  # fmt: skip
    """(entity scores, inference seconds) of the graph at ``model`` on ``split``, tokenized as ``tokens``
    (``data/ner_encode.TokenEncoded``, once for every graph that shares a tokenizer)."""
    import time

    from codir_edge.data.ner_encode import score_token_logits

    started = time.perf_counter()
    logits = onnx_token_logits(model, tokens.encoded, threads, batch_size)
    seconds = time.perf_counter() - started
    return score_token_logits(logits, tokens, split, labels), seconds
