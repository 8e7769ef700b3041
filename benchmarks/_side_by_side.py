"""A student's files against its teacher's Optimum INT8 graph, side by side at batch 1: every variant
timed in a fresh process per figure, interleaved in rotated order, the median over rounds of each
process's median (``latency.py``'s timer). Shared by the embedding and NER latency benchmarks."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

from _models import ROOT, rotated, timing_parser
from latency import time_variant

TEACHER = "teacher Optimum O2 int8"
STUDENT = "student ours int8"


def side_by_side(variants: dict[str, Path] | Callable[[int], dict[str, Path]], seqs: dict[int | str, str],
                 threads: list[int], rounds: int, runs: int, warmup: int) -> tuple[list[dict], list[dict]]:  # fmt: skip
    """(rows, ratios): each variant's median and p95 per (threads, seq), and the student INT8 / teacher
    INT8 ratio; ``seqs`` maps a length's name to the timer's argument (a length, or a file of token ids).
    ``variants`` may be a function of the thread count: a bundle's files as its deployment table
    names them there."""
    rows, ratios = [], []
    for_threads = variants if callable(variants) else (lambda _: variants)
    for thread_count in threads:
        variants = for_threads(thread_count)
        for seq, seq_arg in seqs.items():
            measured: dict[str, list[dict]] = {name: [] for name in variants}
            for r in range(rounds):
                for name in rotated(list(variants), r):
                    measured[name].append(time_variant("onnx", variants[name], thread_count, seq_arg, runs, warmup))
            got = {}
            for name, timed in measured.items():
                got[name] = statistics.median(m["median_ms"] for m in timed)
                rows.append({"variant": name, "threads": thread_count, "seq": seq, "median_ms": got[name],
                             "p95_ms": statistics.median(m["p95_ms"] for m in timed), "rounds": timed,
                             "file": str(variants[name].relative_to(ROOT))})  # fmt: skip
            ratio = got[STUDENT] / got[TEACHER]
            ratios.append({"threads": thread_count, "seq": seq, "student_int8_over_teacher_optimum_int8": ratio})
            print(f"threads {thread_count} seq {seq}: " + "  ".join(f"{k} {v:.3f} ms" for k, v in got.items())
                  + f"  ratio {ratio:.3f}", flush=True)  # fmt: skip
    return rows, ratios


def parse_args(description: str):
    """The options every side-by-side benchmark takes."""
    return timing_parser(description).parse_args()


def token_ids_file(texts: list[str], tokenizer_dir: Path, name: str) -> Path:
    """``texts``' token ids (truncated at 128) as JSON for the timer's real-sentence runs."""
    import json

    from _models import WORK

    from codir_edge.models.loading import load_tokenizer

    path = WORK / f"{name}-ids.json"
    path.write_text(json.dumps(load_tokenizer(tokenizer_dir)(texts, truncation=True, max_length=128)["input_ids"]))
    return path
