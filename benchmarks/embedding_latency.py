"""Latency of the embedding student against its teacher, side by side at batch 1: the teacher
(all-MiniLM-L6-v2 as a sentence-embedding model) through Optimum's O2 + avx512_vnni dynamic INT8
(``ORTModelForFeatureExtraction``, what sentence-transformers' ONNX backend exports), and our ``export
--task embedding`` bundle of the best student from ``embedding_distill.py`` (its fp32 and INT8 files,
pooling in the graph; at each thread count the files its deployment table names). Lengths 16 and 128 and
every STS-B dev sentence at its own length; 1 and 2 threads; a fresh process per figure, variants
interleaved in rotated order, the median over rounds of each process's median (``latency.py``'s timer).

Target (issue 38): student INT8 / teacher INT8 through Optimum <= 0.5 at 1 and 2 threads, lengths 16 and 128.

    python benchmarks/embedding_latency.py [--rounds 3] [--runs 200] [--threads 1,2]
"""

from __future__ import annotations

from pathlib import Path

from _models import ROOT, WORK, write_result
from _side_by_side import STUDENT, TEACHER, parse_args, side_by_side, token_ids_file
from export_latency import optimum_pipeline
from latency import deployed

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
    texts = read_embedding_data(DataSpec(str(STSB)), "dev", None, 0).texts
    return token_ids_file(texts, tokenizer_dir, "stsb-dev")


def main() -> None:
    from codir_edge.models.checkpoint import default_backbone

    args = parse_args(__doc__.splitlines()[0])
    teacher = Path(default_backbone())
    optimum = WORK / "optimum-embedding-teacher" / "quantized" / "model_optimized_quantized.onnx"
    if not optimum.is_file():
        optimum = optimum_pipeline(teacher, "embedding-teacher", feature_extraction=True)[0]["optimum O2 int8"]
    bundle = student_bundle()
    sentences = sts_ids(teacher)

    def variants(threads: int) -> dict[str, Path]:  # the student's files as its deployment table names them
        return {TEACHER: optimum, "student ours fp32": deployed(bundle, "fp32", threads),
                STUDENT: deployed(bundle, "int8", threads)}  # fmt: skip

    seqs = {seq: str(sentences) if seq == "real" else str(seq) for seq in SEQS}
    threads = [int(t) for t in args.threads.split(",")]
    rows, ratios = side_by_side(variants, seqs, threads, args.rounds, args.runs, args.warmup)
    write_result("embedding_latency", {"rounds": args.rounds, "runs": args.runs, "rows": rows, "ratios": ratios})


if __name__ == "__main__":
    main()
