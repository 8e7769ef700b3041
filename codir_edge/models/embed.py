"""Sentence embeddings of a PyTorch model folder: what ``evaluate --task embedding`` scores for a
folder, computed the way the folder's sentence-transformers head says (``models/sentence.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codir_edge.core.errors import InputError
from codir_edge.core.notes import note
from codir_edge.models.sentence import SentenceHead, read_sentence_head

_TASK_HEADS = ("ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice")


def folder_head(model_dir: Path, fallback: SentenceHead = SentenceHead("mean", True), option: str = "MODEL",
                flags: str = "") -> SentenceHead:  # fmt: skip
    """The folder's own sentence head (modules.json), or ``fallback`` for a bare encoder (said in a note).
    A fine-tuned task model is refused: its encoder was trained for its head, not for embeddings."""
    from codir_edge.models.checkpoint import read_model_config

    head = read_sentence_head(model_dir)
    if head is not None:
        return head
    architectures = read_model_config(model_dir, option).get("architectures") or []
    if any(a.endswith(_TASK_HEADS) for a in architectures):
        raise InputError(
            f"{option} {model_dir} is a {architectures[0]}, not an embedding model: give a sentence-transformers "
            f"folder (with modules.json) or a bare encoder{flags}"
        )
    note(f"{option} {model_dir} has no modules.json: its embedding is {fallback.describe()}{flags}")
    return fallback


def embed_folder(model_dir: Path, texts: list[str], max_length: int, batch_size: int, device: str = "auto"):
    """(N, d) float32 embeddings of ``texts`` and the seconds the model ran, batched by length."""
    import time

    import torch

    from codir_edge.data.encode import encode, eval_batches, pad_batch
    from codir_edge.data.examples import Examples
    from codir_edge.models.checkpoint import read_model_config
    from codir_edge.models.families import family_of, width
    from codir_edge.models.loading import load_backbone, load_tokenizer
    from codir_edge.models.predict import to_device
    from codir_edge.models.runtime import resolve_runtime
    from codir_edge.models.sentence import embed_output

    head = folder_head(model_dir)
    config = read_model_config(model_dir, option="MODEL")
    runtime = resolve_runtime(device, "auto")
    tokenizer = load_tokenizer(model_dir)
    encoded = encode(tokenizer, Examples(list(texts), None, [0] * len(texts), str(model_dir)), max_length,
                     family_of(config).takes_segments(config))  # fmt: skip
    model = load_backbone(model_dir, False).to(runtime.device).eval()
    out = np.zeros((len(texts), width(config)), dtype=np.float32)
    started = time.perf_counter()
    with torch.inference_mode():
        for rows in eval_batches(encoded.lengths, batch_size):
            batch = to_device(pad_batch(encoded, rows), runtime)
            hidden = model(**batch).last_hidden_state
            out[rows] = embed_output(hidden, batch["attention_mask"], head).cpu().numpy()
    return out, time.perf_counter() - started
