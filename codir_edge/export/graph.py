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
    import onnx
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions(optimizer_type)
    options.enable_attention = attention
    model = onnx.load(str(model_path))
    attention_output_first(model)
    _optimize(model, out_path, optimizer_type, num_heads, hidden_size, opt_level=0, optimization_options=options)
    return operator_counts(out_path)


def attention_output_first(model) -> int:
    """Put the attention block's output first in each residual Add before a LayerNormalization (in place;
    how many were swapped). onnxruntime's attention fusion walks up from that Add to the first parent that
    is an Add, and takes it for the attention output's bias Add; where the residual is itself an Add's
    output, as ALBERT's first layer reads its embedding-to-hidden projection (MatMul, Add), the walk goes
    up the wrong side and that layer's attention stays unfused (0 of 1 at one layer, 2 of 3 at three).
    Add is commutative, so the graph computes the same."""
    producer = {output: node for node in model.graph.node for output in node.output}
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def parent(name: str, op: str):
        node = producer.get(name)
        return node if node is not None and node.op_type == op else None

    def is_attention_output(name: str) -> bool:  # Add <- MatMul <- Reshape <- Transpose <- MatMul
        add = parent(name, "Add")
        for matmul in (parent(i, "MatMul") for i in (add.input if add is not None else ())):
            reshape = parent(matmul.input[0], "Reshape") if matmul is not None else None
            transpose = parent(reshape.input[0], "Transpose") if reshape is not None else None
            if transpose is not None and parent(transpose.input[0], "MatMul") is not None:
                return True
        return False

    swapped = 0
    for node in model.graph.node:
        if (node.op_type == "Add" and len(node.input) == 2
                and any(r.op_type == "LayerNormalization" for r in readers.get(node.output[0], ()))
                and parent(node.input[0], "Add") is not None and not is_attention_output(node.input[0])
                and is_attention_output(node.input[1])):  # fmt: skip
            node.input[0], node.input[1] = node.input[1], node.input[0]
            swapped += 1
    return swapped


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


def _optimize(model_path, out_path: Path, optimizer_type: str, num_heads: int, hidden_size: int,
              **options) -> None:  # fmt: skip
    """onnxruntime's transformer optimizer on a file or a loaded ModelProto, its chatter silenced, the result
    written to ``out_path``."""
    from onnxruntime.transformers import optimizer

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        source = model_path if not isinstance(model_path, (str, Path)) else str(model_path)
        optimized = optimizer.optimize_model(source, model_type=optimizer_type, num_heads=num_heads,
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
