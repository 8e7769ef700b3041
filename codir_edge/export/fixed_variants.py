"""The fixed-shape variants for phone accelerators, for every task kind that ships a token-id graph:
the static QDQ graph (and its .ort), and the Core ML and NNAPI graphs; and the gate every variant
passes on dev.

What differs between task kinds is only how a graph is scored on dev (a classifier's accuracy, a
tagger's entity F1), so the steps here take a ``DevScores`` and never a task: a fixed-shape graph is
scored as an app feeds it, its rows padded or cut to its length (``onnx/predict.py``,
``onnx/tokens.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from codir_edge.bundle import layout
from codir_edge.core.errors import CheckFailedError
from codir_edge.core.notes import note
from codir_edge.export import quantize as q
from codir_edge.export.config import ExportConfig
from codir_edge.export.mixed import DropJudge, Search


@dataclass(frozen=True)
class DevScores:
    """How a graph is scored on dev: ``metrics(path)``, the key a drop is measured on, fp32's value of
    it, the dev rows' token lengths (the rows a fixed length cuts are counted) and the most a variant may
    lose (``--max-accuracy-drop``, in points)."""

    metrics: Callable[[Path], dict]
    metric: str
    reference: float
    lengths: np.ndarray
    limit: float

    def judge(self) -> DropJudge:
        return DropJudge(lambda path: (self.reference - self.metrics(path)[self.metric]) * 100, self.limit)


@dataclass(frozen=True)
class Calibration:
    """The rows static INT8 is calibrated on, and what the manifest calls them."""

    encoded: object  # data/encode.Encoded
    source: str  # "training sentences" or "generated sentences"


def gate_variants(variants: list[dict], stage: Path, metric: str, config: ExportConfig,
                  remedy: Callable[[str, ExportConfig], str]) -> list[dict]:  # fmt: skip
    """Each scored variant's drop against fp32 (the first) in place; fails, naming every variant beyond
    the allowed drop and ``remedy(name, config)``, when one or more loses too much. A fixed-shape
    variant that ``--fixed-shape auto`` added on its own (the QDQ, Core ML and NNAPI graphs) is left out
    of the bundle instead, with a note: it is not shipped, and the rest of the bundle is. Returns what
    was left out and why (the manifest's ``left_out``: a CI job reads the manifest, not the log)."""
    reference = variants[0]["accuracy"][metric]
    failures, left_out = [], []
    for variant in (v for v in variants[1:] if "accuracy" in v):
        drop = (reference - variant["accuracy"][metric]) * 100
        variant["accuracy_drop_points"] = drop
        if drop <= config.max_accuracy_drop:
            continue
        said = f"the {variant['name']} variant loses {drop:.2f} points of {metric} against fp32 " \
               f"(--max-accuracy-drop {config.max_accuracy_drop})"  # fmt: skip
        if "fixed_shape" in variant and config.fixed_shape == "auto":
            variant["left_out_because"] = said
            left_out.append(variant)
            note(f"{said}: left out of the bundle (a longer --fixed-shape or a larger drop ships it)")
        elif "fixed_shape" in variant:
            failures.append(f"{said}: {FIXED_REMEDY}")
        else:
            failures.append(f"{said}: {remedy(variant['name'], config)}")
    if failures:
        raise CheckFailedError("; ".join(failures))
    return _leave_out(variants, left_out, stage)


FIXED_REMEDY = "pass --fixed-shape off, a longer --fixed-shape, or allow a larger drop"


def _leave_out(variants: list[dict], left_out: list[dict], stage: Path) -> list[dict]:
    """Remove ``left_out`` (and the .ort made from one, with its operator list) from ``variants`` and the
    stage; the manifest's record of each file removed."""
    files = {v["file"] for v in left_out}
    gone = [v for v in variants if v["file"] in files or v.get("from") in files]
    for variant in gone:
        (stage / variant["file"]).unlink(missing_ok=True)
        if variant["file"] == layout.ORT_FIXED:
            (stage / layout.OPS_CONFIG_FIXED).unlink(missing_ok=True)
    variants[:] = [v for v in variants if v not in gone]
    return [left_out_record(v, v.get("left_out_because") or f"made from {v['from']}, which was left out")
            for v in gone]  # fmt: skip


def left_out_record(variant: dict, why: str) -> dict:
    """What the manifest says of a variant the export made but did not ship."""
    kept = {k: variant[k] for k in ("accuracy", "accuracy_drop_points", "fixed_shape") if k in variant}
    return {"name": variant["name"], "file": variant["file"], "why": why, **kept}


def fixed_variants(stage: Path, work: Path, plain: Path, shape: tuple[int, int], calibration: Calibration,
                   config: ExportConfig, target: str, dev: DevScores | None) -> list[dict]:  # fmt: skip
    """The fixed-shape static QDQ INT8 graph (u8 activations and weights), its accelerator usability,
    its dev scores with inputs padded or truncated to its length, and its .ort (runtime-optimised,
    so NNAPI and Core ML can still take its nodes). Per-tensor u8 weights can lose more than the limit
    where per-channel ones do not: then the fewest most sensitive MatMuls stay in float (the search of
    ``export/mixed.py``, judged against fp32 fed at the same shape on dev), and the variant ships instead
    of being left out."""
    from codir_edge.export import fixed
    from codir_edge.export.candidates import CHECK_BATCHES, run_fault
    from codir_edge.export.mixed import MOBILE_QDQ, SENSITIVITY_SENTENCES, quantize_within, sensitivity
    from codir_edge.export.mobile import to_ort
    from codir_edge.onnx.predict import fixed_batches
    from codir_edge.onnx.session import create_session

    batch, length = shape
    fixed_fp32, file = work / "fixed.onnx", layout.INT8_FIXED
    fixed.fix_shapes(plain, fixed_fp32, batch, length)
    names = [i.name for i in create_session(fixed_fp32, 1).get_inputs()]
    count = config.calibration_samples
    feeds = [{n: b[n] for n in names} for b in fixed_batches(calibration.encoded, batch, length, count)]
    # the search recovers what quantization loses: it is judged against fp32 fed at the same shape, not
    # against the words the shape cuts, which no float MatMul brings back (the gate still counts both)
    at_shape = dev.metrics(fixed_fp32) if dev is not None else None
    judge = replace(dev, reference=at_shape[dev.metric]).judge() if dev is not None else None

    def quantize(keep: tuple[str, ...]) -> Path:
        q.static_int8(fixed_fp32, stage / file, feeds, config.calibration_method, target, op_types=fixed.FIXED_OPS,
                      keep_float=keep, weights_u8_per_tensor=True, ranges=work / "fixed.ranges.json")  # fmt: skip
        return stage / file

    def rank() -> list[str]:
        ranked = sensitivity(fixed_fp32, feeds[:SENSITIVITY_SENTENCES], MOBILE_QDQ, tuple(fixed.FIXED_OPS))
        return [name for name, _ in ranked]

    search = quantize_within(quantize, rank, judge)
    fault = run_fault(stage / file, feeds[:CHECK_BATCHES])
    if fault is not None:
        (stage / file).unlink()
        if config.fixed_shape != "auto":
            raise CheckFailedError(f"the fixed-shape INT8 variant {fault}: pass --fixed-shape off")
        note(f"no fixed-shape variant: it {fault}")
        return []
    entry = {
        "name": "int8-fixed",
        "file": file,
        "fixed_shape": [batch, length],
        "quantization": "static",
        "format": "QDQ",
        "activations": "u8",
        "weights": "u8 per-tensor",
        "quantized_ops": fixed.FIXED_OPS,
        "calibration": calibration.source,
        "usability": fixed.usability(stage / file),
    }
    if dev is not None:
        entry["accuracy"] = dev.metrics(stage / file)  # fed at its fixed shape
        entry["fp32_at_shape"] = at_shape  # what the shape's cut alone costs
        entry["truncated_rows"] = int((dev.lengths > length).sum())
    entry.update(search_record(search))
    out = [entry]
    if config.ort:
        try:
            to_ort(stage / file, stage, target, layout.ORT_FIXED, layout.OPS_CONFIG_FIXED, "Runtime")
            out.append({"name": "ort-fixed", "file": layout.ORT_FIXED, "from": file, "fixed_shape": [batch, length]})
        except CheckFailedError as exc:  # onnxruntime 1.32: a float MatMul + Add among QDQ ones
            note(f"no {layout.ORT_FIXED}: {str(exc).split(': pass --no-ort')[0]}; {file} ships")
    return [*out, *accelerator_variants(stage, work, fixed_fp32, (batch, length), feeds, config, target, dev, judge)]


def search_record(search: Search | None) -> dict:
    """What the manifest says of an accuracy-aware search that kept MatMuls in float (nothing otherwise)."""
    if search is None or not search.keep_float:
        return {}
    return {"keep_float": list(search.keep_float),
            "accuracy_search": {"drop_before": search.trials[0]["drop"], "drop_after": round(search.drop, 4),
                                "trials": search.trials}}  # fmt: skip


def accelerator_variants(stage: Path, work: Path, fixed_fp32: Path, shape: tuple[int, int], feeds: list[dict],
                         config: ExportConfig, target: str, dev: DevScores | None,
                         judge: DropJudge | None = None) -> list[dict]:  # fmt: skip
    """The Core ML variant (``export/coreml.py``: fp16 inside, the Gathers Core ML stops at rewritten) and
    the NNAPI one (``export/nnapi.py``: int32 ids, 2-D QDQ MatMuls, tanh GELU, decomposed LayerNorm, u8
    embeddings), each with its accelerator's usability by onnxruntime's checker and ours, and its dev
    scores at its fixed shape (gated like every variant by ``gate_variants``)."""
    from codir_edge.export.coreml import coreml_graph
    from codir_edge.export.nnapi import as_int32, nnapi_graph

    made = [
        _accelerator_variant(stage, "coreml", layout.COREML,
                             lambda: (coreml_graph(fixed_fp32, stage / layout.COREML), None),
                             feeds, shape, config, dev,
                             {"precision": "fp16 inside; inputs int64, outputs fp32"}),
        _accelerator_variant(stage, "nnapi", layout.NNAPI,
                             lambda: nnapi_graph(fixed_fp32, stage / layout.NNAPI, work, feeds,
                                                 config.calibration_method, target, judge),
                             as_int32(feeds), shape, config, dev,
                             {"precision": "QDQ u8 weight MatMuls and embeddings; outputs fp32",
                              "input_dtype": "int32", "gelu": "tanh approximation"}),
    ]  # fmt: skip
    return [entry for entry in made if entry is not None]


def _accelerator_variant(stage: Path, name: str, file: str, build, feeds: list[dict], shape: tuple[int, int],
                         config: ExportConfig, dev: DevScores | None, described: dict) -> dict | None:  # fmt: skip
    """Build one accelerator variant (``build`` returns what it rewrote and its accuracy-aware search, if any)
    and check it runs; a model it cannot be made for gets a note under ``--fixed-shape auto`` and fails an
    explicit ``--fixed-shape``."""
    from codir_edge.export import fixed
    from codir_edge.export.candidates import CHECK_BATCHES, run_fault

    try:
        rewritten, search = build()
        fault = run_fault(stage / file, feeds[:CHECK_BATCHES])
    except Exception as exc:  # noqa: BLE001 - the converters' errors have no common type; the message says why
        fault = f"could not be built ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
    if fault is not None:
        (stage / file).unlink(missing_ok=True)
        if config.fixed_shape != "auto":
            raise CheckFailedError(f"the {name} variant {fault}: pass --fixed-shape off")
        note(f"no {name} variant: it {fault}")
        return None
    entry = {"name": name, "file": file, "fixed_shape": list(shape), **described, "rewritten": rewritten,
             "usability": fixed.usability(stage / file, (name,)), **search_record(search)}  # fmt: skip
    if dev is not None:
        entry["accuracy"] = dev.metrics(stage / file)
    return entry
