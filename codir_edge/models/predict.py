"""Batched inference with torch: length-sorted batches, outputs returned in the input order."""

from __future__ import annotations

import numpy as np

from codir_edge.data.encode import Encoded, eval_batches, pad_batch
from codir_edge.models.runtime import Runtime


def host_to(tensor, device):
    """A host tensor on ``device``; to a GPU through pinned memory, so the copy neither blocks the host
    nor waits for the GPU (a copy from pageable memory would do both)."""
    if str(device).startswith("cuda") and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def to_device(batch: dict[str, np.ndarray], runtime: Runtime) -> dict:
    """numpy batch -> tensors on the device (asynchronously on CUDA)."""
    import torch

    return {name: host_to(torch.from_numpy(array), runtime.device) for name, array in batch.items()}


def predict_logits(model, encoded: Encoded, runtime: Runtime, batch_size: int = 128) -> np.ndarray:
    """Model outputs for every example, shape (N, num_labels), float32, in the order of ``encoded``."""
    import torch

    model.eval()
    outputs: list[np.ndarray] = [None] * len(encoded)  # type: ignore[list-item]
    with torch.inference_mode(), runtime.autocast():
        for indices in eval_batches(encoded.lengths, batch_size):
            logits = model(**to_device(pad_batch(encoded, indices), runtime)).logits  # (B, C)
            for row, value in zip(indices, logits.float().cpu().numpy(), strict=True):
                outputs[row] = value
    return np.stack(outputs) if outputs else np.zeros((0, 1), dtype=np.float32)


def predict_token_logits(model, encoded: Encoded, runtime: Runtime, batch_size: int = 128) -> list[np.ndarray]:
    """Per-token outputs for every sentence, each (T_i, num_labels) float32 at its own length, in order."""
    import torch

    model.eval()
    outputs: list[np.ndarray] = [None] * len(encoded)  # type: ignore[list-item]
    with torch.inference_mode(), runtime.autocast():
        for indices in eval_batches(encoded.lengths, batch_size):
            logits = model(**to_device(pad_batch(encoded, indices), runtime)).logits.float().cpu().numpy()
            for row, i in enumerate(indices):
                outputs[i] = logits[row, : len(encoded.input_ids[i])]
    return outputs
