"""The onnxruntime session settings every measurement and every ONNX evaluation uses, in one place,
so that latency and accuracy are taken from identically configured sessions."""

from __future__ import annotations

from pathlib import Path


def session_options(threads: int):
    """``threads`` intra-op threads, one inter-op thread, sequential execution, all graph optimisations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def create_session(path: Path, threads: int, provider: str = "CPUExecutionProvider"):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), session_options(threads), providers=[provider])
