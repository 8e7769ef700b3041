"""``run_export``: a Hugging Face sequence classifier in, a verified ONNX bundle out.

Read top to bottom: check the cheap things (folder, architecture, options, output; ``plan.py``),
export the fp32 graph and hold it to PyTorch (hard failure), make the fused and INT8 candidates and
time them at every deployment setting and ship each thread count's winner, scoring INT8 picks on
dev as they are made and passing over those that lose too much (``ship.py``, ``candidates.py``),
add the fixed-shape variant for phone accelerators, score every variant on the task when there is
data (hard failure beyond the allowed drop), build the strings-in model, convert for mobile, then
write tokenizer, config, labels and a manifest with every file's hash. All of it happens in a
staging folder that becomes ``--out`` only when complete.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from codir_edge.bundle import layout
from codir_edge.core.atomic import staged_output_dir
from codir_edge.core.errors import CheckFailedError, avoidable
from codir_edge.core.extras import require_extra
from codir_edge.core.progress import Bars, stage_progress
from codir_edge.data import DataSpec
from codir_edge.data.embedding import is_embedding
from codir_edge.data.encode import Encoded
from codir_edge.data.ner import is_ner
from codir_edge.export import candidates, fixed, ship, steps
from codir_edge.export import quantize as q
from codir_edge.export.bundle import write_manifest
from codir_edge.export.config import QUANTIZE_MODES, ExportConfig
from codir_edge.export.fixed_variants import Calibration, fixed_variants
from codir_edge.export.plan import ExportPlan, is_pair_model, plan_export
from codir_edge.export.strings.rules import strings_graph_wanted, unsupported_reason

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
    """onnxruntime's quantizer logs a 'consider pre-processing' hint on the root logger, and the
    sessions its quantizer and graph optimizer open themselves log at onnxruntime's default level
    (dozens of 'Removing initializer ... not used' warnings per export of a real model, which say
    nothing to a user); hide both for the export only, and give the caller its logging back
    (onnxruntime has no getter: its default, Warning, is restored)."""
    import onnxruntime

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    onnxruntime.set_default_logger_severity(3)
    try:
        yield
    finally:
        root.setLevel(level)
        onnxruntime.set_default_logger_severity(2)


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
    from codir_edge.models.loading import load_tokenizer

    started = time.perf_counter()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if is_embedding(config.task):
        from codir_edge.export.embedding import export_embedding

        with _quiet_root_logger():
            return export_embedding(model_dir, out_dir, config, data, overwrite, command)
    if is_ner(config.task):
        from codir_edge.export.tokens import export_tokens

        with _quiet_root_logger():
            return export_tokens(model_dir, out_dir, config, data, overwrite, command)
    plan = plan_export(model_dir, out_dir, config, data, overwrite)
    tokenizer = load_tokenizer(model_dir, config.trust_remote_code)
    with_strings = strings_graph_wanted(config.tokenizer_in_graph, unsupported_reason(tokenizer))
    model = load_for_export(model_dir, config.trust_remote_code)
    with (
        _quiet_root_logger(),
        staged_output_dir(out_dir, overwrite) as stage,
        stage_progress(show_progress) as bars,
    ):
        progress = _Progress(bars, bars.add("export", _planned_steps(plan, with_strings), "steps"))
        work = stage / ".work"
        work.mkdir()
        (stage / layout.GRAPH_DIR).mkdir()
        built = _candidates(model, tokenizer, plan, work, progress)
        with progress.step("timing candidates, scoring the INT8 picks", "pass --no-optimize --quantize none"):
            variants, deployment, tuning = ship.tune_and_ship(built.graphs, built.judge, plan, built.encoded, stage)
        _attach_accuracy(variants, built.judge.result, built.reference)
        left_out = _add_checked_variants(variants, stage, work, built, plan, progress)
        shipped = layout.INT8 if built.judge.result.files else layout.FP32
        if with_strings:
            with progress.step("tokenizer in the graph", "pass --no-tokenizer-in-graph"):
                pair, regression = is_pair_model(plan), plan.spec.num_labels == 1
                strings = steps.strings_variant(stage, work, shipped, tokenizer, config, pair, regression, plan.dev)
            variants.append(strings)
        if config.ort:
            with progress.step("mobile .ort", "pass --no-ort"):
                variants.append(steps.mobile_variant(stage, shipped, plan.target))
        deployed = {name for picks in deployment["threads"].values() for name in picks.values()}
        variants, too_new = steps.claim_runtimes(variants, stage, config, deployed)
        shutil.rmtree(work)
        steps.write_model_files(stage, tokenizer, model, config.max_length)
        parity = built.fp32.parity.to_dict()
        tuning["rejected_int8"] = built.judge.result.rejected
        tuning["unusable"] = built.judge.result.broken
        report = ExportReport(out_dir, variants, parity, built.fused_counts, deployment, tuning, plan.target,
                              time.perf_counter() - started)  # fmt: skip
        write_manifest(
            stage, variants=variants, model_dir=model_dir, spec=plan.spec,
            config=config.to_dict() | {"target_resolved": plan.target}, parity=parity,
            fused_operators=built.fused_counts, deployment=deployment, tuning=tuning, command=command,
            plain_counts=operator_counts(stage / layout.FP32), left_out=left_out + too_new,
        )  # fmt: skip
        progress.bars.advance(progress.bar, stats="manifest written")
    return report


@dataclass(frozen=True)
class _Progress:
    """The export's one progress bar, advanced a step at a time."""

    bars: Bars
    bar: int

    @contextlib.contextmanager
    def step(self, label: str, fix: str | None = None) -> Iterator[None]:
        """One step of the bar; with ``fix``, a failure in it names the option that avoids it."""
        with self.bars.step(self.bar, label), avoidable(label, fix) if fix else contextlib.nullcontext():
            yield


