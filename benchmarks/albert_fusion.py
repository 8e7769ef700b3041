"""ALBERT's first layer through onnxruntime's attention fusion, before and after ``export/graph.py``'s
``attention_output_first``, side by side at batch 1.

onnxruntime's fusion walks up from a residual Add to its first Add parent; ALBERT's first layer adds the
embedding-to-hidden projection (MatMul, Add) there, so its attention stayed unfused. The graph is a
random ALBERT classifier at albert-base-v2's configuration (768 wide, 12 heads, 3072 FFN, 128-wide
embeddings), 3 layers as a student would be, exported by the exporter export uses; "before" is the
fused graph onnxruntime's optimizer makes of it as it is, "after" the one ``fuse`` makes (inputs of that
Add swapped). Both are quantized as export's dynamic per-channel candidate, and timed in alternating
order, a fresh session per round, at lengths 16 and 128, 1 and 2 threads; the paired ratio is the median
over rounds of each round's after / before.

    python benchmarks/albert_fusion.py [--rounds 7] [--runs 40]

Writes results/albert_fusion.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _models import paired_ratio, write_result

BASE = {"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072, "embedding_size": 128,
        "num_hidden_layers": 3, "vocab_size": 30000, "num_labels": 2}  # fmt: skip


def graphs(folder: Path) -> dict[str, Path]:
    """before/after: the fused, dynamically quantized graphs of one random base-config ALBERT."""
    import torch
    from onnxruntime.transformers.fusion_options import FusionOptions
    from transformers import AlbertConfig, AutoModelForSequenceClassification

    from codir_edge.export.graph import _optimize, fuse, operator_counts
    from codir_edge.onnx.graph import dynamic_int8, export_fp32

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(AlbertConfig(**BASE), attn_implementation="eager").eval()
    fp32 = folder / "fp32.onnx"
    export_fp32(model, fp32)
    fused = {"before": folder / "before.onnx", "after": folder / "after.onnx"}
    _optimize(fp32, fused["before"], "bert", 12, 768, opt_level=0, optimization_options=FusionOptions("bert"))
    fuse(fp32, fused["after"], "bert", 12, 768)
    out = {}
    for name, path in fused.items():
        out[name] = folder / f"{name}.int8.onnx"
        dynamic_int8(path, out[name], target="native", fused=True)
        print(name, "fused Attention:", operator_counts(path)["Attention"])
    return out


def timed(files: dict[str, Path], rounds: int, runs: int) -> list[dict]:
    import numpy as np

    from codir_edge.onnx.session import create_session

    rows = []
    for threads in (1, 2):
        for length in (16, 128):
            ids = np.random.default_rng(0).integers(5, 29000, (1, length))
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
            per = {name: [] for name in files}
            for round_no in range(rounds):
                for name in list(files) if round_no % 2 == 0 else list(reversed(files)):
                    session = create_session(files[name], threads)
                    for _ in range(5):
                        session.run(None, feed)
                    times = []
                    for _ in range(runs):
                        start = time.perf_counter()
                        session.run(None, feed)
                        times.append((time.perf_counter() - start) * 1000)
                    per[name].append(statistics.median(times))
                    del session
            paired = paired_ratio(per["after"], per["before"])
            rows.append({"threads": threads, "length": length, "before_ms": statistics.median(per["before"]),
                         "after_ms": statistics.median(per["after"]), "paired_after_over_before": paired,
                         "rounds_ms": per})  # fmt: skip
            print(rows[-1]["threads"], rows[-1]["length"], f"{paired:.3f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    import onnx

    with tempfile.TemporaryDirectory(prefix="albert-fusion-") as tmp:
        files = graphs(Path(tmp))
        counts = {name: sum(n.op_type == "QAttention" for n in onnx.load(str(path)).graph.node)
                  for name, path in files.items()}  # fmt: skip
        rows = timed(files, args.rounds, args.runs)
    write_result("albert_fusion", {"config": BASE, "qattention": counts, "rows": rows, "rounds": args.rounds,
                                   "runs": args.runs})  # fmt: skip


if __name__ == "__main__":
    main()
