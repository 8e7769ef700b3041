"""The onnxruntime session settings every measurement and every ONNX evaluation uses, in one place,
so that latency and accuracy are taken from identically configured sessions."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from codir_edge.core.errors import InputError, first_line
from codir_edge.core.runner import session_options  # the device runner holds them: one place

__all__ = ["check_onnx_file", "create_session", "session_options"]

ONNX_MAGIC_FIELDS = (b"\x08", b"\x12", b"\x1a", b"\x22", b"\x3a", b"\x42")  # first protobuf tag of a ModelProto


def create_session(path: Path, threads: int, provider: str = "CPUExecutionProvider", custom_ops: bool = False):
    """``custom_ops`` registers onnxruntime-extensions' operators, which a tokenizer-in-graph model needs."""
    import onnxruntime as ort

    options = session_options(threads)
    if not custom_ops:
        return ort.InferenceSession(str(path), options, providers=[provider])
    import onnxruntime_extensions

    options.register_custom_ops_library(onnxruntime_extensions.get_library_path())
    with _native_stderr_silenced():  # sentencepiece logs an INFO line on every model it loads
        return ort.InferenceSession(str(path), options, providers=[provider])


@contextlib.contextmanager
def _native_stderr_silenced():
    """File descriptor 2 to /dev/null while C++ code runs (its failures still arrive as exceptions)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 to begin with: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_onnx_file(path: Path) -> None:
    """Cheap checks that catch the common wrong files (an image named model.onnx, a truncated copy)
    before a worker process is spent on them; onnxruntime's own load is the final word."""
    if not path.is_file():
        raise InputError(f"{path} does not exist: pass an ONNX file, a bundle folder or a model folder")
    if path.stat().st_size < 16:
        raise InputError(f"{path} is too small to be an ONNX model: re-export it")
    with open(path, "rb") as handle:
        head = handle.read(16)
    is_ort_format = path.suffix.lower() == ".ort" and head[4:8] == b"ORTM"  # ONNX Runtime's mobile format
    if head[:1] not in ONNX_MAGIC_FIELDS and not is_ort_format:
        raise InputError(f"{path} is not an ONNX model (it starts with {head[:8]!r}): re-export it")
    import onnxruntime

    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise InputError(f"{path} cannot be loaded by onnxruntime ({first_line(exc)}): re-export it") from exc
