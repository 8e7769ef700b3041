"""``evaluate --task ner``: entity-level precision, recall and F1 (micro and per type, strict IOB2) and
token accuracy of a token classifier, a folder in PyTorch or a bundle's variants in onnxruntime."""

from __future__ import annotations

import os
import time
from pathlib import Path

from codir_edge.bundle import layout
from codir_edge.bundle.manifest import MANIFEST, read_manifest
from codir_edge.core.errors import InputError
from codir_edge.data import DataSpec
from codir_edge.data.ner import NER_TASK, read_tagged
from codir_edge.data.ner_encode import encode_tagged, score_token_logits


def tagger_folder_labels(folder: Path, option: str, onnx: bool = False) -> tuple[dict, list[str]]:
    """(config.json, label names in id order) of a token classifier's folder (``onnx``: a bundle's, which
    has no PyTorch weights); anything else refused."""
    from codir_edge.compress.tokens import tagger_labels
    from codir_edge.models.checkpoint import read_model_config, read_model_json

    config = read_model_json(folder) if onnx else read_model_config(folder, option)
    if onnx and not config:
        raise InputError(f"{option} {folder} has no readable config.json beside the model: evaluate the bundle "
                         "it came from")  # fmt: skip
    try:
        return config, tagger_labels(config, folder)
    except InputError:
        raise InputError(
            f"{option} {folder} is not a token classifier: evaluate --task ner scores one made by "
            "finetune or compress --task ner, or its bundle from export --task ner"
        ) from None


def score_ner(model: Path, data: DataSpec, config, report_type) -> list:
    """One report for a model folder or ONNX file, one per token-id variant for a bundle."""
    bundle = model.is_dir() and (model / MANIFEST).is_file()
    onnx = bundle or model.suffix in (".onnx", ".ort")
    folder = layout.folder_of(model) if onnx and not bundle else model  # config.json and tokenizer beside it
    model_config, labels = tagger_folder_labels(folder, "MODEL", onnx)
    from codir_edge.models.checkpoint import check_max_length
    from codir_edge.models.families import family_of

    check_max_length(model_config, config.max_length, folder)
    split = read_tagged(data.data, config.split, labels).subsample(config.max_samples, config.seed)
    if onnx:
        return _score_onnx(model, bundle, folder, split, labels, config, report_type)
    from codir_edge.core.extras import require_extra

    require_extra("train", "evaluating a model folder")
    from codir_edge.models.loading import load_tokenizer, load_trained_token_classifier
    from codir_edge.models.predict import predict_token_logits
    from codir_edge.models.runtime import resolve_runtime

    tokenizer = load_tokenizer(folder)
    segments = family_of(model_config).takes_segments(model_config)
    tokens = encode_tagged(tokenizer, split, labels, config.max_length, segments)
    runtime = resolve_runtime(config.device, "fp32")
    tagger = load_trained_token_classifier(folder).to(runtime.device)
    batch = config.batch_size or 128
    started = time.perf_counter()
    logits = predict_token_logits(tagger, tokens.encoded, runtime, batch)
    seconds = time.perf_counter() - started
    return [report_type(str(model), NER_TASK, config.split, score_token_logits(logits, tokens, split, labels),
                        len(split), seconds, len(split) / seconds if seconds else 0.0, batch_size=batch)]  # fmt: skip


def _score_onnx(model: Path, bundle: bool, folder: Path, split, labels, config, report_type) -> list:
    from codir_edge.data.fast_tokenizer import find_tokenizer
    from codir_edge.onnx.scoring import APP_BATCH
    from codir_edge.onnx.session import check_onnx_file
    from codir_edge.onnx.tokens import onnx_token_logits

    if bundle:
        manifest = read_manifest(model)
        files = [(manifest.path_of(v), v.name) for v in manifest.variants if v.takes == "token_ids"]
    else:
        files = [(model, None)]
    for path, _ in files:
        check_onnx_file(path)
    tokenizer = find_tokenizer(folder)
    if tokenizer is None:
        raise InputError(f"{folder} has no tokenizer.json: evaluate the bundle the model came from")
    segments = "token_type_ids" in getattr(tokenizer, "model_input_names", ["token_type_ids"])
    tokens = encode_tagged(tokenizer, split, labels, config.max_length, segments)
    batch = config.batch_size or APP_BATCH
    reports = []
    for path, name in files:
        started = time.perf_counter()
        logits = onnx_token_logits(path, tokens.encoded, os.cpu_count() or 1, batch)
        seconds = time.perf_counter() - started
        reports.append(report_type(str(path), NER_TASK, config.split, score_token_logits(logits, tokens, split, labels),
                                   len(split), seconds, len(split) / seconds if seconds else 0.0, "onnxruntime", name,
                                   batch))  # fmt: skip
    return reports
