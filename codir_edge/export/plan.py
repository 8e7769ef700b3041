"""Everything ``export`` checks before it loads a model: what to export, for which target, on what data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.atomic import check_output_dir
from codir_edge.core.errors import InputError, first_line
from codir_edge.data import DataSpec, Examples, get_task, load_split
from codir_edge.data.tasks import TaskSpec
from codir_edge.export import quantize as q
from codir_edge.export.config import ExportConfig
from codir_edge.export.spec import DEFAULT_OPSET, ExportSpec, read_spec
from codir_edge.models.checkpoint import check_max_length, is_sequence_classifier, read_model_config
from codir_edge.models.labels import model_labels


@dataclass(frozen=True)
class ExportPlan:
    model_dir: Path
    spec: ExportSpec  # the model's facts, read once
    config: ExportConfig
    target: str  # resolved: native becomes this machine's instruction set
    task: TaskSpec | None
    data: DataSpec | None
    dev: Examples | None  # scored on, and the parity check's sentences
    calibration: Examples | None  # training sentences for static INT8 (QDQ candidates, the fixed-shape variant)


def plan_export(model_dir: Path, out_dir: Path, config: ExportConfig, data: DataSpec | None,
                overwrite: bool) -> ExportPlan:  # fmt: skip
    model_config = read_model_config(model_dir, "MODEL_DIR")
    spec = read_spec(model_config, model_dir)
    if not is_sequence_classifier(model_config):
        raise InputError(f"{model_dir} is not a sequence classifier: fine-tune or compress it first")
    check_max_length(model_config, config.max_length, model_dir)
    check_opset(config.opset, spec)
    if config.quantize == "static" and data is None:
        raise InputError("--quantize static calibrates on task sentences: pass --task and --data, or use dynamic")
    if data is not None and config.task is None:
        raise InputError("--data needs --task to know its columns and metric: pass --task")
    check_output_dir(out_dir, overwrite)
    target = q.resolve_target(config.target)
    task = get_task(config.task) if config.task else None
    labels = model_labels(model_config, task, model_dir) if task else None
    dev = load_split(task, data, "dev", labels).subsample(config.max_eval_samples, 0) if data else None
    calibration = None
    if data:
        try:
            calibration = load_split(task, data, "train", labels).subsample(config.calibration_samples, 0)
        except InputError:
            if config.quantize == "static":  # only static INT8 cannot do without; others calibrate on generated text
                raise
    return ExportPlan(model_dir, spec, config, target, task, data, dev, calibration)


def check_opset(opset: int, spec: ExportSpec) -> None:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not spec.lowest_opset <= opset <= newest:
        raise InputError(
            f"--opset {opset} is outside what a {spec.model_type} model exports to here: "
            f"use {spec.lowest_opset} to {newest}"
        )


def session_or_error(path: Path, opset: int):
    """A session on the exported graph, or one line saying this onnxruntime cannot run that opset."""
    from codir_edge.onnx.session import create_session

    try:
        return create_session(path, 1)
    except Exception as exc:  # onnxruntime raises its own (pybind) types
        import onnxruntime

        raise InputError(
            f"onnxruntime {onnxruntime.__version__} cannot run opset {opset} ({first_line(exc)}): "
            f"use --opset {DEFAULT_OPSET}"
        ) from exc


def is_pair_model(plan: ExportPlan) -> bool:
    """Whether the strings model takes a text pair: from --task/--data, else from the task the model was
    trained on (finetune and compress record it in metrics.json)."""
    if plan.task is not None:
        return plan.task.is_pair or bool(plan.data and plan.data.text_pair_column)
    try:
        trained_on = json.loads((plan.model_dir / "metrics.json").read_text(encoding="utf-8")).get("task")
        return bool(trained_on) and get_task(trained_on).is_pair
    except (OSError, ValueError, AttributeError, InputError):
        return False
