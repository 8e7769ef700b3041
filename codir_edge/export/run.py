"""``run_export``: a Hugging Face sequence classifier in, a verified ONNX bundle out.

Read top to bottom: check the cheap things (folder, architecture, options, output; ``plan.py``),
export the fp32 graph and hold it to PyTorch (hard failure), make the fused and INT8 candidates and
set aside the INT8 ones that lose too much accuracy (``candidates.py``), time the rest at every
deployment setting and ship each thread count's winner (``ship.py``), add the fixed-shape variant
for phone accelerators, score every variant on the task when there is data (hard failure beyond the
allowed drop), build the strings-in model, convert for mobile, then write tokenizer, config, labels
and a manifest with every file's hash. All of it happens in a staging folder
that becomes ``--out`` only when complete.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.atomic import staged_output_dir
from codir_edge.core.errors import InputError
from codir_edge.core.extras import require_extra
from codir_edge.core.notes import note
from codir_edge.core.progress import stage_progress
from codir_edge.data import DataSpec
from codir_edge.export import candidates, fixed, ship, steps
from codir_edge.export import quantize as q
from codir_edge.export.bundle import write_manifest
from codir_edge.export.config import QUANTIZE_MODES, ExportConfig
from codir_edge.export.plan import is_pair_model, plan_export

__all__ = ["QUANTIZE_MODES", "ExportConfig", "ExportReport", "run_export"]


@dataclass(frozen=True)
class ExportReport:
    out_dir: Path
    variants: list[dict]
    parity: dict
    fused_operators: dict[str, int]
    deployment: dict  # thread count -> the variant to load for fp32 and INT8
    tuning: dict  # every candidate's medians per setting, and how each thread count chose
    target: str
    wall_time_s: float


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime's quantizer logs a 'consider pre-processing' hint on the root logger; hide it
    for the export only, and give the caller its logging back."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def run_export(
    model_dir: Path,
    out_dir: Path,
    config: ExportConfig,
    data: DataSpec | None = None,
    overwrite: bool = False,
    command: str | None = None,
    show_progress: bool = True,
) -> ExportReport:
    require_extra("train", "export")
    from codir_edge.export.convert import load_for_export
    from codir_edge.export.graph import operator_counts
    from codir_edge.export.strings.rules import unsupported_reason
    from codir_edge.models.loading import load_tokenizer

    started = time.perf_counter()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    plan = plan_export(model_dir, out_dir, config, data, overwrite)
    tokenizer = load_tokenizer(model_dir, config.trust_remote_code)
    cannot_embed = unsupported_reason(tokenizer)
    if config.tokenizer_in_graph and cannot_embed:
        raise InputError(cannot_embed)
    with_strings = config.tokenizer_in_graph is not False and cannot_embed is None
    if config.tokenizer_in_graph is None and cannot_embed:  # by default: skipped, and said why
        note(f"no model.strings.onnx: {cannot_embed.split(': pass --no-tokenizer-in-graph')[0]}")
    model = load_for_export(model_dir, config.trust_remote_code)
    with (
        _quiet_root_logger(),
        staged_output_dir(out_dir, overwrite) as stage,
        stage_progress(show_progress) as bars,
    ):
        bar = bars.add("export", _planned_steps(plan, with_strings), "steps")
        work = stage / ".work"
        work.mkdir()
        with bars.step(bar, "fp32 graph and parity"):
            dev_by_length = steps.encode_dev(tokenizer, plan)
            fp32 = steps.fp32_with_parity(model, tokenizer, plan, dev_by_length, work)
        encoded = dev_by_length[config.max_length] if dev_by_length is not None else None
        calibration = steps.calibration_encoded(tokenizer, plan)
        with bars.step(bar, "graph and INT8 candidates"):
            graphs, fused_counts = candidates.fp32_candidates(fp32.path, plan, work)
            feeds = steps.calibration_feeds(calibration, plan.spec.inputs)
            int8 = candidates.int8_candidates(graphs, plan, feeds, work)
        reference = candidates.task_metrics(fp32.path, encoded, plan) if encoded is not None else None
        if reference is not None and int8:
            with bars.step(bar, "scoring INT8 candidates"):
                metric = plan.task.primary_metric
                int8_kept = candidates.keep_accurate(int8, plan, encoded, reference[metric], feeds, work)
        else:
            int8_kept = candidates.Int8Candidates(int8)
        with bars.step(bar, "timing candidates"):
            variants, deployment, tuning = ship.tune_and_ship(graphs, int8_kept.files, plan, encoded, stage)
        _attach_accuracy(variants, int8_kept, reference)
        if config.fp16 or plan.target == "cuda":
            q.fp16(fp32.path, stage / "model.fp16.onnx")
            variants.append({"name": "fp16", "file": "model.fp16.onnx", "graph": "plain"})
        shape = fixed.resolve(config.fixed_shape, config.ort, encoded.lengths if encoded is not None else None,
                              config.max_length)  # fmt: skip
        if shape is not None:
            with bars.step(bar, f"fixed-shape {shape[0]}x{shape[1]} QDQ variant"):
                variants += steps.fixed_variants(stage, work, fp32.path, shape, calibration, plan, encoded)
        if encoded is not None:
            with bars.step(bar, "scoring variants"):
                steps.score_variants(variants, stage, encoded, plan)
        shipped = "model.int8.onnx" if int8_kept.files else "model.onnx"
        if with_strings:
            regression = plan.spec.num_labels == 1
            pair = is_pair_model(plan)
            with bars.step(bar, "tokenizer in the graph"):
                variants.append(
                    steps.strings_variant(stage, work, shipped, tokenizer, config, pair, regression, plan.dev)
                )
        if config.ort:
            with bars.step(bar, "mobile .ort"):
                variants.append(steps.mobile_variant(stage, shipped, plan.target))
        shutil.rmtree(work)
        steps.write_model_files(stage, tokenizer, model)
        parity = fp32.parity.to_dict()
        tuning["rejected_int8"] = int8_kept.rejected
        report = ExportReport(out_dir, variants, parity, fused_counts, deployment, tuning, plan.target,
                              time.perf_counter() - started)  # fmt: skip
        write_manifest(
            stage,
            variants=variants,
            model_dir=model_dir,
            spec=plan.spec,
            config=config.to_dict() | {"target_resolved": plan.target},
            parity=parity,
            fused_operators=fused_counts,
            deployment=deployment,
            tuning=tuning,
            command=command,
            plain_counts=operator_counts(stage / "model.onnx"),
        )
        bars.advance(bar, stats="manifest written")
    return report


def _planned_steps(plan, with_strings: bool) -> int:
    """How many steps the bar shows: the ones ``run_export`` will run for this plan."""
    config = plan.config
    scored = plan.dev is not None
    int8 = config.quantize != "none"
    fixed_wanted = config.fixed_shape != "off" and (config.ort or config.fixed_shape != "auto")
    return 3 + (scored and int8) + fixed_wanted + scored + with_strings + bool(config.ort) + 1


def _attach_accuracy(variants: list[dict], int8: candidates.Int8Candidates, reference: dict | None) -> None:
    """What the INT8 candidates scored before timing, and the plain fp32 reference, onto the shipped
    variants; the accuracy-aware search's record onto the graph it made."""
    for variant in variants:
        candidate = variant.get("candidate")
        if variant["name"].startswith("int8") and candidate in int8.accuracy:
            variant["accuracy"] = int8.accuracy[candidate]
        elif variant["name"].startswith("fp32") and candidate == "plain" and reference is not None:
            variant["accuracy"] = reference
        if int8.search is not None and candidate == int8.search["candidate"]:
            variant["keep_float"] = int8.search["kept_in_float"]
            variant["accuracy_search"] = {k: v for k, v in int8.search.items() if k != "kept_in_float"}
