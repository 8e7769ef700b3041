"""Latency side by side: the teacher in PyTorch eager, teacher and student through the Optimum
pipeline, and our bundles, at batch 1 with sequence lengths 16 and 128 and real SST-2 sentences,
1 and 2 threads, all in one run.

Every figure is a fresh process (``torch.set_num_threads`` / ``session_options(threads)``), the
variants interleaved round by round in a rotated order, and the figure is the median over rounds
of each process's median. "real" runs every SST-2 dev sentence once at its own length (the
tokenizer's, truncated at 128), so its median and p95 follow the real length distribution.

Targets (issue 6): the int8 student at most 0.5x the teacher through Optimum's int8 pipeline and at
least 6x faster than the teacher in PyTorch eager; on the same student, ours at most 0.9x Optimum's.

    python benchmarks/latency.py [--rounds 3] [--runs 200] [--threads 1,2]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

from _models import ROOT, WORK, paired_ratio, rotated, teacher_folder, timing_parser, write_result
from export_latency import GLUE_SST2, optimum_pipeline, ours, student_folder

SEQS: tuple[int | str, ...] = (16, 128, "real")
TIMER = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    kind, path, seq = sys.argv[1], sys.argv[2], sys.argv[4]
    threads, runs, warmup = (int(a) for a in (sys.argv[3], sys.argv[5], sys.argv[6]))
    if seq.isdigit():
        from codir_edge.core.inputs import synthetic_token_ids
        feeds_ids = [np.asarray(synthetic_token_ids(1, int(seq)), dtype=np.int64)] * (runs + warmup)
    else:
        ids = json.load(open(seq))
        feeds_ids = [np.array([row], dtype=np.int64) for row in ids]
        feeds_ids = feeds_ids[:warmup] + feeds_ids
    if kind == "torch":
        import torch
        from transformers import AutoModelForSequenceClassification
        torch.set_num_threads(threads)
        model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        def prepare(ids):
            t = torch.from_numpy(ids)
            return {"input_ids": t, "attention_mask": torch.ones_like(t), "token_type_ids": torch.zeros_like(t)}
        def run(feed):
            with torch.inference_mode():
                model(**feed)
    else:
        import onnxruntime as ort
        from codir_edge.onnx.session import session_options
        from codir_edge.core.inputs import to_feed
        session = ort.InferenceSession(path, session_options(threads), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        def prepare(ids):
            return to_feed(ids, names)
        def run(feed):
            session.run(None, feed)
    feeds = [prepare(ids) for ids in feeds_ids]  # built before timing: only the model call is timed
    for feed in feeds[:warmup]:
        run(feed)
    samples = []
    for feed in feeds[warmup:]:
        start = time.perf_counter_ns()
        run(feed)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    print(json.dumps({"median_ms": float(np.median(samples)), "p95_ms": float(np.percentile(samples, 95))}))
""")


