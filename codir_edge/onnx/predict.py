"""Batched inference with onnxruntime (numpy only): the ONNX twin of ``models.predict``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from codir_edge.data.encode import Encoded, eval_batches, pad_batch


def declared_inputs(session) -> dict[str, type]:
    """The graph's inputs and the integer type each takes: feeds are built from these alone, so a graph
    without token_type_ids, or one exported with int32 ids (NNAPI, Core ML), is fed what it declares."""
    return {i.name: (np.int32 if i.type == "tensor(int32)" else np.int64) for i in session.get_inputs()}


def run_batches(session, encoded: Encoded, batch_size: int, outputs: list[str] | None = None
                ) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:  # fmt: skip
    """(row indices, the session's outputs) per batch of ``batch_size`` rows of similar length, each batch
    right-padded to its longest row (token_type_ids zeros where the data has none)."""
    inputs = declared_inputs(session)
    for rows in eval_batches(encoded.lengths, batch_size):
        batch = pad_batch(encoded, rows)
        batch.setdefault("token_type_ids", np.zeros_like(batch["input_ids"]))
        yield rows, session.run(outputs, {name: batch[name].astype(kind) for name, kind in inputs.items()})


def onnx_logits(
    model: Path, encoded: Encoded, threads: int = 1, batch_size: int = 64, provider: str = "CPUExecutionProvider"
) -> np.ndarray:
    """Outputs (N, C) float32 in the order of ``encoded``; feeds only the inputs the graph declares.
    A graph with a fixed [B, L] input shape is fed as an app must feed it: B rows at a time (the
    last batch filled up with repeats, whose outputs are dropped), each padded or cut to L tokens."""
    from codir_edge.onnx.session import create_session

    session = create_session(model, threads, provider)
    if (shape := fixed_shape_of(session)) is not None:
        return fixed_logits(session, encoded, *shape)
    outputs: list[np.ndarray] = [None] * len(encoded)  # type: ignore[list-item]
    for indices, (logits, *_) in run_batches(session, encoded, batch_size):
        for row, value in zip(indices, np.asarray(logits, dtype=np.float32), strict=True):
            outputs[row] = value
    return np.stack(outputs)


def fixed_shape_of(session) -> tuple[int, int] | None:
    """(batch, length) of a graph whose inputs are fixed in both dimensions (the fixed-shape, Core ML
    and NNAPI variants), else None."""
    first = session.get_inputs()[0]
    fixed = [d for d in first.shape if isinstance(d, int)] if len(first.shape) == 2 else []
    return (fixed[0], fixed[1]) if len(fixed) == 2 else None


def fixed_batches(encoded: Encoded, batch_size: int, length: int, count: int | None = None) -> list[dict]:
    """Arrays of exactly [batch_size, length] over the first ``count`` rows (all by default): rows
    cut or right-padded to ``length``, the last batch filled up with repeats from the start."""
    total = len(encoded) if count is None else min(count, len(encoded))
    out = []
    for start in range(0, total, batch_size):
        ids = np.full((batch_size, length), encoded.pad_id, dtype=np.int64)
        mask, segments = np.zeros_like(ids), np.zeros_like(ids)
        for i in range(batch_size):
            row = (start + i) % len(encoded)
            tokens = encoded.input_ids[row][:length]
            ids[i, : len(tokens)], mask[i, : len(tokens)] = tokens, 1
            if encoded.token_type_ids is not None:
                segments[i, : len(tokens)] = encoded.token_type_ids[row][:length]
        out.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": segments})
    return out


def fixed_logits(session, encoded: Encoded, batch_size: int, length: int) -> np.ndarray:
    """The first output of a fixed-shape graph per row of ``encoded``, [N, ...] float32, fed as
    ``fixed_batches`` cuts and pads the rows, with the integer types the graph declares."""
    inputs = declared_inputs(session)
    outputs = [
        np.asarray(session.run(None, {n: arrays[n].astype(t) for n, t in inputs.items()})[0])
        for arrays in fixed_batches(encoded, batch_size, length)
    ]
    return np.concatenate(outputs)[: len(encoded)].astype(np.float32)
