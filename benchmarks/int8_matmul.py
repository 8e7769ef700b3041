"""The limit: this machine's int8 matrix-multiply throughput in onnxruntime, and how much of it the
INT8 student achieves at sequence length 128.

Two single-operator graphs, each timed by onnxruntime itself in a fresh process with the session
settings every codir-edge measurement uses (batch 1, ``session_options(threads)``):

- ``MatMulInteger`` (uint8 x int8 -> int32): the bare quantized GEMM;
- ``DynamicQuantizeMatMul`` (com.microsoft; float in, int8 weights, float out): what onnxruntime
  runs for every linear layer of a dynamically quantized BERT, quantization of the input included.

Each is measured on the student's own linear shapes at sequence length 128 and on larger GEMMs;
the machine's throughput is the best of all of them (the most favourable reference for the limit).
In the same run, interleaved, the student's int8 model is timed at sequence length 128, and its
multiply-accumulate count (every matmul of the encoder, attention products included, pooler and
classifier) over its median latency is its achieved throughput. At each thread count the student
is the file its bundle's deployment table names there, and onnxruntime's profiler splits that
file's run by operator (``op_profile.profile``): the share outside the quantized GEMMs is what no
faster GEMM can win back.

    python benchmarks/int8_matmul.py [--threads 1,2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

from _models import bare_latency, rotated, teacher_folder, write_result
from export_latency import student_folder
from latency import built, deployed
from op_profile import profile

SEQ = 128
GEMM_SCRIPT = textwrap.dedent("""
    import sys, time, numpy as np, onnx, onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from codir_edge.onnx.session import session_options
    op, m, k, n, threads, seconds = sys.argv[1], *map(int, sys.argv[2:6]), float(sys.argv[6])
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "B")
    if op == "MatMulInteger":
        node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
        a_type, y_type, inits = TensorProto.UINT8, TensorProto.INT32, [weight]
        feed = {"A": rng.integers(0, 256, (m, k), dtype=np.uint8)}
    else:
        scale = numpy_helper.from_array(np.array(0.01, dtype=np.float32), "scale")
        node = helper.make_node("DynamicQuantizeMatMul", ["A", "B", "scale"], ["Y"], domain="com.microsoft")
        a_type, y_type, inits = TensorProto.FLOAT, TensorProto.FLOAT, [weight, scale]
        feed = {"A": rng.standard_normal((m, k), dtype=np.float32)}
    graph = helper.make_graph([node], "gemm", [helper.make_tensor_value_info("A", a_type, [m, k])],
                              [helper.make_tensor_value_info("Y", y_type, [m, n])], inits)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    providers = ["CPUExecutionProvider"]
    session = ort.InferenceSession(model.SerializeToString(), session_options(threads), providers=providers)
    for _ in range(10):
        session.run(None, feed)
    samples, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 20:
        start = time.perf_counter_ns()
        session.run(None, feed)
        samples.append((time.perf_counter_ns() - start) / 1e9)
    print(m * k * n / float(np.median(samples)) / 1e9)
