"""The demo's bundle in the clients apps use, as exported: transformers.js in Node on every SST-2 dev
sentence and in headless Chromium (onnxruntime-web's wasm) on the first 100, with dtype fp32 and q8,
against onnxruntime in Python with the bundle's tokenizer, one text per call; the client versions
and each file's runtime claims from the manifest.

    python benchmarks/apps.py     (needs `npm ci --prefix examples/apps` and Chromium)

The bundle is the demo's student exported with the demo's settings into benchmarks/.work/apps
(kept, and reused when re-run). Writes results/apps.json.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import numpy as np
from _models import ROOT, WORK, demo_student, write_result

APPS = ROOT / "examples" / "apps"
GLUE = ROOT.parent / "shared" / "data" / "glue" / "SST-2"
FILES = {"fp32": "onnx/model.onnx", "q8": "onnx/model_quantized.onnx"}
BROWSER_TEXTS = 100


def bundle():
    out = WORK / "apps" / "bundle"
    manifest = out / "manifest.json"
    if not manifest.is_file() or json.loads(manifest.read_text()).get("format_version", 0) < 3:
        command = [sys.executable, "-m", "codir_edge", "export", str(demo_student()), "--out", str(out), "--task",
                   "sst2", "--data", str(GLUE), "--max-length", "128", "--overwrite", "-q"]  # fmt: skip
        subprocess.run(command, cwd=ROOT, check=True)
    return out


def python_rows(folder, file: str, texts: list[str]) -> list[dict]:
    from transformers import AutoTokenizer

    from codir_edge.onnx.session import create_session

    tokenizer = AutoTokenizer.from_pretrained(folder)
    labels = json.loads((folder / "labels.json").read_text())
    session = create_session(folder / file, 1)
    rows = []
    for text in texts:
        feed = {k: v.astype(np.int64) for k, v in tokenizer(text, truncation=True, return_tensors="np").items()}
        logits = session.run(None, feed)[0][0]
        probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        rows.append({"label": labels[int(probabilities.argmax())], "score": float(probabilities.max())})
    return rows


def compare(got: list[dict], expected: list[dict]) -> dict:
    return {
        "texts": len(expected),
        "labels_equal": sum(g["label"] == e["label"] for g, e in zip(got, expected, strict=True)),
        "max_score_diff": max(abs(g["score"] - e["score"]) for g, e in zip(got, expected, strict=True)),
    }


def node(*args: str, stdin: str | None = None) -> tuple[str, float]:
    started = time.perf_counter()
    done = subprocess.run(["node", *args], cwd=APPS, input=stdin, capture_output=True, text=True, check=True)
    return done.stdout, time.perf_counter() - started


def client_versions() -> dict:
    lock = json.loads((APPS / "package-lock.json").read_text())["packages"]
    names = ("@huggingface/transformers", "onnxruntime-node", "onnxruntime-web", "playwright-core")
    versions = {name: lock[f"node_modules/{name}"]["version"] for name in names}
    versions["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    chromium = shutil.which("chromium") or "chromium"
    versions["chromium"] = subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout.strip()
    return versions


def main() -> None:
    folder = bundle()
    lines = (GLUE / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    texts = [line.split("\t")[0] for line in lines]
    (WORK / "apps" / "browser_texts.json").write_text(json.dumps(texts[:BROWSER_TEXTS]))
    results = {}
    for dtype, file in FILES.items():
        expected = python_rows(folder, file, texts)
        out, node_s = node("node/classify.mjs", str(folder), "--dtype", dtype, stdin="\n".join(texts) + "\n")
        in_node = compare([json.loads(line) for line in out.splitlines()], expected)
        out, browser_s = node("web/drive.mjs", str(folder), str(WORK / "apps" / "browser_texts.json"), "--dtype",
                              dtype, "--chromium", shutil.which("chromium") or "/usr/bin/chromium")  # fmt: skip
        driven = json.loads(out)
        in_browser = compare(driven["rows"], expected[:BROWSER_TEXTS]) | {"outside_requests": len(driven["outside"])}
        results[dtype] = {"file": file, "node": in_node | {"wall_s": node_s},
                          "browser": in_browser | {"wall_s": browser_s}}  # fmt: skip
        print(dtype, results[dtype])
    manifest = json.loads((folder / "manifest.json").read_text())
    claims = {v["file"]: v.get("runtime", {}) for v in manifest["variants"]}
    sizes = {f["path"]: f["size"] for f in manifest["files"]}
    write_result("apps", {"results": results, "clients": client_versions(), "claims": claims, "sizes": sizes})


if __name__ == "__main__":
    main()
