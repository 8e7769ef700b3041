"""Latency of the NER student against its teacher, side by side at batch 1: the teacher (the bundled
MiniLM fine-tuned as a tagger by ``ner_distill.py``) through Optimum's O2 + avx512_vnni dynamic INT8
(``ORTModelForTokenClassification``, what a user without this tool would ship), and our ``export --task
ner`` bundle of the best student (its fp32 and INT8 files, at each thread count the ones its deployment
table names), as results/ner_distill.json names it.
Length 64 (the issue's) and every CoNLL-2003 dev sentence at its own length; 1 and 2 threads; a fresh
process per figure, variants interleaved in rotated order, the median over rounds of each process's
median (``latency.py``'s timer).

Target (issue 39): student INT8 / teacher INT8 through Optimum <= 0.5 at 1 and 2 threads, length 64.

    python benchmarks/ner_latency.py [--rounds 3] [--runs 200] [--threads 1,2]
"""

from __future__ import annotations

import json
from pathlib import Path

from _models import RESULTS, ROOT, WORK, write_result
from _side_by_side import STUDENT, TEACHER, parse_args, side_by_side, token_ids_file
from export_latency import optimum_pipeline
from latency import deployed

SEQS: tuple[int | str, ...] = (64, "real")
CONLL = ROOT.parent / "shared" / "data" / "conll2003"
SAVED = WORK / "ner_distill"


def dev_ids(tokenizer_dir: Path) -> Path:
    """CoNLL-2003 dev sentences' token ids (truncated at 128) as JSON for the timer."""
    from codir_edge.data.ner import read_tagged

    texts = read_tagged(CONLL, "dev").texts
    return token_ids_file(texts, tokenizer_dir, "conll-dev")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    distilled = RESULTS / "ner_distill.json"
    if not distilled.is_file():
        raise SystemExit("no NER teacher or bundle: run benchmarks/ner_distill.py first")
    teacher, bundle = SAVED / "teacher", ROOT / json.loads(distilled.read_text())["bundle"]["path"]
    optimum = WORK / "optimum-ner-teacher" / "quantized" / "model_optimized_quantized.onnx"
    if not optimum.is_file():
        optimum = optimum_pipeline(teacher, "ner-teacher", token_classification=True)[0]["optimum O2 int8"]
    sentences = dev_ids(teacher)

    def variants(threads: int) -> dict[str, Path]:  # the student's files as its deployment table names them
        return {TEACHER: optimum, "student ours fp32": deployed(bundle, "fp32", threads),
                STUDENT: deployed(bundle, "int8", threads)}  # fmt: skip

    seqs = {seq: str(sentences) if seq == "real" else str(seq) for seq in SEQS}
    threads = [int(t) for t in args.threads.split(",")]
    rows, ratios = side_by_side(variants, seqs, threads, args.rounds, args.runs, args.warmup)
    deployment = json.loads((bundle / "manifest.json").read_text()).get("deployment", {}).get("threads")
    write_result("ner_latency", {"rounds": args.rounds, "runs": args.runs, "rows": rows, "ratios": ratios,
                                 "deployment": deployment})  # fmt: skip


if __name__ == "__main__":
    main()
