"""Time the candidates at every deployment setting, pick per thread count, and copy only the
distinct winners into the bundle, with the deployment table that says which file to load where.

The winners for the first thread count are ``onnx/model.onnx`` and ``onnx/model_quantized.onnx``
(what a reader who ignores the table gets, transformers.js among them); another thread count whose
winner differs gets its own file, named after its graph (``onnx/model_quantized.fused.onnx``, variant
``int8-fused``), marked as an alternate.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from codir_edge.bundle import layout
from codir_edge.core.errors import CheckFailedError
from codir_edge.core.inputs import REAL
from codir_edge.export import tune
from codir_edge.export.candidates import Int8Judge
from codir_edge.export.plan import ExportPlan

SESSION_OPTIONS = {  # what every timing ran with; the manifest tells apps to do the same
    "inter_op_num_threads": 1,
    "execution_mode": "ORT_SEQUENTIAL",
    "graph_optimization_level": "ORT_ENABLE_ALL",
}
REAL_ROWS = 20  # dev sentences, spread over the split, that time the "real" length


def settings(config, max_positions: int, with_dev: bool) -> list[tune.Setting]:
    """(threads, length) pairs to time at: ``--tune-threads`` (1 and this machine's usable CPUs by
    default) by ``--tune-lengths`` (dev sentences at their own lengths with data, else 16 and 128)."""
    from codir_edge.core.machine import usable_cpus

    threads = config.tune_threads or tuple(dict.fromkeys((1, len(usable_cpus()))))
    longest = min(config.max_length, max_positions)
    lengths = config.tune_lengths or ((REAL,) if with_dev else (16, 128))
    lengths = tuple(dict.fromkeys(min(n, longest) if n != REAL else n for n in lengths))
    return [tune.Setting(t, n) for t in threads for n in lengths]


def real_rows(encoded) -> list[list[int]] | None:
    if encoded is None or not len(encoded):
        return None
    step = max(1, len(encoded) // REAL_ROWS)
    return [encoded.input_ids[i].tolist() for i in range(0, len(encoded), step)][:REAL_ROWS]


def tune_and_ship(graphs: dict[str, Path], judge: Int8Judge, plan: ExportPlan, encoded,
                  stage: Path) -> tuple[list[dict], dict, dict]:  # fmt: skip
    """(variants, deployment table, tuning record), the chosen files copied into ``stage``. INT8
    picks are scored as they are made (``judge``); when none holds the accuracy limit, the
    accuracy-aware search's graph is the INT8 pick at every thread count."""
    wanted = settings(plan.config, plan.spec.max_positions, plan.dev is not None)
    int8 = judge.result.files
    every = {**graphs, **{f"int8:{k}": v for k, v in int8.items()}}
    if plan.target == "cuda" or len(every) == 1:  # nothing to choose, or not timed on this CPU
        measured: dict = {}
        first = next((name for name in list(int8) if judge.accurate(name)), None) if int8 else None
        first = judge.fallback() if int8 and first is None else first
        picks = {s.threads: {"fp32": "plain", "int8": first} for s in wanted}
        record = {"timed": False}
    else:
        measured, cached = _timed(every, wanted, plan.spec.vocab_size, plan.config.timing_cache, real_rows(encoded))
        sizes = {name: path.stat().st_size for name, path in every.items()}
        fp32_choice = tune.choose(_only(measured, graphs), wanted, sizes)
        int8_choice = {}
        if int8:
            int8_choice = tune.choose(_only(measured, every, "int8:"), wanted, sizes,
                                      keep=lambda name: judge.accurate(name.removeprefix("int8:")))  # fmt: skip
        if any(choice is None for choice in int8_choice.values()):  # every candidate loses too much
            searched = f"int8:{judge.fallback()}"
            int8_choice = {t: {"chosen": searched, "by": "accuracy-aware search, the one INT8 graph left (not timed)"}
                           for t in int8_choice}  # fmt: skip
        picks = {
            t: {"fp32": fp32_choice[t]["chosen"], "int8": int8_choice[t]["chosen"].removeprefix("int8:")}
            if int8
            else {"fp32": fp32_choice[t]["chosen"]}
            for t in fp32_choice
        }
        per_threads = {str(t): {"fp32": fp32_choice[t], **({"int8": int8_choice[t]} if int8 else {})}
                       for t in fp32_choice}  # fmt: skip
        record = _record(measured, cached, wanted, per_threads)
    variants, table = _copy_winners(picks, graphs, int8, stage)
    return variants, _deployment(table, wanted, plan.target), record


