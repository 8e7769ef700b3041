"""Tokenize once, pad per batch, and order batches by length.

Padding every example to ``max_length`` wastes most of the compute on SST-2 (median 10 tokens), so
examples are kept at their own length and padded only to the longest of their batch. Evaluation
sorts by length (outputs are put back in order); training groups by length inside random
mega-batches, as Hugging Face's ``group_by_length`` does, which keeps batches random but cheap.
Everything here is numpy, so the same code feeds torch and onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codir_edge.data.examples import Examples


@dataclass(frozen=True)
class Encoded:
    """Token ids per example (unpadded), their segment ids, and the targets."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray] | None
    targets: np.ndarray
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))


def encode(tokenizer, examples: Examples, max_length: int, segments: bool | None = None, chunk: int = 4096) -> Encoded:
    """Tokenize with the model's fast tokenizer, truncating (longest first for pairs) at ``max_length``.

    ``segments``: whether the model reads token type ids (its family says; DistilBERT and ModernBERT
    refuse them). None trusts the tokenizer, which is wrong where a user saved a BERT tokenizer with
    another family's model."""
    if segments is None:
        segments = "token_type_ids" in getattr(tokenizer, "model_input_names", ["token_type_ids"])
    ids: list[np.ndarray] = []
    types: list[np.ndarray] = []
    for start in range(0, len(examples), chunk):
        texts = examples.texts[start : start + chunk]
        pairs = examples.text_pairs[start : start + chunk] if examples.text_pairs is not None else None
        out = tokenizer(
            texts,
            pairs,
            truncation=True,
            max_length=max_length,
            return_attention_mask=False,
            return_token_type_ids=segments,
        )
        ids += [np.asarray(x, dtype=np.int64) for x in out["input_ids"]]
        if segments:
            types += [np.asarray(x, dtype=np.int64) for x in out["token_type_ids"]]
    dtype = np.float32 if examples.targets and isinstance(examples.targets[0], float) else np.int64
    return Encoded(ids, types or None, np.asarray(examples.targets, dtype=dtype), int(tokenizer.pad_token_id or 0))


def update_digest(digest, encoded: Encoded) -> None:
    """Feed what ``encoded`` holds (token ids, type ids, targets) to a hashlib digest: token ids stand
    in for the data, the tokenizer and the truncation at once."""
    for ids in encoded.input_ids:
        digest.update(np.int64(len(ids)).tobytes())
        digest.update(ids.tobytes())
    if encoded.token_type_ids is not None:
        for types in encoded.token_type_ids:
            digest.update(types.tobytes())
    digest.update(encoded.targets.tobytes())


def pad_batch(encoded: Encoded, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Model inputs for ``indices``, right-padded to the longest among them. Shapes: (B, T) int64."""
    width = max(len(encoded.input_ids[i]) for i in indices)
    batch = np.full((len(indices), width), encoded.pad_id, dtype=np.int64)
    mask = np.zeros((len(indices), width), dtype=np.int64)
    types = np.zeros((len(indices), width), dtype=np.int64) if encoded.token_type_ids is not None else None
    for row, i in enumerate(indices):
        n = len(encoded.input_ids[i])
        batch[row, :n] = encoded.input_ids[i]
        mask[row, :n] = 1
        if types is not None:
            types[row, :n] = encoded.token_type_ids[i]
    out = {"input_ids": batch, "attention_mask": mask}
    if types is not None:
        out["token_type_ids"] = types
    return out


def eval_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Index batches sorted by length: least padding, and deterministic."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def train_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, group_by_length: bool = True, mega_batches: int = 50
) -> list[np.ndarray]:
    """A random epoch of index batches; with ``group_by_length``, batches are cut from length-sorted
    random mega-batches of ``mega_batches * batch_size`` examples, then shuffled."""
    order = rng.permutation(len(lengths))
    if not group_by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    span = batch_size * mega_batches
    batches = []
    for start in range(0, len(order), span):
        chunk = order[start : start + span]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
