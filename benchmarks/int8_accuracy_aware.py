"""Accuracy-aware INT8 on a model damaged on purpose: an activation outlier that ruins one MatMul.

A MiniLM SST-2 classifier (fine-tuned here on 8,000 sentences, 1 epoch, unless an earlier run left
it under benchmarks/.work) gets one feature of one layer's attention values scaled up by
``--outlier`` and the matching input column of the attention output projection scaled down by the
same factor: attention is linear in the values, so fp32 computes the same function, but the dynamic
INT8 quantization of that projection's input (u8, one range per tensor) now spends its 256 levels on
one feature and rounds the rest away, which is the failure users report for real BERT checkpoints.

Both models are exported with ``--task sst2 --data``, plain graph, dynamic INT8, one thread, and the
script records: the fully quantized drop, which MatMuls the search kept in fp32, the drop reached,
the trials it took, and the latency of the mixed INT8 graph against the healthy model's fully
quantized one (same shapes), timed side by side at length 128 and on real dev sentences.

    python benchmarks/int8_accuracy_aware.py [--outlier 1000] [--layer 2] [--limit 1.0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _models import ROOT, WORK, write_result

from codir_edge.bundle import layout

GLUE_SST2 = ROOT.parent / "shared" / "data" / "glue" / "SST-2"
FEATURE = 7  # which value feature becomes the outlier (any one does)


def teacher() -> Path:
    out = WORK / "aa-teacher"
    if not (out / "config.json").is_file():
        subprocess.run(  # the bundled all-MiniLM-L6-v2 is finetune's default model
            [sys.executable, "-m", "codir_edge", "finetune", "--task", "sst2", "--data",
             str(GLUE_SST2), "--out", str(out), "--epochs", "1", "--max-train-samples", "8000", "--max-length",
             "64", "--overwrite", "--quiet"],
            check=True, cwd=ROOT,
        )  # fmt: skip
    return out


def damaged(source: Path, layer: int, outlier: float) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = WORK / f"aa-damaged-l{layer}-x{outlier:g}"
    model = AutoModelForSequenceClassification.from_pretrained(source).eval()
    attention = model.bert.encoder.layer[layer].attention
    with torch.no_grad():
        attention.self.value.weight[FEATURE] *= outlier
        attention.self.value.bias[FEATURE] *= outlier
        attention.output.dense.weight[:, FEATURE] /= outlier
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    (out / "metrics.json").write_text(json.dumps({"task": "sst2"}))
    return out


def export(model_dir: Path, name: str, limit: float) -> tuple[dict, float]:
    import time

    out = WORK / f"aa-bundle-{name}"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "codir_edge", "export", str(model_dir), "--out", str(out), "--overwrite", "--task",
         "sst2", "--data", str(GLUE_SST2), "--quantize", "dynamic", "--no-optimize", "--tune-threads", "1",
         "--no-ort", "--no-tokenizer-in-graph", "--max-accuracy-drop", str(limit), "--quiet"],
        check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads((out / "manifest.json").read_text()), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outlier", type=float, default=1000.0)
    parser.add_argument("--layer", type=int, default=2)
    parser.add_argument("--limit", type=float, default=1.0)
    args = parser.parse_args()
    from codir_edge.export.tune import Setting, time_candidates

    healthy_dir = teacher()
    broken_dir = damaged(healthy_dir, args.layer, args.outlier)
    healthy, healthy_s = export(healthy_dir, "healthy", args.limit)
    broken, broken_s = export(broken_dir, "damaged", args.limit)
    by_name = {v["name"]: v for v in broken["variants"]}
    healthy_int8 = next(v for v in healthy["variants"] if v["name"] == "int8")
    int8 = by_name["int8"]
    search = int8.get("accuracy_search", {})
    files = {
        "healthy int8 (all quantized)": WORK / "aa-bundle-healthy" / layout.INT8,
        "damaged int8 (mixed)": WORK / "aa-bundle-damaged" / layout.INT8,
        "damaged fp32": WORK / "aa-bundle-damaged" / layout.FP32,
    }
    from codir_edge.data import DataSpec, get_task, load_split
    from codir_edge.models.loading import load_tokenizer

    task = get_task("sst2")
    dev = load_split(task, DataSpec(str(GLUE_SST2)), "dev", list(task.labels))
    ids = load_tokenizer(healthy_dir)(dev.texts[::40], truncation=True, max_length=128)["input_ids"]
    settings = [Setting(1, 128), Setting(1, "real")]
    timed = time_candidates(files, settings, vocab=30000, real_rows=ids, rounds=7, runs=30)
    result = {
        "model": "all-MiniLM-L6-v2 fine-tuned on 8,000 SST-2 sentences, 1 epoch",
        "damage": {"layer": args.layer, "feature": FEATURE, "outlier": args.outlier},
        "limit_points": args.limit,
        "fp32_accuracy": by_name["fp32"]["accuracy"]["accuracy"],
        "healthy_int8_drop": healthy_int8["accuracy_drop_points"],
        "drop_fully_quantized": search.get("drop_before"),
        "kept_in_float": int8.get("keep_float", []),
        "quantized_matmuls": search.get("quantized_matmuls"),
        "drop_after": int8["accuracy_drop_points"],
        "trials": search.get("trials"),
        "ranking_top": search.get("ranking", [])[:5],
        "rejected": broken["tuning"].get("rejected_int8"),
        "export_seconds": {"healthy": healthy_s, "damaged": broken_s},
        "latency_ms": {k: {n: v["median_ms"] for n, v in row.items()} for k, row in timed.items()},
        "latency_spread_ms": {k: {n: v["spread_ms"] for n, v in row.items()} for k, row in timed.items()},
    }
    print(json.dumps({k: v for k, v in result.items() if k != "trials"}, indent=1))
    print(f"wrote {write_result('int8_accuracy_aware', result)}")


if __name__ == "__main__":
    main()
