"""``evaluate``: the task metric of what the user trained or ships, on a split.

A model folder is scored in PyTorch (``models/scoring.py``); a bundle's variants and a bare ONNX
file are scored in onnxruntime (``onnx/scoring.py``), the runtime they ship with, so "how accurate is
the INT8 model" has an answer without profiling it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from codir_edge.bundle import layout
from codir_edge.bundle.manifest import MANIFEST, exported_max_length, read_manifest
from codir_edge.core.errors import InputError
from codir_edge.data import DataSpec, get_task, load_split
from codir_edge.data.embedding import is_embedding
from codir_edge.data.ner import is_ner
from codir_edge.evaluate.config import EvaluateConfig
from codir_edge.models.scoring import score_model_folder

ONNX_SUFFIXES = (".onnx", ".ort")
TORCH_BATCH = 128  # a PyTorch folder's default batch: fp32, where batch mates do not change predictions


@dataclass(frozen=True)
class EvalReport:
    model: str
    task: str
    split: str
    metrics: dict[str, float]
    examples: int
    wall_time_s: float
    examples_per_s: float
    runtime: str = "pytorch"  # or "onnxruntime"
    variant: str | None = None  # the bundle variant's name, for a bundle
    batch_size: int | None = None  # examples per inference call: what the metric was measured at
    data_kind: str | None = None  # --task embedding: sts or classification (by embeddings)
    max_length: int | None = None  # tokens per input at most: what the metric was measured at

    def to_dict(self) -> dict:
        return asdict(self)


def run_evaluate(model: Path, data: DataSpec, config: EvaluateConfig) -> list[EvalReport]:
    """One report for a model folder or an ONNX file, one per variant for a bundle (in manifest
    order; the tokenizer-in-graph variant is scored through the token-id graph it wraps), each saying
    the length it truncated at."""
    model = Path(model)
    config = replace(config, max_length=length_for(model, config.max_length))
    return [replace(report, max_length=config.max_length) for report in _evaluate(model, data, config)]


def length_for(model: Path, given: int | None) -> int:
    """``--max-length`` when given, else the length a bundle was exported at (the manifest's; its tokenizer
    tells apps to truncate there, so the score is the app's), else training's default."""
    from codir_edge.training.config import TrainingConfig

    if given is not None:
        return given
    return exported_max_length(model if model.is_dir() else layout.folder_of(model)) or TrainingConfig.max_length


def _evaluate(model: Path, data: DataSpec, config: EvaluateConfig) -> list[EvalReport]:
    from codir_edge.onnx.scoring import APP_BATCH
    from codir_edge.onnx.session import check_onnx_file

    task_name, split, max_length = config.task, config.split, config.max_length
    batch_size = config.batch_size or APP_BATCH  # ONNX; a PyTorch folder's default is below
    max_samples, device, seed = config.max_samples, config.device, config.seed
    if is_embedding(task_name):
        return _score_embedding(model, data, config)
    if is_ner(task_name):
        from codir_edge.evaluate.ner import score_ner

        return score_ner(model, data, config, EvalReport)
    if model.is_dir() and (model / MANIFEST).is_file():
        manifest = read_manifest(model)
        scored = [v for v in manifest.variants if v.takes == "token_ids"]
        if not scored:
            raise InputError(f"{model} lists no token-id model to score: re-export the bundle")
        for variant in scored:  # every file loads before any is scored
            check_onnx_file(manifest.path_of(variant))
        inputs = _onnx_inputs(manifest.path_of(scored[0]), task_name, data, split, max_length, batch_size,
                              max_samples, seed)  # fmt: skip
        return [_score_onnx(manifest.path_of(v), inputs, split, batch_size, v.name) for v in scored]
    if model.is_file() or model.suffix in ONNX_SUFFIXES:
        if model.suffix not in ONNX_SUFFIXES:
            raise InputError(f"MODEL {model} is not an .onnx or .ort file: pass one, a bundle or a model folder")
        check_onnx_file(model)
        inputs = _onnx_inputs(model, task_name, data, split, max_length, batch_size, max_samples, seed)
        return [_score_onnx(model, inputs, split, batch_size)]
    batch_size = config.batch_size or TORCH_BATCH
    scored = score_model_folder(model, task_name, data, split, max_length, batch_size, max_samples, device, seed)
    rate = scored.examples / scored.seconds if scored.seconds else 0.0
    return [EvalReport(str(model), scored.task, split, scored.metrics, scored.examples, scored.seconds, rate,
                       batch_size=batch_size)]  # fmt: skip


def _score_embedding(model: Path, data: DataSpec, config: EvaluateConfig) -> list[EvalReport]:
    """``--task embedding``: STS or classification-by-embedding metrics of a model folder's embeddings
    (PyTorch), or of each variant of an embedding bundle (onnxruntime, its sentence_embedding output)."""
    from codir_edge.data.embedding import read_embedding_data

    if model.is_dir() and (model / MANIFEST).is_file():
        return _score_embedding_bundle(model, data, config)
    if not model.is_dir():
        raise InputError(f"MODEL {model}: --task embedding scores a model folder (a sentence-transformers folder, "
                         "or compress --task embedding's output) or a bundle from export --task embedding")  # fmt: skip
    from codir_edge.core.extras import require_extra
    from codir_edge.models.checkpoint import check_max_length, read_model_config

    check_max_length(read_model_config(model, option="MODEL"), config.max_length, model)
    require_extra("train", "evaluating an embedding model folder")
    from codir_edge.models.embed import embed_folder

    wanted = read_embedding_data(data, config.split, config.max_samples, config.seed)
    batch_size = config.batch_size or TORCH_BATCH
    embeddings, seconds = embed_folder(model, wanted.texts, config.max_length, batch_size, config.device)
    rate = len(wanted.texts) / seconds if seconds else 0.0
    return [EvalReport(str(model), "embedding", config.split, wanted.score(embeddings), wanted.examples, seconds,
                       rate, batch_size=batch_size, data_kind=wanted.kind)]  # fmt: skip


def _score_embedding_bundle(bundle: Path, data: DataSpec, config: EvaluateConfig) -> list[EvalReport]:
    import time

    from codir_edge.data.embedding import read_embedding_data
    from codir_edge.data.encode import encode
    from codir_edge.data.examples import Examples
    from codir_edge.data.fast_tokenizer import find_tokenizer
    from codir_edge.onnx.embed import onnx_embeddings
    from codir_edge.onnx.scoring import APP_BATCH
    from codir_edge.onnx.session import check_onnx_file

    manifest = read_manifest(bundle)
    if "embedding" not in manifest.raw:
        raise InputError(f"{bundle} is not an embedding bundle: export the model with --task embedding")
    scored = [v for v in manifest.variants if v.takes == "token_ids" and v.file.endswith(".onnx")]
    for variant in scored:
        check_onnx_file(manifest.path_of(variant))
    wanted = read_embedding_data(data, config.split, config.max_samples, config.seed)
    texts = Examples(wanted.texts, None, [0] * len(wanted.texts), str(bundle))
    encoded = encode(find_tokenizer(bundle), texts, config.max_length)
    batch_size = config.batch_size or APP_BATCH
    reports = []
    for variant in scored:
        started = time.perf_counter()
        embeddings = onnx_embeddings(manifest.path_of(variant), encoded, os.cpu_count() or 1, batch_size)
        seconds = time.perf_counter() - started
        reports.append(EvalReport(str(manifest.path_of(variant)), "embedding", config.split, wanted.score(embeddings),
                                  wanted.examples, seconds, len(texts.texts) / seconds if seconds else 0.0,
                                  "onnxruntime", variant.name, batch_size, wanted.kind))  # fmt: skip
    return reports


def _onnx_inputs(path: Path, task_name: str, data: DataSpec, split: str, max_length: int, batch_size: int,
                 max_samples: int | None, seed: int) -> tuple:  # fmt: skip
    """(task, examples, encoded) for the ONNX model at ``path`` and every model beside it, which
    share the folder's config.json and tokenizer.json: read and tokenized once however many
    variants of a bundle are scored."""
    from codir_edge.data.encode import encode
    from codir_edge.data.fast_tokenizer import find_tokenizer
    from codir_edge.models.checkpoint import check_max_length, read_model_json
    from codir_edge.onnx.scoring import model_label_order

    if batch_size < 1:
        raise InputError(f"--batch-size must be positive, got {batch_size}: pass a value above 0")
    folder = layout.folder_of(path)
    config = read_model_json(folder)
    if isinstance(config.get("max_position_embeddings"), int):  # else onnxruntime fails mid-run
        check_max_length(config, max_length, folder)
    tokenizer = find_tokenizer(folder)
    if tokenizer is None:
        raise InputError(
            f"{path} has no tokenizer.json beside it: evaluate the bundle it came from, or copy the "
            "model's tokenizer.json into its folder"
        )
    task = get_task(task_name)
    examples = load_split(task, data, split, model_label_order(folder, task)).subsample(max_samples, seed)
    return task, examples, encode(tokenizer, examples, max_length)


def _score_onnx(path: Path, inputs: tuple, split: str, batch_size: int, variant: str | None = None) -> EvalReport:
    from codir_edge.onnx.scoring import score_onnx

    task, examples, encoded = inputs
    scored = score_onnx(path, task, examples, encoded, os.cpu_count() or 1, batch_size)
    rate = scored.examples / scored.seconds if scored.seconds else 0.0
    return EvalReport(str(path), task.name, split, scored.metrics, scored.examples, scored.seconds, rate,
                      "onnxruntime", variant, batch_size)  # fmt: skip
