"""The graphs ``export`` chooses among, and which INT8 ones are accurate enough to be chosen.

fp32 graphs: ``plain`` (as exported), ``fused`` (onnxruntime's transformer fusions, attention
included), ``fused-noattn`` (LayerNorm, SkipLayerNorm and Gelu fused, attention left as MatMuls) and
``o2`` (Optimum's O2 graph, the peer's recipe: :func:`codir_edge.export.graph.peer_o2`).
INT8 forms of each of ours: ``<graph>.dynamic`` (QOperator dynamic, per-channel weights); of ``o2``,
``o2.optimum``: Optimum's dynamic quantization for the target, so that the recipe a user would
otherwise run is timed beside ours and a shipped graph never loses to it. And, only where
dev data can check their accuracy, ``<graph>.dynamic-pt`` (per-tensor weights) and ``plain.qdq``
(static QDQ, calibrated on training sentences). With dev data, the ones timing would pick are scored
on dev (``Int8Judge``), and those beyond
``--max-accuracy-drop`` are passed over. When none is left, the accuracy-aware search (``mixed.py``)
keeps the fewest sensitive MatMuls of the plain graph in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codir_edge.core.errors import CheckFailedError, first_line
from codir_edge.core.notes import note
from codir_edge.export import quantize as q
from codir_edge.export.mixed import SENSITIVITY_SENTENCES, DropJudge
from codir_edge.export.plan import ExportPlan

PEER_TARGETS = ("avx512_vnni", "avx2", "arm64")  # the CPU targets Optimum's AutoQuantizationConfig names
CHECK_BATCHES = 2  # calibration batches every candidate must run on before it is timed or scored


@dataclass
class Int8Candidates:
    files: dict[str, Path]  # the ones eligible to ship
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # every one scored, eligible or not
    rejected: dict[str, float] = field(default_factory=dict)  # name -> drop in points, beyond the limit
    broken: dict[str, str] = field(default_factory=dict)  # name -> why it cannot run (set aside before scoring)
    search: dict | None = None  # the accuracy-aware search, when it ran


def fp32_candidates(fp32_path: Path, plan: ExportPlan, work: Path) -> tuple[dict[str, Path], dict[str, int]]:
    """(name -> graph, operator counts of the fully fused graph)."""
    from codir_edge.export.graph import fuse, operator_counts, peer_o2

    candidates = {"plain": fp32_path}
    if plan.spec.optimizer_type is None:  # a family the optimizer's fusions do not match: the graph runs plain
        return candidates, operator_counts(fp32_path)
    shape = (plan.spec.optimizer_type, plan.spec.heads, plan.spec.hidden)
    counts = fuse(fp32_path, work / "fused.onnx", *shape)
    if plan.config.optimize:
        candidates["fused"] = work / "fused.onnx"
        fuse(fp32_path, work / "fused-noattn.onnx", *shape, attention=False)
        candidates["fused-noattn"] = work / "fused-noattn.onnx"
        if plan.target in PEER_TARGETS:
            peer_o2(fp32_path, work / "o2.onnx", *shape)
            candidates["o2"] = work / "o2.onnx"
    return candidates, counts


def int8_candidates(graphs: dict[str, Path], plan: ExportPlan, calibration: list[dict] | None,
                    work: Path) -> dict[str, Path]:  # fmt: skip
    config, checked = plan.config, plan.dev is not None
    out: dict[str, Path] = {}
    if config.quantize in ("auto", "dynamic"):
        out |= _dynamic_forms(graphs, plan.target, work, checked)
    if calibration is not None and (config.quantize == "static" or (config.quantize == "auto" and checked)):
        out["plain.qdq"] = work / "plain.qdq.onnx"
        q.static_int8(graphs["plain"], out["plain.qdq"], calibration, config.calibration_method, plan.target)
    return with_embedding_bits(out, config.embedding_bits, work)


def with_embedding_bits(int8: dict[str, Path], bits: int, work: Path) -> dict[str, Path]:
    """With ``--embedding-bits 4``, each INT8 candidate with its lookups by an input stored in 4 bits
    (``onnx/lookup4.py``); a candidate whose lookup is fused (QEmbedLayerNormalization: the ``fused``
    and peer graphs) cannot store its word embeddings so, and is left out, said in a note. 8: the
    candidates as they are."""
    if bits == 8:
        return int8
    from codir_edge.onnx.lookup4 import four_bit_lookups

    kept = {}
    for name, path in int8.items():
        if "input_ids" in four_bit_lookups(path, work / f"{name}.q4.onnx"):
            kept[name] = work / f"{name}.q4.onnx"
    if int8 and not kept:
        raise CheckFailedError("--embedding-bits 4 cannot apply to this model: no INT8 graph has a word-embedding "
                               "lookup it can store in 4 bits (fused into one operator, or rows whose width no "
                               "power of two from 16 to 64 divides): drop --embedding-bits 4")  # fmt: skip
    if left := sorted(set(int8) - set(kept)):
        note(f"--embedding-bits 4: {', '.join(left)} left out (the embedding lookup is fused into one operator)")
    return kept


def single_graph_int8(fp32: Path, spec, config, target: str, work: Path, with_dev: bool) -> tuple[dict, dict]:
    """For the task kinds that ship one fp32 graph (ner, embedding): (candidate name -> INT8 graph,
    fused-operator counts). The plain and, where the family fuses, the fused graph quantized per
    channel, per tensor too with dev data (which can catch their drop), and the peer's recipe."""
    from codir_edge.export.graph import fuse, operator_counts, peer_o2

    graphs, counts = {"plain": fp32}, operator_counts(fp32)
    shape = (spec.optimizer_type, spec.heads, spec.hidden)
    if spec.optimizer_type is not None and config.optimize:
        counts = fuse(fp32, work / "fused.onnx", *shape)
        graphs["fused"] = work / "fused.onnx"
        if target in PEER_TARGETS:
            peer_o2(fp32, work / "o2.onnx", *shape)
            graphs["o2"] = work / "o2.onnx"
    return with_embedding_bits(_dynamic_forms(graphs, target, work, with_dev), config.embedding_bits, work), counts


