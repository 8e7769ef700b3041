"""Latency of the embedding student against its teacher, side by side at batch 1: the teacher
(all-MiniLM-L6-v2 as a sentence-embedding model) through Optimum's O2 + avx512_vnni dynamic INT8
(``ORTModelForFeatureExtraction``, what sentence-transformers' ONNX backend exports), and our
``export --task embedding`` bundle of the best student from ``embedding_distill.py`` (its fp32 and
INT8 files, pooling in the graph). Lengths 16 and 128 and every STS-B dev sentence at its own
length; 1 and 2 threads; a fresh process per figure, variants interleaved in rotated order, the
median over rounds of each process's median (``latency.py``'s timer).

Target (issue 38): student INT8 / teacher INT8 through Optimum <= 0.5 at 1 and 2 threads, lengths 16 and 128.

    python benchmarks/embedding_latency.py [--rounds 3] [--runs 200] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from _models import ROOT, WORK, rotated, write_result
from export_latency import optimum_pipeline
from latency import time_variant

SEQS: tuple[int | str, ...] = (16, 128, "real")
STSB = ROOT.parent / "shared" / "data" / "glue" / "STS-B"


def student_bundle() -> Path:
    """The bundle embedding_distill.py exported (run it first)."""
    bundle = WORK / "embedding_distill" / "bundle"
    if not (bundle / "manifest.json").is_file():
        raise SystemExit("no embedding bundle: run benchmarks/embedding_distill.py first")
    return bundle


def sts_ids(tokenizer_dir: Path) -> Path:
    """STS-B dev sentences' token ids (truncated at 128) as JSON for the timer."""
    from codir_edge.data import DataSpec
    from codir_edge.data.embedding import read_embedding_data
    from codir_edge.models.loading import load_tokenizer

    texts = read_embedding_data(DataSpec(str(STSB)), "dev", None, 0).texts
    path = WORK / "stsb-dev-ids.json"
    path.write_text(json.dumps(load_tokenizer(tokenizer_dir)(texts, truncation=True, max_length=128)["input_ids"]))
    return path


def main() -> None:
    from codir_edge.models.checkpoint import default_backbone

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    teacher = Path(default_backbone())
    optimum = WORK / "optimum-embedding-teacher" / "quantized" / "model_optimized_quantized.onnx"
    if not optimum.is_file():
        optimum = optimum_pipeline(teacher, "embedding-teacher", feature_extraction=True)[0]["optimum O2 int8"]
    bundle = student_bundle()
    sentences = sts_ids(teacher)
    variants = {"teacher Optimum O2 int8": optimum, "student ours fp32": bundle / "onnx" / "model.onnx",
                "student ours int8": bundle / "onnx" / "model_quantized.onnx"}  # fmt: skip
    rows, ratios = [], []
    for threads in (int(t) for t in args.threads.split(",")):
        for seq in SEQS:
            seq_arg = str(sentences) if seq == "real" else str(seq)
            measured: dict[str, list[dict]] = {name: [] for name in variants}
            for r in range(args.rounds):
                for name in rotated(list(variants), r):
                    measured[name].append(time_variant("onnx", variants[name], threads, seq_arg, args.runs,
                                                       args.warmup))  # fmt: skip
            got = {}
            for name, runs in measured.items():
                got[name] = statistics.median(m["median_ms"] for m in runs)
                rows.append({"variant": name, "threads": threads, "seq": seq, "median_ms": got[name],
                             "p95_ms": statistics.median(m["p95_ms"] for m in runs), "rounds": runs,
                             "file": str(variants[name].relative_to(ROOT))})  # fmt: skip
            ratio = got["student ours int8"] / got["teacher Optimum O2 int8"]
            ratios.append({"threads": threads, "seq": seq, "student_int8_over_teacher_optimum_int8": ratio})
            print(f"threads {threads} seq {seq}: " + "  ".join(f"{k} {v:.3f} ms" for k, v in got.items())
                  + f"  ratio {ratio:.3f}", flush=True)  # fmt: skip
    write_result("embedding_latency", {"rounds": args.rounds, "runs": args.runs, "rows": rows, "ratios": ratios})


if __name__ == "__main__":
    main()
