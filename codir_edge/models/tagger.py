"""Token classifiers (``--task ner``): their label lists read from config.json, and a folder scored in
PyTorch by entity F1, for every stage that meets one (compress, evaluate, export, profile)."""

from __future__ import annotations

import time
from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.data.ner import TaggedSplit


def tagger_labels(config: dict, folder: Path, option: str = "--teacher") -> list[str]:
    """A token classifier's label names in id order; anything else is refused with the fix."""
    if not any(a.endswith("ForTokenClassification") for a in config.get("architectures") or []):
        architectures = ", ".join(config.get("architectures") or []) or "no architecture"
        raise InputError(f"{option} {folder} is not a token classifier ({architectures}): fine-tune one first with "
                         "codir-edge finetune --task ner, or export its bundle with export --task ner")  # fmt: skip
    id2label = config.get("id2label") or {}
    return [id2label.get(str(i), id2label.get(i, "")) for i in range(len(id2label))]


def tagger_folder_labels(folder: Path, option: str, onnx: bool = False) -> tuple[dict, list[str]]:
    """(config.json, label names in id order) of a token classifier's folder (``onnx``: a bundle's or an
    ONNX file's folder, which holds no PyTorch weights); anything else refused."""
    from codir_edge.models.checkpoint import read_model_config, read_model_json

    config = read_model_json(folder) if onnx else read_model_config(folder, option)
    if onnx and not config:
        raise InputError(f"{option} {folder} has no readable config.json beside the model: evaluate the bundle "
                         "it came from")  # fmt: skip
    return config, tagger_labels(config, folder, option)


def score_tagger(model, tokens, split: TaggedSplit, labels: list[str], runtime, batch_size: int) -> dict[str, float]:
    """Entity scores of a loaded token classifier (PyTorch) on ``split``, tokenized as ``tokens``: how
    finetune and compress score dev each epoch and evaluate scores a folder."""
    from codir_edge.data.ner_encode import score_token_logits
    from codir_edge.models.predict import predict_token_logits

    logits = predict_token_logits(model, tokens.encoded, runtime, batch_size)
    return score_token_logits(logits, tokens, split, labels)


def score_tagger_folder(folder: Path, split: TaggedSplit, labels: list[str], config: dict, max_length: int,
                        batch_size: int, device: str) -> tuple[dict[str, float], float]:  # fmt: skip
    """(entity scores, seconds) of a token classifier folder in PyTorch on ``split``."""
    from codir_edge.core.extras import require_extra

    require_extra("train", "scoring a model folder")
    from codir_edge.data.ner_encode import encode_tagged
    from codir_edge.models.families import family_of
    from codir_edge.models.loading import load_tokenizer, load_trained_token_classifier
    from codir_edge.models.runtime import resolve_runtime

    segments = family_of(config).takes_segments(config)
    tokens = encode_tagged(load_tokenizer(folder), split, labels, max_length, segments)
    runtime = resolve_runtime(device, "fp32")
    tagger = load_trained_token_classifier(folder).to(runtime.device)
    started = time.perf_counter()
    scores = score_tagger(tagger, tokens, split, labels, runtime, batch_size)
    return scores, time.perf_counter() - started