def _dynamic_forms(graphs: dict[str, Path], target: str, work: Path, with_dev: bool) -> dict[str, Path]:
    """The dynamic INT8 forms of ``graphs``: ``<graph>.dynamic`` (per-channel weights) and, with dev
    data, which can catch their drop, ``<graph>.dynamic-pt`` (per tensor); the peer's ``o2`` graph
    gets the peer's quantization only (``o2.optimum``)."""
    out: dict[str, Path] = {}
    for graph, path in graphs.items():
        if graph == "o2":
            out["o2.optimum"] = work / "o2.optimum.onnx"
            q.peer_dynamic_int8(path, out["o2.optimum"], target)
            continue
        for quant, per_channel in (("dynamic", True), ("dynamic-pt", False)):
            if per_channel or with_dev:
                out[f"{graph}.{quant}"] = work / f"{graph}.{quant}.onnx"
                q.dynamic_int8(path, out[f"{graph}.{quant}"], target, graph != "plain", per_channel)
    return out


def within_runtime(graphs: dict[str, Path], config) -> tuple[dict[str, Path], dict[str, str]]:
    """Under ``--min-onnxruntime``, the candidates that release runs, and why each other one is set
    aside: the tuner must not pick a file the export would then refuse to ship."""
    if not config.min_onnxruntime:
        return graphs, {}
    from codir_edge.export.config import min_onnxruntime
    from codir_edge.onnx.runtime_needs import needs_of, version_tuple

    wanted, kept, aside = min_onnxruntime(config.min_onnxruntime), {}, {}
    for name, path in graphs.items():
        needs = needs_of(path)
        if version_tuple(needs["min_onnxruntime"]) > wanted:
            aside[name] = (f"needs onnxruntime {needs['min_onnxruntime']}, above --min-onnxruntime "
                           f"{config.min_onnxruntime}")
        else:
            kept[name] = path
    return kept, aside