@dataclass(frozen=True)
class _Built:
    """What the first steps make: the checked fp32 graph and the candidates timing chooses among."""

    fp32: steps.Fp32Graph
    encoded: Encoded | None  # the dev split at --max-length (None without data)
    calibration: Encoded  # training sentences, or generated ones without data
    graphs: dict[str, Path]  # fp32 candidates
    fused_counts: dict[str, int]
    judge: candidates.Int8Judge  # the runnable INT8 candidates, scored as timing picks them
    reference: dict | None  # the plain fp32 graph's dev metrics


def _candidates(model, tokenizer, plan: ExportPlan, work: Path, progress: _Progress) -> _Built:
    """The fp32 graph held to PyTorch, its fused forms, and the INT8 candidates accurate enough to time."""
    with progress.step("fp32 graph and parity", "try another --opset"):
        dev_by_length = steps.encode_dev(tokenizer, plan)
        fp32 = steps.fp32_with_parity(model, tokenizer, plan, dev_by_length, work)
    encoded = dev_by_length[plan.config.max_length] if dev_by_length is not None else None
    calibration = steps.calibration_encoded(tokenizer, plan)
    with progress.step("graph and INT8 candidates", "pass --no-optimize, or --quantize none"):
        graphs, fused_counts = candidates.fp32_candidates(fp32.path, plan, work)
        feeds = steps.calibration_feeds(calibration, plan.spec.inputs)
        fused, broken = candidates.runnable({k: v for k, v in graphs.items() if k != "plain"}, feeds)
        fused, too_new = candidates.within_runtime(fused, plan.config)
        graphs = {"plain": graphs["plain"], **fused}  # the plain graph passed parity: it runs
        int8, broken_int8 = candidates.runnable(candidates.int8_candidates(graphs, plan, feeds, work), feeds)
        int8, too_new_int8 = candidates.within_runtime(int8, plan.config)
        broken, broken_int8 = broken | too_new, broken_int8 | too_new_int8
        _check_some_int8_runs(int8, broken_int8, plan)
    reference = candidates.task_metrics(fp32.path, encoded, plan) if encoded is not None else None
    found = candidates.Int8Candidates(int8, broken=broken | broken_int8)
    primary = reference[plan.task.primary_metric] if reference is not None else None
    judge = candidates.Int8Judge(found, plan, encoded, primary, feeds, work)
    return _Built(fp32, encoded, calibration, graphs, fused_counts, judge, reference)


def _check_some_int8_runs(int8: dict[str, Path], broken: dict[str, str], plan: ExportPlan) -> None:
    """INT8 was asked for and every candidate fails to run: one line, with the mode that avoids it."""
    if broken and not int8:
        name, reason = next(iter(broken.items()))
        other = "dynamic" if plan.config.quantize == "static" else "none"
        raise CheckFailedError(
            f"every INT8 candidate fails to run ({name}: {reason}): pass --quantize {other}, and report the model"
        )


def _add_checked_variants(variants: list[dict], stage: Path, work: Path, built: _Built, plan: ExportPlan,
                          progress: _Progress) -> list[dict]:  # fmt: skip
    """fp16 and the fixed-shape variant beside the shipped graphs, then every variant scored on dev
    (a hard failure beyond the allowed drop); what was left out, and why."""
    config = plan.config
    if config.fp16 or plan.target == "cuda":
        with avoidable("the fp16 variant", "drop --fp16"):
            q.fp16(built.fp32.path, stage / layout.FP16)
        variants.append({"name": "fp16", "file": layout.FP16, "graph": "plain"})
    lengths = built.encoded.lengths if built.encoded is not None else None
    shape = fixed.resolve(config.fixed_shape, config.ort, lengths, config.max_length)
    if shape is not None:
        with progress.step(f"fixed-shape {shape[0]}x{shape[1]} QDQ variant", "pass --fixed-shape off"):
            calibration = Calibration(built.calibration, "training sentences" if plan.calibration is not None
                                      else "generated sentences")  # fmt: skip
            dev = steps.dev_scores(built.encoded, plan, built.reference)
            variants += fixed_variants(stage, work, built.fp32.path, shape, calibration, config, plan.target, dev)
    if built.encoded is not None:
        with progress.step("scoring variants", "pass --quantize none --fixed-shape off"):
            return steps.score_variants(variants, stage, built.encoded, plan)
    return []


def _planned_steps(plan, with_strings: bool) -> int:
    """How many steps the bar shows: the ones ``run_export`` will run for this plan."""
    config = plan.config
    scored = plan.dev is not None
    fixed_wanted = config.fixed_shape != "off" and (config.ort or config.fixed_shape != "auto")
    return 3 + fixed_wanted + scored + with_strings + bool(config.ort) + 1


def _attach_accuracy(variants: list[dict], int8: candidates.Int8Candidates, reference: dict | None) -> None:
    """What the INT8 picks scored, and the plain fp32 reference, onto the shipped
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
