"""``run_export``: a Hugging Face sequence classifier in, a verified ONNX bundle out.

Read top to bottom: check the cheap things (folder, architecture, options, output; ``plan.py``),
export the fp32 graph and hold it to PyTorch (hard failure), fuse and keep whichever graph is faster
here, quantize, score every variant on the task when there is data (hard failure beyond the allowed
drop), build the strings-in model, convert for mobile, then write tokenizer, config, labels and a
manifest with every file's hash (each step in ``steps.py``). All of it happens in a staging folder
that becomes ``--out`` only when complete.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from codir_edge.atomic import staged_output_dir
from codir_edge.data import DataSpec
from codir_edge.errors import InputError
from codir_edge.export import steps
from codir_edge.export.bundle import write_manifest
from codir_edge.export.config import QUANTIZE_MODES, ExportConfig
from codir_edge.export.plan import is_pair_model, plan_export
from codir_edge.extras import require_extra
from codir_edge.notes import note
from codir_edge.progress import stage_progress

__all__ = ["QUANTIZE_MODES", "ExportConfig", "ExportReport", "run_export"]


@dataclass(frozen=True)
class ExportReport:
    out_dir: Path
    variants: list[dict]
    parity: dict
    fused_operators: dict[str, int]
    graph_choice: dict
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
    from codir_edge.export.strings_rules import unsupported_reason
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
    planned = 3 + (plan.dev is not None) + with_strings + bool(config.ort) + 1
    with (
        _quiet_root_logger(),
        staged_output_dir(out_dir, overwrite) as stage,
        stage_progress(show_progress) as bars,
    ):
        bar = bars.add("export", planned, "steps")
        work = stage / ".work"
        work.mkdir()
        with bars.step(bar, "fp32 graph and parity"):
            fp32 = steps.fp32_with_parity(model, tokenizer, plan, work)
        with bars.step(bar, "fused and INT8 candidates"):
            candidates, int8, fused_counts = steps.graph_candidates(fp32, plan, tokenizer, work)
        with bars.step(bar, "timing candidates"):
            variants, graph_choice = steps.choose_graphs(candidates, int8, plan, fp32, stage)
        if plan.dev is not None:
            with bars.step(bar, "scoring variants"):
                steps.score_variants(variants, stage, fp32, plan)
        shipped = "model.int8.onnx" if int8 else "model.onnx"
        if with_strings:
            regression = model.config.num_labels == 1
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
        report = ExportReport(out_dir, variants, parity, fused_counts, graph_choice, plan.target,
                              time.perf_counter() - started)  # fmt: skip
        write_manifest(
            stage,
            variants=variants,
            model_dir=model_dir,
            spec=plan.spec,
            config=config.to_dict() | {"target_resolved": plan.target},
            parity=parity,
            fused_operators=fused_counts,
            graph_choice=graph_choice,
            command=command,
            plain_counts=operator_counts(stage / "model.onnx"),
        )
        bars.advance(bar, stats="manifest written")
    return report
