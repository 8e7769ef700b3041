"""``evaluate --task ner``: entity-level precision, recall and F1 (micro and per type, strict IOB2) and
token accuracy of a token classifier, a folder in PyTorch or a bundle's variants in onnxruntime."""

from __future__ import annotations

import os
from pathlib import Path

from codir_edge.bundle import layout
from codir_edge.bundle.manifest import MANIFEST, read_manifest
from codir_edge.core.errors import InputError
from codir_edge.data import DataSpec
from codir_edge.data.ner import NER_TASK, read_tagged
from codir_edge.models.checkpoint import check_max_length
from codir_edge.models.tagger import score_tagger_folder, tagger_folder_labels


def score_ner(model: Path, data: DataSpec, config, report_type) -> list:
    """One report for a model folder or ONNX file, one per token-id variant for a bundle."""
    bundle = model.is_dir() and (model / MANIFEST).is_file()
    onnx = bundle or model.suffix in (".onnx", ".ort")
    folder = layout.folder_of(model) if onnx and not bundle else model  # config.json and tokenizer beside it
    model_config, labels = tagger_folder_labels(folder, "MODEL", onnx)
    check_max_length(model_config, config.max_length, folder)
    split = read_tagged(data.data, config.split, labels).subsample(config.max_samples, config.seed)
    if onnx:
        return _score_onnx(model, bundle, folder, split, labels, config, report_type)
    batch = config.batch_size or 128
    metrics, seconds = score_tagger_folder(model, split, labels, model_config, config.max_length, batch, config.device)
    return [report_type(str(model), NER_TASK, config.split, metrics, len(split), seconds,
                        len(split) / seconds if seconds else 0.0, batch_size=batch)]  # fmt: skip


def _score_onnx(model: Path, bundle: bool, folder: Path, split, labels, config, report_type) -> list:
    from codir_edge.data.fast_tokenizer import find_tokenizer
    from codir_edge.data.ner_encode import encode_tagged
    from codir_edge.onnx.scoring import APP_BATCH
    from codir_edge.onnx.session import check_onnx_file
    from codir_edge.onnx.tokens import score_tagger_onnx

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
    tokens = encode_tagged(tokenizer, split, labels, config.max_length, True)  # only the graph's inputs are fed
    batch = config.batch_size or APP_BATCH
    reports = []
    for path, name in files:
        metrics, seconds = score_tagger_onnx(path, tokens, split, labels, os.cpu_count() or 1, batch)
        reports.append(report_type(str(path), NER_TASK, config.split, metrics, len(split), seconds,
                                   len(split) / seconds if seconds else 0.0, "onnxruntime", name, batch))  # fmt: skip
    return reports
