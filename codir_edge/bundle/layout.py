"""Where each file of a bundle lives (format 3 on).

The graphs sit in ``onnx/`` under the names transformers.js looks for (``model.onnx`` for
``dtype: "fp32"``, ``model_quantized.onnx`` for ``"q8"``, ``model_fp16.onnx`` for ``"fp16"``), beside
``config.json`` and the tokenizer files at the top: ``pipeline(task, BUNDLE)`` then loads a bundle
as exported, with no copying by hand. Every reader goes through the manifest's ``file`` entries,
so bundles of the older flat layout (``model.onnx``, ``model.int8.onnx`` at the top) still load.
"""

from __future__ import annotations

from pathlib import Path

GRAPH_DIR = "onnx"
FP32 = f"{GRAPH_DIR}/model.onnx"
INT8 = f"{GRAPH_DIR}/model_quantized.onnx"  # the INT8 pick for one thread: what a browser tab and a phone use
FP16 = f"{GRAPH_DIR}/model_fp16.onnx"
STRINGS = f"{GRAPH_DIR}/model.strings.onnx"
ORT = f"{GRAPH_DIR}/model.ort"
OPS_CONFIG = f"{GRAPH_DIR}/required_operators.config"
INT8_FIXED = f"{GRAPH_DIR}/model_quantized.fixed.onnx"
COREML = f"{GRAPH_DIR}/model.coreml.onnx"  # fixed shapes, fp16 inside, for Core ML's MLProgram format
NNAPI = f"{GRAPH_DIR}/model.nnapi.onnx"  # fixed shapes, int32 ids, QDQ on 2-D MatMuls, for Android's NNAPI
ORT_FIXED = f"{GRAPH_DIR}/model_quantized.fixed.ort"
OPS_CONFIG_FIXED = f"{GRAPH_DIR}/required_operators.fixed.config"


def alternate(kind: str, suffix: str) -> str:
    """Another thread count's pick, named after its graph: ``onnx/model.fused.onnx``,
    ``onnx/model_quantized.fused.onnx``."""
    stem = FP32 if kind == "fp32" else INT8
    return stem.removesuffix(".onnx") + f".{suffix}.onnx"


def folder_of(model_file: Path) -> Path:
    """The folder whose manifest, config and tokenizer go with one graph file: the bundle above
    it when the file sits in a bundle's ``onnx/``, else the file's own folder (an older bundle, or a
    model folder a user put together)."""
    parent = model_file.absolute().parent  # absolute: "model.onnx" given from inside onnx/ is found too
    above = parent.parent
    in_graph_dir = parent.name == GRAPH_DIR and not (parent / "config.json").is_file()
    if in_graph_dir and ((above / "manifest.json").is_file() or (above / "config.json").is_file()):
        return above
    return parent