""")


def gemm_gmacs(op: str, m: int, k: int, n: int, threads: int, seconds: float) -> float:
    """Median throughput of one operator, in billions of multiply-accumulates per second."""
    done = subprocess.run(
        [sys.executable, "-c", GEMM_SCRIPT, op, str(m), str(k), str(n), str(threads), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip())


QUANTIZED_GEMMS = ("DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger", "QGemm")


def op_breakdown(model: Path, threads: int, runs: int = 100) -> dict[str, float]:
    """Share of the run per operator type (onnxruntime's own profiler, ``op_profile.profile``),
    "outside kernels" included: where the time that is not int8 GEMM goes. QAttention holds the
    quantized QKV projection and the float attention products together, so it is shown apart."""
    measured = profile(model, threads, SEQ, runs, 20)
    return {op: ms / measured["run_ms"] for op, ms in sorted(measured["ops_ms"].items(), key=lambda kv: -kv[1])}


def student_macs(config: dict, seq: int) -> dict[str, int]:
    """Multiply-accumulates of one sequence: the quantized linear layers, and the attention products
    (activation x activation, left in float by dynamic quantization), pooler and classifier."""
    hidden, inner, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    linear = layers * (4 * seq * hidden * hidden + 2 * seq * hidden * inner)
    attention = layers * 2 * seq * seq * hidden
    head = hidden * hidden + hidden * config.get("num_labels", len(config.get("id2label", {})) or 2)
    return {"linear": linear, "attention": attention, "head": head, "total": linear + attention + head}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per GEMM measurement")
    parser.add_argument("--runs", type=int, default=200, help="timed runs of the student per measurement")
    args = parser.parse_args()
    student_dir = student_folder(teacher_folder())
    bundle, _ = built(student_dir, "student")
    config = json.loads((student_dir / "config.json").read_text())
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    shapes = {
        "student QKV/output (128x384x384)": (SEQ, hidden, hidden),
        "student FFN up (128x384x1536)": (SEQ, hidden, inner),
        "student FFN down (128x1536x384)": (SEQ, inner, hidden),
        "large 512x1024x1024": (512, 1024, 1024),
        "large 1024x1024x1024": (1024, 1024, 1024),
        "large 256x1536x1536": (256, 1536, 1536),
    }
    macs = student_macs(config, SEQ)
    rows, summary, breakdowns = [], [], {}
    for threads in (int(t) for t in args.threads.split(",")):
        shipped = deployed(bundle, "int8", threads)  # the file the bundle's deployment table names here
        gemm: dict[tuple[str, str], list[float]] = {}
        student_ms: list[float] = []
        jobs = [(op, name) for op in ("MatMulInteger", "DynamicQuantizeMatMul") for name in shapes] + [("student", "")]
        for r in range(args.rounds):
            for op, name in rotated(jobs, r):
                if op == "student":
                    student_ms.append(bare_latency(shipped, threads, SEQ, args.runs, 20))
                else:
                    gemm.setdefault((op, name), []).append(gemm_gmacs(op, *shapes[name], threads, args.seconds))
        for (op, name), values in gemm.items():
            rows.append(
                {"threads": threads, "op": op, "shape": name, "gmacs": statistics.median(values), "rounds": values}
            )
        best = max((r for r in rows if r["threads"] == threads), key=lambda r: r["gmacs"])
        latency = statistics.median(student_ms)
        achieved = macs["total"] / (latency / 1e3) / 1e9
        summary.append(
            {
                "threads": threads,
                "peak_gmacs": best["gmacs"],
                "peak_from": f"{best['op']} {best['shape']}",
                "student_int8_ms": latency,
                "student_rounds_ms": student_ms,
                "student_gmacs": achieved,
                "fraction_of_peak": achieved / best["gmacs"],
                "student_linear_gmacs": macs["linear"] / (latency / 1e3) / 1e9,
                "student_file": shipped.name,
            }
        )
        breakdowns[str(threads)] = op_breakdown(shipped, threads)
        summary[-1]["outside_quantized_gemms"] = 1 - sum(breakdowns[str(threads)].get(op, 0) for op in QUANTIZED_GEMMS)
        print(f"\nthreads {threads}")
        print("| op | shape | GMAC/s |\n|---|---|---|")
        for row in (r for r in rows if r["threads"] == threads):
            print(f"| {row['op']} | {row['shape']} | {row['gmacs']:.1f} |")
        s = summary[-1]
        print(
            f"student int8 at seq {SEQ}: {latency:.3f} ms, {macs['total'] / 1e6:.0f} M MACs -> {achieved:.1f} GMAC/s = "
            f"{s['fraction_of_peak']:.1%} of the peak {best['gmacs']:.1f} GMAC/s ({s['peak_from']})"
        )
    for threads, breakdown in breakdowns.items():
        shares = ", ".join(f"{op} {v:.1%}" for op, v in breakdown.items())
        print(f"\nrun time by operator ({threads} threads): {shares}")
    path = write_result(
        "int8_matmul",
        {
            "seq": SEQ,
            "student": str(student_dir),
            "student_macs": macs,
            "rows": rows,
            "summary": summary,
            "op_breakdown": breakdowns,
        },
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