def runnable(graphs: dict[str, Path], feeds: list[dict]) -> tuple[dict[str, Path], dict[str, str]]:
    """The graphs that run on the calibration inputs with finite outputs, and why each other one does
    not: a candidate that fails or gives NaN is set aside (and said), never timed, scored or shipped."""
    kept, broken = {}, {}
    for name, path in graphs.items():
        fault = run_fault(path, feeds[:CHECK_BATCHES])
        if fault is None:
            kept[name] = path
        else:
            broken[name] = fault
    return kept, broken


def run_fault(path: Path, feeds: list[dict]) -> str | None:
    """Why the graph at ``path`` cannot be shipped, from running it on ``feeds``; None when it runs."""
    from codir_edge.onnx.session import create_session

    try:
        session = create_session(path, 1)
        names = {i.name for i in session.get_inputs()}
        for feed in feeds:
            outputs = session.run(None, {k: v for k, v in feed.items() if k in names})
            if not all(np.isfinite(o).all() for o in outputs if o.dtype.kind == "f"):
                return "gives NaN or infinite outputs on calibration sentences"
    except Exception as exc:  # onnxruntime raises its own (pybind) types
        return f"fails on calibration sentences: {first_line(exc)}"
    return None


@dataclass
class Int8Judge:
    """Scores an INT8 candidate on dev only when a choice needs it: timing ranks the candidates first,
    and each thread count's pick is scored, then the next one when it loses too much (``accurate``).
    A candidate no pick reaches is never scored. When every candidate loses too much, ``fallback``
    runs the accuracy-aware search for a mixed graph. Without dev data nothing can be checked and
    every candidate is accurate enough."""

    result: Int8Candidates
    plan: ExportPlan
    encoded: object  # the dev split at --max-length, or None
    reference: float | None  # the plain fp32 graph's primary metric
    calibration: list[dict] | None
    work: Path

    def accurate(self, name: str) -> bool:
        if self.encoded is None or self.reference is None:
            return True
        if name not in self.result.accuracy:
            self.result.accuracy[name] = task_metrics(self.result.files[name], self.encoded, self.plan)
            drop = (self.reference - self.result.accuracy[name][self.plan.task.primary_metric]) * 100
            if drop > self.plan.config.max_accuracy_drop:
                self.result.rejected[name] = round(drop, 4)
        return name not in self.result.rejected

    def fallback(self) -> str:
        """The accuracy-aware search's graph (added to ``result.files``), once every candidate is
        known to lose too much."""
        for name in list(self.result.files):
            self.accurate(name)
        _accuracy_aware(self.result, self.plan, self.encoded, self.reference, self.calibration, self.work)
        return self.result.search["candidate"]