@dataclass
class FileScores:
    """Dev metrics per graph, computed once per file contents (``score(path)``): the tuner asks about
    a candidate as its picks need it, and the shipped copies are read back from here rather than
    scored again. ``score`` is None without dev data: every graph passes. ``metric``: the key a drop
    is measured on (the first the scores hold when None)."""

    score: Callable[[Path], dict] | None
    metric: str | None
    limit: float  # --max-accuracy-drop, in points
    by_file: dict = field(default_factory=dict)  # contents digest -> metrics
    _digests: dict = field(default_factory=dict)  # (path, mtime, size) -> contents digest: each file hashed once

    def of(self, path: Path) -> dict:
        key = self._digest(path)
        if key not in self.by_file:
            self.by_file[key] = self.score(path)
        return self.by_file[key]

    def has(self, path: Path) -> bool:
        """Whether ``path``'s contents were scored already."""
        return self._digest(path) in self.by_file

    def _digest(self, path: Path) -> str:
        from codir_edge.export.timing_cache import graph_digest

        stat = path.stat()
        where = (str(path), stat.st_mtime_ns, stat.st_size)
        if where not in self._digests:
            self._digests[where] = graph_digest(path)
        return self._digests[where]

    def drop(self, path: Path, reference: Path) -> float:
        metric = self.metric or next(iter(self.of(reference)))
        return 100 * (self.of(reference)[metric] - self.of(path)[metric])

    def within_limit(self, path: Path, reference: Path) -> bool:
        return self.score is None or self.drop(path, reference) <= self.limit


def tune_single_graph_int8(int8: dict[str, Path], scores: FileScores, config, spec, encoded, target: str,
                           stage: Path) -> tuple[list[dict], dict | None, dict | None]:  # fmt: skip
    """For a task kind with one fp32 graph (ner, embedding): the INT8 candidates timed as
    classification's are, each thread count's fastest within the accuracy limit on dev copied into
    ``stage`` (the first count's as ``onnx/model_quantized.onnx``), fp32 at every count. For a GPU
    target, which this CPU cannot time, and for a lone candidate, the fused (else plain) per-channel
    graph ships untimed: (variants, None, None). Else (INT8 variants, deployment, tuning record),
    the record with every scored candidate's metrics and the ones beyond the limit."""
    from codir_edge.export.candidates import within_runtime

    int8, too_new = within_runtime(int8, config)
    if not int8:
        name, why = next(iter(too_new.items()))
        raise CheckFailedError(f"no INT8 graph runs on the oldest onnxruntime asked for ({name} {why}): pass a newer "
                               "--min-onnxruntime, or --quantize none")  # fmt: skip
    if target == "cuda" or len(int8) == 1:
        name = "fused.dynamic" if "fused.dynamic" in int8 else next(iter(int8))
        shutil.copy2(int8[name], stage / layout.INT8)
        return [_variant("int8", name, primary=True)], None, None
    reference = stage / layout.FP32

    def accurate(name: str) -> bool:
        return scores.within_limit(int8[name], reference)

    variants, deployment, tuning = tune_int8_only(int8, accurate, config, spec.max_positions, spec.vocab_size,
                                                  encoded, target, stage)  # fmt: skip
    if too_new:
        tuning["unusable"] = too_new
    if scores.score is not None:
        scored = {n: p for n, p in int8.items() if scores.has(p)}
        tuning["int8_dev_scores"] = {n: scores.of(p) for n, p in scored.items()}
        tuning["rejected_int8"] = {n: round(scores.drop(p, reference), 4) for n, p in scored.items()
                                   if not scores.within_limit(p, reference)}  # fmt: skip
    return variants, deployment, tuning


def tune_int8_only(int8: dict[str, Path], accurate, config, max_positions: int, vocab: int, encoded, target: str,
                   stage: Path) -> tuple[list[dict], dict, dict]:  # fmt: skip
    """The INT8 candidates timed as above, each thread count's fastest that ``accurate(name)`` accepts
    copied into ``stage`` (the first count's as ``onnx/model_quantized.onnx``), the fp32 graph at
    every count. ``accurate`` is asked lazily, as ``tune.choose`` asks; when it accepts none, the
    fastest is returned and the caller's accuracy check says so. (INT8 variants, deployment, tuning
    record.)"""
    wanted = settings(config, max_positions, encoded is not None)
    measured, cached = _timed({f"int8:{k}": v for k, v in int8.items()}, wanted, vocab, config.timing_cache,
                              real_rows(encoded))  # fmt: skip
    sizes = {f"int8:{name}": path.stat().st_size for name, path in int8.items()}
    choice = tune.choose(measured, wanted, sizes, keep=lambda name: accurate(name.removeprefix("int8:")))
    if any(c is None for c in choice.values()):  # none accurate enough there: the fastest, for the check to refuse
        fastest = tune.choose(measured, wanted, sizes)
        choice = {t: c or fastest[t] for t, c in choice.items()}
    picks = {t: {"int8": c["chosen"].removeprefix("int8:")} for t, c in choice.items()}
    variants, table = _copy_winners(picks, {}, int8, stage)
    for names in table.values():
        names["fp32"] = "fp32"
    record = _record(measured, cached, wanted, {str(t): {"int8": c} for t, c in choice.items()})
    return variants, _deployment(table, wanted, target), record


