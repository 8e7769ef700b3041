"""The oldest onnxruntime each kind of bundle file runs on: the demo's bundle (the one
``benchmarks/apps.py`` exports) run on the last patch release of every onnxruntime minor version on
PyPI for this Python, each in its own virtual environment (with numpy<2 and onnxruntime-extensions
0.13.0), its outputs held to today's onnxruntime. This is where ``codir_edge/onnx/runtime_needs.py``'s
floors come from; the suite re-checks them on a tiny bundle in CI.

    python benchmarks/runtime_floor.py

Each release's environment is kept under benchmarks/.work/runtimes and its result saved, so a re-run
only measures what is missing. Writes results/runtime_floor.json.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from _models import ROOT, WORK, write_result

RELEASES = ("1.15.1", "1.16.3", "1.17.3", "1.18.1", "1.19.2", "1.20.1", "1.21.1", "1.22.1", "1.23.2", "1.24.4",
            "1.25.1", "1.26.0", "1.27.0", "1.28.0", "1.29.0", "1.30.0", "1.31.1", "1.32.0")  # fmt: skip
RUNNER = ROOT / "tests" / "runtimes" / "run_files.py"
SAVED = WORK / "runtimes"


def side_python(version: str):
    folder = SAVED / f"onnxruntime-{version}"
    python = folder / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        packages = [f"onnxruntime=={version}", "numpy<2", "onnxruntime-extensions==0.13.0"]
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return python


def feeds(bundle) -> dict:
    """Every file's inputs for two SST-2-like sentences (the fixed-shape ones padded to their shape)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bundle)
    texts = ["a gripping , beautifully acted film", "the plot is thin and the jokes fall flat"]
    out = {}
    for variant in json.loads((bundle / "manifest.json").read_text())["variants"]:
        if variant.get("takes") == "text":
            out[variant["file"]] = {"text": texts[:1]}
            continue
        shape = variant.get("fixed_shape")
        batch = tokenizer(texts[: shape[0]], padding="max_length", max_length=shape[1], truncation=True) if shape \
            else tokenizer(texts, padding=True)  # fmt: skip
        out[variant["file"]] = {k: [list(map(int, row)) for row in v] for k, v in batch.items()}
    return out


def oldest_from(runs: dict, file: str) -> str | None:
    """The oldest release from which every later one runs the file with today's outputs."""
    good = [runs[v][file] == "runs, same outputs" for v in RELEASES]
    for i, version in enumerate(RELEASES):
        if all(good[i:]):
            return version
    return None


def main() -> None:
    from apps import bundle as demo_bundle

    bundle = demo_bundle()
    request = SAVED / "request.json"
    SAVED.mkdir(parents=True, exist_ok=True)
    request.write_text(json.dumps({"bundle": str(bundle), "files": feeds(bundle)}))
    reference = json.loads(subprocess.run([sys.executable, str(RUNNER), str(request)], capture_output=True,
                                          text=True, check=True).stdout)["files"]  # fmt: skip
    runs = {}
    for version in RELEASES:
        saved = SAVED / f"result-{version}.json"
        if not saved.is_file():
            done = subprocess.run([str(side_python(version)), str(RUNNER), str(request)], capture_output=True,
                                  text=True, check=True)  # fmt: skip
            saved.write_text(done.stdout)
        files = json.loads(saved.read_text())["files"]
        runs[version] = {
            file: "error: " + got["error"] if "error" in got else
            ("runs, same outputs" if np.allclose(got["output"], reference[file]["output"], atol=1e-4)
             else "runs, different outputs")
            for file, got in files.items()
        }  # fmt: skip
        print(version, runs[version])
    oldest = {file: oldest_from(runs, file) for file in reference}
    variants = json.loads((bundle / "manifest.json").read_text())["variants"]
    claims = {v["file"]: v["runtime"]["min_onnxruntime"] for v in variants}
    write_result("runtime_floor", {"releases": list(RELEASES), "runs": runs, "oldest": oldest, "claims": claims})


if __name__ == "__main__":
    main()