def time_variant(kind: str, path: Path, threads: int, seq: str, runs: int, warmup: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", TIMER, kind, str(path), str(threads), seq, str(runs), str(warmup)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"timing {path} failed: {done.stderr.strip()[-400:]}")
    return json.loads(done.stdout)


def real_sentences(tokenizer_dir: Path) -> Path:
    """SST-2 dev token ids (one list per sentence, truncated at 128) as JSON for the timer."""
    from codir_edge.data import DataSpec, get_task, load_split
    from codir_edge.models.loading import load_tokenizer

    task = get_task("sst2")
    dev = load_split(task, DataSpec(str(GLUE_SST2)), "dev", list(task.labels))
    ids = load_tokenizer(tokenizer_dir)(dev.texts, truncation=True, max_length=128)["input_ids"]
    path = WORK / "sst2-dev-ids.json"
    path.write_text(json.dumps(ids))
    return path


def built(model_dir: Path, name: str) -> tuple[Path, Path]:
    """Our int8 bundle and Optimum's O2 int8 file, reusing earlier builds under benchmarks/.work."""
    bundle = WORK / f"bundle-{name}"
    manifest = bundle / "manifest.json"
    if not manifest.is_file() or "deployment" not in json.loads(manifest.read_text()):  # built before tuning
        bundle, _ = ours(model_dir, name)
    optimum = WORK / f"optimum-{name}" / "quantized" / "model_optimized_quantized.onnx"
    if not optimum.is_file():
        optimum = optimum_pipeline(model_dir, name)[0]["optimum O2 int8"]
    return bundle, optimum


def deployed(bundle: Path, kind: str, threads: int) -> Path:
    from codir_edge.bundle.manifest import read_manifest

    manifest = read_manifest(bundle)
    variant = next(v for v in manifest.variants if v.name == kind)
    return manifest.path_of(manifest.for_threads(variant, threads))


def chosen(bundle: Path) -> dict:
    """Per thread count, the candidate each kind shipped and every candidate's tuning medians."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    by_name = {v["name"]: v for v in manifest["variants"]}
    tuned = manifest["tuning"]
    return {
        "deployment": {
            t: {k: by_name[n]["candidate"] for k, n in picks.items()}
            for t, picks in manifest["deployment"]["threads"].items()
        },  # fmt: skip
        "tuning_median_ms": manifest["tuning"].get("median_ms"),
        "tuning_spread_ms": manifest["tuning"].get("spread_ms"),
        "scores": {t: {k: c["scores"] for k, c in per.items()} for t, per in tuned.get("per_threads", {}).items()},
        "fixed": next((v for v in manifest["variants"] if v["name"] == "int8-fixed"), None),
    }


def paired(rows: list[dict], threads: int, seq, mine: str, theirs: str) -> float:
    """``_models.paired_ratio`` of two variants' round medians at one (threads, seq)."""
    got = {r["variant"]: [x["median_ms"] for x in r["rounds"]] for r in rows
           if (r["threads"], r["seq"]) == (threads, seq)}  # fmt: skip
    return paired_ratio(got[mine], got[theirs])


def main() -> None:
    args = timing_parser(__doc__.splitlines()[0]).parse_args()
    teacher = teacher_folder()
    student = student_folder(teacher)
    teacher_bundle, teacher_optimum = built(teacher, "teacher")
    student_bundle, student_optimum = built(student, "student")
    sentences = real_sentences(teacher)
    rows = []
    for threads in (int(t) for t in args.threads.split(",")):
        variants = {  # our bundles at the file their deployment table names for this thread count
            "teacher PyTorch eager": ("torch", teacher),
            "teacher Optimum O2 int8": ("onnx", teacher_optimum),
            "teacher ours int8": ("onnx", deployed(teacher_bundle, "int8", threads)),
            "student Optimum O2 int8": ("onnx", student_optimum),
            "student ours fp32": ("onnx", deployed(student_bundle, "fp32", threads)),
            "student ours int8": ("onnx", deployed(student_bundle, "int8", threads)),
        }
        for seq in SEQS:
            seq_arg = str(sentences) if seq == "real" else str(seq)
            rounds: dict[str, list[dict]] = {name: [] for name in variants}
            order = list(variants)
            for r in range(args.rounds):
                for name in rotated(order, r):
                    kind, path = variants[name]
                    rounds[name].append(time_variant(kind, path, threads, seq_arg, args.runs, args.warmup))
            for name, measured in rounds.items():
                rows.append(
                    {
                        "variant": name,
                        "threads": threads,
                        "seq": seq,
                        "median_ms": statistics.median(m["median_ms"] for m in measured),
                        "p95_ms": statistics.median(m["p95_ms"] for m in measured),
                        "rounds": measured,
                        "file": str(Path(variants[name][1]).relative_to(ROOT)),
                    }
                )
            got = {row["variant"]: row["median_ms"] for row in rows if (row["threads"], row["seq"]) == (threads, seq)}
            print(f"threads {threads} seq {seq}: " + "  ".join(f"{k} {v:.3f}" for k, v in got.items()), flush=True)
    ratios = []
    for threads in sorted({row["threads"] for row in rows}):
        for seq in SEQS:
            got = {row["variant"]: row["median_ms"] for row in rows if (row["threads"], row["seq"]) == (threads, seq)}
            student_int8 = got["student ours int8"]
            ratios.append(
                {
                    "threads": threads,
                    "seq": seq,
                    "student_int8_over_teacher_optimum_int8": student_int8 / got["teacher Optimum O2 int8"],
                    "teacher_eager_over_student_int8": got["teacher PyTorch eager"] / student_int8,
                    "ours_over_optimum_same_student": student_int8 / got["student Optimum O2 int8"],
                    "ours_over_optimum_same_teacher": got["teacher ours int8"] / got["teacher Optimum O2 int8"],
                    "ours_over_optimum_same_student_paired": paired(rows, threads, seq, "student ours int8",
                                                                    "student Optimum O2 int8"),
                }
            )
    print("\n| threads | seq | student int8 / teacher Optimum int8 (≤ 0.5) | eager teacher / student int8 (≥ 6) "
          "| ours / Optimum, student (≤ 0.9) | ours / Optimum, teacher |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for r in ratios:
        print(
            f"| {r['threads']} | {r['seq']} | {r['student_int8_over_teacher_optimum_int8']:.3f} | "
            f"{r['teacher_eager_over_student_int8']:.1f} | {r['ours_over_optimum_same_student']:.3f} | "
            f"{r['ours_over_optimum_same_teacher']:.3f} |"
        )
    path = write_result(
        "latency",
        {
            "rows": rows,
            "ratios": ratios,
            "rounds": args.rounds,
            "runs": args.runs,
            "batch": 1,
            "seqs": list(SEQS),
            "student_bundle": chosen(student_bundle),
            "teacher_bundle": chosen(teacher_bundle),
        },  # fmt: skip
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
