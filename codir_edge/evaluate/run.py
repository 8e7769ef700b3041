"""``evaluate``: the task metric of what the user trained or ships, on a split.

A model folder is scored in PyTorch (``models/scoring.py``); a bundle's variants and a bare ONNX
file are scored in onnxruntime (``onnx_scoring.py``), the runtime they ship with, so "how accurate is
the INT8 model" has an answer without profiling it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from codir_edge.bundle.manifest import MANIFEST, read_manifest
from codir_edge.data import DataSpec, get_task, load_split
from codir_edge.errors import InputError
from codir_edge.models.scoring import score_model_folder

ONNX_SUFFIXES = (".onnx", ".ort")


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

    def to_dict(self) -> dict:
        return asdict(self)


def run_evaluate(
    model: Path,
    task_name: str,
    data: DataSpec,
    split: str = "dev",
    max_length: int = 128,
    batch_size: int = 128,
    max_samples: int | None = None,
    device: str = "auto",
    seed: int = 42,
) -> list[EvalReport]:
    """One report for a model folder or an ONNX file, one per variant for a bundle (in manifest
    order; the tokenizer-in-graph variant is scored through the token-id graph it wraps)."""
    model = Path(model)
    if model.is_dir() and (model / MANIFEST).is_file():
        manifest = read_manifest(model)
        scored = [v for v in manifest.variants if v.takes == "token_ids"]
        args = (task_name, data, split, max_length, batch_size, max_samples, seed)
        return [_score_onnx(manifest.path_of(v), *args, variant=v.name) for v in scored]
    if model.is_file() or model.suffix in ONNX_SUFFIXES:
        if model.suffix not in ONNX_SUFFIXES:
            raise InputError(f"MODEL {model} is not an .onnx or .ort file: pass one, a bundle or a model folder")
        return [_score_onnx(model, task_name, data, split, max_length, batch_size, max_samples, seed)]
    scored = score_model_folder(model, task_name, data, split, max_length, batch_size, max_samples, device, seed)
    rate = scored.examples / scored.seconds if scored.seconds else 0.0
    return [EvalReport(str(model), scored.task, split, scored.metrics, scored.examples, scored.seconds, rate)]


def _score_onnx(path: Path, task_name: str, data: DataSpec, split: str, max_length: int, batch_size: int,
                max_samples: int | None, seed: int, variant: str | None = None) -> EvalReport:  # fmt: skip
    from codir_edge.data.fast_tokenizer import find_tokenizer
    from codir_edge.models.checkpoint import check_max_length, read_model_json
    from codir_edge.onnx_scoring import model_label_order, score_onnx
    from codir_edge.onnx_session import check_onnx_file

    if batch_size < 1:
        raise InputError(f"--batch-size must be positive, got {batch_size}: pass a value above 0")
    check_onnx_file(path)
    config = read_model_json(path.parent)
    if isinstance(config.get("max_position_embeddings"), int):  # else onnxruntime fails mid-run
        check_max_length(config, max_length, path.parent)
    tokenizer = find_tokenizer(path.parent)
    if tokenizer is None:
        raise InputError(
            f"{path} has no tokenizer.json beside it: evaluate the bundle it came from, or copy the "
            "model's tokenizer.json into its folder"
        )
    task = get_task(task_name)
    examples = load_split(task, data, split, model_label_order(path.parent, task)).subsample(max_samples, seed)
    scored = score_onnx(path, tokenizer, task, examples, max_length, os.cpu_count() or 1, batch_size)
    rate = scored.examples / scored.seconds if scored.seconds else 0.0
    return EvalReport(str(path), task.name, split, scored.metrics, scored.examples, scored.seconds, rate,
                      "onnxruntime", variant)  # fmt: skip
