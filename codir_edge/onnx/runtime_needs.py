"""Which runtime a shipped file needs: IR version, opsets per domain, contrib operators, whether
onnxruntime-extensions must be registered, and the oldest onnxruntime that loads and runs it.

Apps pin runtime versions (an Android AAR, an npm lockfile), and a newer exporter can silently
write files an older runtime refuses, so the oldest version is a measured fact, not a reading of
compatibility tables: every floor below was found by running the demo bundle's files on the last
patch of each onnxruntime minor release on PyPI (``benchmarks/runtime_floor.py``), and
``tests/test_bundle_apps.py`` runs a bundle's files on the claimed release, and on the release
before, in side environments in CI. A file outside what was
measured (a higher IR version or opset, an operator not in the list, another onnxruntime than the
one measured with) is claimed for the running onnxruntime only, and says so.
"""

from __future__ import annotations

from pathlib import Path

MEASURED_WITH = "1.32.0"  # the onnxruntime that wrote the files the floors were measured on
OLDEST_CHECKED = "1.15"  # the oldest onnxruntime with wheels for Python 3.11: nothing older is checked
ONNX_FLOOR = "1.15"  # IR <= 8, ai.onnx <= 17, the contrib operators below: all run on 1.15.1
ONNX_MAX_IR, ONNX_MAX_OPSET = 8, 17
ORT_FLOOR = "1.16"  # ORT format 6: 1.15.1 refuses it ("ORT format model version [6] is not supported")
ORT_RUNTIME_OPT_FLOOR = "1.30"  # saved runtime optimizations: 1.29.0 fails ("Not enough produced nodes")
EXTENSIONS_FLOOR = "0.13"  # the WordPiece and SentencePiece strings graphs run on 0.13.0 (Android's AAR)
EXTENSIONS_OP_FLOORS = {  # operators that need a newer onnxruntime-extensions than EXTENSIONS_FLOOR
    "HfJsonTokenizer": "0.15",  # the byte-level BPE graph: absent from 0.13.0; 0.14.0 runs it with other tokens
}
CONTRIB_MEASURED = frozenset(  # com.microsoft operators of the measured bundles, each run on ONNX_FLOOR
    {
        "Attention",
        "BiasGelu",
        "EmbedLayerNormalization",
        "SkipLayerNormalization",
        "QAttention",
        "QEmbedLayerNormalization",
    }  # fmt: skip
)
CONTRIB_DOMAIN, EXTENSIONS_DOMAIN = "com.microsoft", "ai.onnx.contrib"


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


def onnx_needs(path: Path) -> dict:
    """What an .onnx file asks of the runtime, read from the file itself."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    opsets = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
    contrib = sorted({n.op_type for n in model.graph.node if n.domain == CONTRIB_DOMAIN})
    extensions = sorted({n.op_type for n in model.graph.node if n.domain == EXTENSIONS_DOMAIN})
    unmeasured = [op for op in contrib if op not in CONTRIB_MEASURED]
    measured = (
        model.ir_version <= ONNX_MAX_IR
        and opsets.get("ai.onnx", 0) <= ONNX_MAX_OPSET
        and set(opsets) <= {"ai.onnx", CONTRIB_DOMAIN, EXTENSIONS_DOMAIN}
        and not unmeasured
    )
    needs: dict = {"ir_version": model.ir_version, "opsets": opsets, "contrib_operators": contrib}
    floor = max((EXTENSIONS_OP_FLOORS.get(op, EXTENSIONS_FLOOR) for op in extensions), key=version_tuple, default=None)
    needs["onnxruntime_extensions"] = {"operators": extensions, "min_version": floor} if extensions else None
    return needs | _floor(ONNX_FLOOR if measured else None, "onnx")


def ort_needs(runtime_optimized: bool) -> dict:
    """What an .ort file asks of the runtime: its format, and saved runtime optimizations when the
    converter's ``Runtime`` style wrote them (what NNAPI and Core ML need), which only releases close
    to the writer's replay."""
    floor = ORT_RUNTIME_OPT_FLOOR if runtime_optimized else ORT_FLOOR
    return {"format": "ort", "runtime_optimizations": runtime_optimized} | _floor(floor, "ort")


def _floor(measured_floor: str | None, kind: str) -> dict:
    import onnxruntime

    running = onnxruntime.__version__
    if measured_floor is not None and running == MEASURED_WITH:
        basis = f"measured: runs on onnxruntime {measured_floor}, not on the release before"
        if measured_floor == OLDEST_CHECKED:
            basis = f"measured: runs on onnxruntime {measured_floor}, the oldest release checked"
        return {"min_onnxruntime": measured_floor, "basis": basis}
    reason = f"written by onnxruntime {running}, which the floors were not measured with" if measured_floor else (
        f"this {kind} file uses an IR version, opset or operator beyond what was measured")  # fmt: skip
    return {"min_onnxruntime": ".".join(running.split(".")[:2]), "basis": f"unchecked further back: {reason}"}


def needs_of(path: Path, runtime_optimized: bool = False) -> dict:
    return ort_needs(runtime_optimized) if path.suffix == ".ort" else onnx_needs(path)