def _record(measured: dict, cached: bool, wanted: list[tune.Setting], per_threads: dict) -> dict:
    return {
        "timed": True,
        "from_cache": cached,
        "dropped_early": {k: {n: v["dropped_after_round"] for n, v in row.items() if "dropped_after_round" in v}
                          for k, row in measured.items()},  # fmt: skip
        "batch": 1,
        "settings": [s.key for s in wanted],
        "median_ms": {k: {n: v["median_ms"] for n, v in row.items()} for k, row in measured.items()},
        "spread_ms": {k: {n: v["spread_ms"] for n, v in row.items()} for k, row in measured.items()},
        "per_threads": per_threads,
    }


def _deployment(table: dict[int, dict], wanted: list[tune.Setting], target: str) -> dict:
    return {
        "threads": {str(t): names for t, names in table.items()},
        "session_options": SESSION_OPTIONS,
        "tuned_on": {
            "threads": sorted({s.threads for s in wanted}),
            "lengths": list(dict.fromkeys(s.length for s in wanted)),
            "cpu_count": os.cpu_count(),
            "target": target,
        },
    }


def _timed(every: dict[str, Path], wanted: list[tune.Setting], vocab: int, use_cache: bool,
           rows: list[list[int]] | None) -> tuple[dict, bool]:  # fmt: skip
    """(the candidates' timings, whether they came from the timing cache): the same graphs timed
    the same way on this machine before are not timed again."""
    from codir_edge.export import timing_cache

    pools = [[n for n in every if not n.startswith("int8:")], [n for n in every if n.startswith("int8:")]]
    what = {"settings": [s.key for s in wanted], "rows": rows, "vocab": vocab, "rounds": tune.ROUNDS,
            "runs": tune.RUNS, "min_rounds": tune.MIN_ROUNDS, "clearly": tune.CLEARLY}  # fmt: skip
    timing_key = timing_cache.timing_key(every, what) if use_cache else None
    if timing_key is not None and (found := timing_cache.load(timing_key)) is not None:
        return found, True
    measured = tune.time_candidates(every, wanted, vocab, rows, pools=[p for p in pools if p])
    if timing_key is not None:
        timing_cache.save(timing_key, measured)
    return measured, False


def _only(measured: dict, pool: dict, prefix: str = "") -> dict:
    return {k: {n: v for n, v in row.items() if n in pool and n.startswith(prefix)} for k, row in measured.items()}


def _copy_winners(picks: dict[int, dict], graphs: dict, int8: dict,
                  stage: Path) -> tuple[list[dict], dict[int, dict]]:  # fmt: skip
    """One variant per distinct winner, in thread order; the first thread count's keep the plain names."""
    order = list(picks)
    variants: list[dict] = []
    table: dict[int, dict] = {t: {} for t in order}
    for kind in ("fp32", "int8"):
        shipped: dict[str, dict] = {}
        for threads in order:
            name = picks[threads].get(kind)
            if name is None:
                continue
            if name not in shipped:
                shipped[name] = _variant(kind, name, primary=not shipped)
                source = graphs[name] if kind == "fp32" else int8[name]
                shutil.copy(source, stage / shipped[name]["file"])
                variants.append(shipped[name])
            shipped[name]["threads"].append(threads)
            table[threads][kind] = shipped[name]["name"]
    return variants, table


def _variant(kind: str, candidate: str, primary: bool) -> dict:
    graph, _, quant = candidate.partition(".")
    suffix = graph if quant in ("", "dynamic") else f"{graph}-{quant}"
    if kind == "fp32":
        entry = {"name": "fp32" if primary else f"fp32-{suffix}",
                 "file": layout.FP32 if primary else layout.alternate(kind, suffix), "graph": graph}  # fmt: skip
    else:
        entry = {
            "name": "int8" if primary else f"int8-{suffix}",
            "file": layout.INT8 if primary else layout.alternate(kind, suffix),
            "graph": graph,
            "quantization": "static" if quant.startswith("qdq") else "dynamic",
            "format": "QDQ" if quant.startswith("qdq") else "QOperator",
            "per_channel": not quant.endswith("-pt"),
        }
    entry["candidate"] = candidate
    entry["threads"] = []
    if not primary:
        entry["alternate_of"] = kind
    return entry
