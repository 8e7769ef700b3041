"""Run bundle files in whatever onnxruntime this interpreter has: the side environments of the
oldest-runtime test call it with a JSON request, so it imports nothing of codir-edge.

    python run_files.py REQUEST.json
    -> {"onnxruntime": "1.15.1", "files": {file: {"output": [...]} or {"error": "..."}}}

REQUEST.json: {"bundle": DIR, "files": {file: {input name: [[ids]] or ["text"]}}}.
"""

import json
import sys

import numpy as np
import onnxruntime as ort


def run(bundle: str, file: str, feeds: dict) -> dict:
    options = ort.SessionOptions()
    if any(isinstance(v[0], str) for v in feeds.values()):
        from onnxruntime_extensions import get_library_path

        options.register_custom_ops_library(get_library_path())
    try:
        session = ort.InferenceSession(f"{bundle}/{file}", options, providers=["CPUExecutionProvider"])
        types = {i.name: np.int32 if i.type == "tensor(int32)" else np.int64 for i in session.get_inputs()}
        arrays = {k: np.array(v) if isinstance(v[0], str) else np.array(v, dtype=types.get(k, np.int64))
                  for k, v in feeds.items()}  # fmt: skip
        return {"output": session.run(None, arrays)[0].tolist()}
    except Exception as exc:  # onnxruntime raises its own (pybind) types
        return {"error": str(exc).splitlines()[0][:300]}


with open(sys.argv[1], encoding="utf-8") as handle:
    request = json.load(handle)
files = {file: run(request["bundle"], file, feeds) for file, feeds in request["files"].items()}
print(json.dumps({"onnxruntime": ort.__version__, "files": files}))
