"""The onnxruntime session settings every measurement and every ONNX evaluation uses, in one place,
so that latency and accuracy are taken from identically configured sessions."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from codir_edge.devices.runner import session_options  # the device runner holds them: one place

__all__ = ["create_session", "session_options"]


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
