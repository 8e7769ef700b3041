"""Offline graph work with onnxruntime's transformer optimizer: fuse, count what fused.

The counts prove that the export is fusable (an export through SDPA attention shows Attention: 0)
and go into the manifest; whether the fused graph is *kept* is decided by measurement
(:mod:`codir_edge.export.tune`), because onnxruntime fuses at load time anyway.

``peer_o2`` is the graph a user without this tool makes: Optimum's ``AutoOptimizationConfig.O2()``
as ``ORTOptimizer`` applies it (onnxruntime's extended optimizations baked in offline, then the
transformer fusions with Optimum's options, EmbedLayerNormalization left unfused). The tuner times
it beside ours, so a shipped graph is never slower than the recipe a user would otherwise pick.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

FUSED_OPS = ("Attention", "MultiHeadAttention", "SkipLayerNormalization", "EmbedLayerNormalization",
             "BiasGelu", "FastGelu", "Gelu", "LayerNormalization")  # fmt: skip


def fuse(model_path: Path, out_path: Path, optimizer_type: str, num_heads: int, hidden_size: int,
         attention: bool = True) -> dict[str, int]:  # fmt: skip
    """Write the offline-fused graph to ``out_path`` and return the count of each fused operator.
    ``attention=False`` fuses LayerNorm, SkipLayerNorm and Gelu but leaves attention as MatMuls, which
    dynamic quantization then takes one by one (and the accuracy-aware search can keep in float)."""
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions(optimizer_type)
    options.enable_attention = attention
    _optimize(model_path, out_path, optimizer_type, num_heads, hidden_size, opt_level=0, optimization_options=options)
    return operator_counts(out_path)


def peer_o2(model_path: Path, out_path: Path, optimizer_type: str, num_heads: int, hidden_size: int) -> None:
    """Write Optimum's O2 graph of ``model_path``: its configuration object supplies the level and the
    fusion options, so the recipe follows the installed Optimum; the call is the one ``ORTOptimizer``
    makes for a CPU target."""
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    config = AutoOptimizationConfig.O2()
    _optimize(model_path, out_path, optimizer_type, num_heads, hidden_size, opt_level=config.optimization_level,
              optimization_options=config.create_fusion_options(optimizer_type), use_gpu=False,
              only_onnxruntime=not config.enable_transformers_specific_optimizations)  # fmt: skip
    _drop_unused_domains(out_path)


def _drop_unused_domains(path: Path) -> None:
    """onnxruntime's optimizer, at level 2, saves every opset domain it knows (training, preview,
    nchwc, aten) beside the ones the nodes use. They change nothing in the graph, but a runtime or a
    checker reads them as requirements: the file would claim onnxruntime 1.32 where its operators
    run on 1.15. Only the default domain and the ones a node uses are kept."""
    import onnx

    model = onnx.load(str(path))
    used = {node.domain for node in model.graph.node} | {"", "ai.onnx"}
    kept = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    onnx.save(model, str(path))


def _optimize(model_path: Path, out_path: Path, optimizer_type: str, num_heads: int, hidden_size: int,
              **options) -> None:  # fmt: skip
    """onnxruntime's transformer optimizer, its chatter silenced, the result written to ``out_path``."""
    from onnxruntime.transformers import optimizer

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        optimized = optimizer.optimize_model(str(model_path), model_type=optimizer_type, num_heads=num_heads,
                                             hidden_size=hidden_size, **options)  # fmt: skip
        optimized.save_model_to_file(str(out_path))


def operator_counts(model_path: Path) -> dict[str, int]:
    """How many of each fused operator the graph holds (zeros included, so a missing fusion shows)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    counts = dict.fromkeys(FUSED_OPS, 0)
    for node in graph.node:
        if node.op_type in counts:
            counts[node.op_type] += 1
    return counts