def _accuracy_aware(result: Int8Candidates, plan: ExportPlan, encoded, reference: float,
                    calibration: list[dict] | None, work: Path) -> None:  # fmt: skip
    from codir_edge.export.mixed import WeightScheme, fewest_in_float, sensitivity

    config, metric = plan.config, plan.task.primary_metric
    static = config.quantize == "static"
    base = "plain.qdq" if static else "plain.dynamic"
    source = work / "plain.onnx"
    feeds = (calibration or [])[: max(1, SENSITIVITY_SENTENCES // 16)]
    if not feeds:
        feeds = _dev_feeds(encoded, source)
    scheme = WeightScheme(per_channel=True, reduce_range=plan.target == "avx2", dynamic=not static)
    ranking = [name for name, _ in sensitivity(source, feeds, scheme, activations=static)]
    name, path = f"{base}-mixed", work / f"{base}-mixed.onnx"
    judge = drop_judge(encoded, plan, reference)

    def quantize(keep: tuple[str, ...]) -> Path:
        if static:
            q.static_int8(source, path, calibration, config.calibration_method, plan.target, keep_float=keep,
                          ranges=work / f"{base}-mixed.ranges.json")  # fmt: skip
        else:
            q.dynamic_int8(source, path, plan.target, fused=False, keep_float=keep)
        if config.embedding_bits == 4:  # judged as it would ship
            from codir_edge.onnx.lookup4 import four_bit_lookups

            four_bit_lookups(path, path)
        return path

    found = fewest_in_float(ranking, quantize, judge.drop_of, judge.limit)
    worst = min(result.rejected.values())
    if found is None:
        raise CheckFailedError(
            f"INT8 loses {worst:.2f} points of {metric} against fp32 (--max-accuracy-drop "
            f"{config.max_accuracy_drop}) even with all {len(ranking)} quantized MatMuls kept in fp32: "
            "allow a larger drop, or pass --quantize none"
        )
    result.files[name] = path
    result.accuracy[name] = task_metrics(path, encoded, plan)
    result.search = {
        "candidate": name,
        "kept_in_float": list(found.keep_float),
        "quantized_matmuls": len(ranking),
        "drop_before": worst,
        "drop_after": round(found.drop, 4),
        "trials": found.trials,
        "ranking": ranking[: max(8, len(found.keep_float))],
    }


def drop_judge(encoded, plan: ExportPlan, reference: float | None) -> DropJudge | None:
    """Points of the task metric a graph loses against the fp32 ``reference`` on dev, and the limit
    (``--max-accuracy-drop``); None without dev data (nothing to judge by, so nothing is searched)."""
    if encoded is None or reference is None:
        return None
    metric = plan.task.primary_metric
    return DropJudge(lambda path: (reference - task_metrics(path, encoded, plan)[metric]) * 100,
                     plan.config.max_accuracy_drop)  # fmt: skip


def _dev_feeds(encoded, model: Path) -> list[dict]:
    from codir_edge.data.encode import pad_batch
    from codir_edge.onnx.session import create_session

    names = [i.name for i in create_session(model, 1).get_inputs()]
    rows = np.arange(min(len(encoded), SENSITIVITY_SENTENCES))
    feed = pad_batch(encoded, rows)
    feed.setdefault("token_type_ids", np.zeros_like(feed["input_ids"]))
    return [{n: feed[n] for n in names}]


SCORING_THREADS = 2


def task_metrics(path: Path, encoded, plan: ExportPlan) -> dict[str, float]:
    """The graph's task metrics on ``encoded``. They follow from the graph's bytes, the rows, the
    task and the machine (INT8 kernels differ by instruction set), so they are kept on disk under
    that key (``core/disk_cache.py``): re-exporting an unchanged model scores nothing twice."""
    from codir_edge.core import disk_cache
    from codir_edge.core.machine import machine_key
    from codir_edge.data.metrics import score
    from codir_edge.export.timing_cache import graph_digest
    from codir_edge.onnx.predict import onnx_logits

    described = {"format": 1, "graph": graph_digest(path), "rows": _rows_digest(encoded), "task": repr(plan.task),
                 "threads": SCORING_THREADS, "machine": machine_key(with_cpus=False)}

    def work_out() -> dict[str, float]:
        return score(plan.task, onnx_logits(path, encoded, threads=SCORING_THREADS), encoded.targets.tolist())

    return disk_cache.cached("export-scores", described, work_out)


def _rows_digest(encoded) -> str:
    import hashlib

    digest = hashlib.sha256()
    for ids in encoded.input_ids:
        digest.update(np.asarray(ids, dtype=np.int64).tobytes() + b"|")
    for segments in encoded.token_type_ids or []:
        digest.update(np.asarray(segments, dtype=np.int64).tobytes() + b"|")
    digest.update(np.asarray(encoded.targets, dtype=np.float64).tobytes())
    digest.update(str(encoded.pad_id).encode())
    return digest.hexdigest()
