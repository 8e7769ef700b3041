"""Where the time goes, per operator: onnxruntime's own profiler on our shipped INT8 graphs and on
Optimum's O2 INT8 graph of the same student, at batch 1, lengths 16 and 128, 1 and 2 threads.

Each (graph, threads, length) is a fresh process with the session settings every codir-edge
measurement uses plus ``enable_profiling``, the graphs interleaved over ``--rounds`` rounds (medians
per operator); after ``--warmup`` runs, ``--runs`` runs are profiled and the kernel events inside
those runs are summed per operator type (as onnxruntime names the
operator it ran, after its load-time fusions). "outside kernels" is the run's wall time minus its
kernels: the executor, thread-pool dispatch and memory planning. The profiler adds a little to
every kernel, so the shares, not the absolute figures, are the reading; latency comes from
``latency.py``. The graphs compared (node counts by type as stored and as onnxruntime runs them)
are written beside.

    python benchmarks/op_profile.py [--rounds 3] [--runs 200] [--threads 1,2] [--extra NAME=FILE ...]
"""

from __future__ import annotations

import collections
import json
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

from _models import ROOT, WORK, rotated, teacher_folder, timing_parser, write_result
from export_latency import student_folder
from latency import built, deployed

LENGTHS = (16, 128)
PROFILER = textwrap.dedent("""
    import collections, json, os, sys, tempfile
    import numpy as np, onnxruntime as ort
    from codir_edge.core.inputs import synthetic_token_ids, to_feed
    from codir_edge.onnx.session import session_options
    path, threads, seq, runs, warmup = sys.argv[1], *map(int, sys.argv[2:6])
    options = session_options(threads)
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "p")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = to_feed(synthetic_token_ids(1, seq), [i.name for i in session.get_inputs()])
    for _ in range(warmup + runs):
        session.run(None, feed)
    events = json.load(open(session.end_profiling()))
    model_runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])[-runs:]
    start, total = model_runs[0]["ts"], sum(e["dur"] for e in model_runs)
    per_op, nodes = collections.Counter(), collections.defaultdict(set)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= start:
            op = e["args"].get("op_name", "?")
            per_op[op] += e["dur"]
            nodes[op].add(e["name"])
    print(json.dumps({
        "run_ms": total / runs / 1000,
        "ops_ms": {op: us / runs / 1000 for op, us in per_op.most_common()},
        "nodes": {op: len(names) for op, names in nodes.items()},
    }))
""")


def profile(path: Path, threads: int, seq: int, runs: int, warmup: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROFILER, str(path), str(threads), str(seq), str(runs), str(warmup)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"profiling {path} failed: {done.stderr.strip()[-400:]}")
    measured = json.loads(done.stdout)
    measured["ops_ms"]["outside kernels"] = measured["run_ms"] - sum(measured["ops_ms"].values())
    return measured


def median_profile(rounds: list[dict]) -> dict:
    """Per operator, the median over rounds (fresh processes, graphs interleaved): one process's
    figures on this shared host can be 40% off the next one's for the same file."""
    ops = list(dict.fromkeys(op for r in rounds for op in r["ops_ms"]))
    return {
        "run_ms": statistics.median(r["run_ms"] for r in rounds),
        "ops_ms": {op: statistics.median(r["ops_ms"].get(op, 0.0) for r in rounds) for op in ops},
        "nodes": rounds[0]["nodes"],
        "rounds_run_ms": [r["run_ms"] for r in rounds],
    }


def stored_ops(path: Path) -> dict[str, int]:
    import onnx

    return dict(collections.Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node))


def previous_pick(student_bundle: Path) -> Path:
    """``fused.dynamic-pt``, the 2-thread INT8 pick before the tuner timed the peer's recipe (commit
    1eefcad), remade from the bundle's fp32 graph with the same functions: the "before" column."""
    from codir_edge.export.graph import fuse
    from codir_edge.onnx.graph import dynamic_int8

    out = WORK / "op_profile" / "fused.dynamic-pt.onnx"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        config = json.loads((student_bundle / "config.json").read_text())
        fuse(student_bundle / "onnx" / "model.onnx", out.with_name("fused.onnx"), "bert",
             config["num_attention_heads"], config["hidden_size"])  # fmt: skip
        dynamic_int8(out.with_name("fused.onnx"), out, "avx512_vnni", fused=True, per_channel=False)
    return out


def graphs(student_bundle: Path, optimum: Path, threads: int, extra: dict[str, Path]) -> dict[str, Path]:
    return {"ours (shipped)": deployed(student_bundle, "int8", threads), "optimum O2 int8": optimum, **extra}


def table(rows: list[dict], threads: int, seq: int) -> str:
    mine = [r for r in rows if (r["threads"], r["seq"]) == (threads, seq)]
    ops = sorted({op for r in mine for op in r["ops_ms"]}, key=lambda op: -max(r["ops_ms"].get(op, 0) for r in mine))
    head = "| operator | " + " | ".join(f"{r['graph']} ms (nodes)" for r in mine) + " |"
    lines = [f"threads {threads}, length {seq}", "", head, "|---|" + "---|" * len(mine)]
    for op in ops:
        cells = [f"{r['ops_ms'].get(op, 0):.3f} ({r['nodes'].get(op, '-')})" for r in mine]
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    lines.append("| **run** | " + " | ".join(f"**{r['run_ms']:.3f}**" for r in mine) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = timing_parser(__doc__.splitlines()[0])
    parser.add_argument("--extra", nargs="*", default=[], help="NAME=FILE: more graphs to profile beside")
    parser.add_argument("--name", default="op_profile")
    args = parser.parse_args()
    student_bundle, optimum = built(student_folder(teacher_folder()), "student")
    extra = {"ours before (fused.dynamic-pt)": previous_pick(student_bundle)}
    extra |= {k: Path(v) for k, v in (e.split("=", 1) for e in args.extra)}
    rows, files = [], {}
    for threads in (int(t) for t in args.threads.split(",")):
        compared = graphs(student_bundle, optimum, threads, extra)
        for name, path in compared.items():
            files[f"{name} @ {threads} threads"] = {"file": str(path.relative_to(ROOT)), "stored_ops": stored_ops(path)}
        for seq in LENGTHS:
            rounds: dict[str, list[dict]] = {name: [] for name in compared}
            for r in range(args.rounds):
                for name in rotated(list(compared), r):
                    rounds[name].append(profile(compared[name], threads, seq, args.runs, args.warmup))
            rows += [{"graph": name, "threads": threads, "seq": seq, **median_profile(measured)}
                     for name, measured in rounds.items()]  # fmt: skip
            print(table(rows, threads, seq) + "\n", flush=True)
    path = write_result(args.name, {"rows": rows, "graphs": files, "runs": args.runs, "rounds": args.rounds,
                                    "batch": 1})  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
