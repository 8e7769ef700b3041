"""Profiler overhead: ``codir-edge profile``'s p50 against a bare ``session.run`` loop.

Same model, same session settings (``codir_edge.onnx.session.session_options``), same input,
each measurement in a fresh process, the two alternated in one run so machine noise hits both;
medians over repeats. Target: at most 2% apart.

    python benchmarks/profile_overhead.py [--repeats 7] [--runs 300] [--seq-len 128]
"""

from __future__ import annotations

import argparse
import json
import statistics

from _models import bare_latency, export_onnx, layer_cut, teacher_folder, write_result


def ours(model, threads, seq, runs, warmup) -> float:
    from codir_edge.profile.run import ProfileConfig, run_profile

    config = ProfileConfig(threads=(threads,), batch_sizes=(1,), seq_lens=(seq,), runs=runs, warmup=warmup)
    return run_profile([model], config).results[0]["p50_ms"]


def bare(model, threads, seq, runs, warmup) -> float:
    return bare_latency(model, threads, seq, runs, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    model = export_onnx(layer_cut(teacher_folder(), 3), "cut-3l")
    pairs = []
    for i in range(args.repeats):
        order = (ours, bare) if i % 2 == 0 else (bare, ours)  # alternate who goes first
        measured = {fn.__name__: fn(model, args.threads, args.seq_len, args.runs, args.warmup) for fn in order}
        pairs.append(measured)
        print(f"repeat {i + 1}: ours {measured['ours']:.3f} ms  bare {measured['bare']:.3f} ms", flush=True)
    ours_p50 = statistics.median(p["ours"] for p in pairs)
    bare_p50 = statistics.median(p["bare"] for p in pairs)
    ratio = ours_p50 / bare_p50
    print(
        f"\n| model | threads | seq | ours p50 ms | bare p50 ms | ours/bare |\n|---|---|---|---|---|---|\n"
        f"| {model.parent.name} | {args.threads} | {args.seq_len} | {ours_p50:.3f} | {bare_p50:.3f} | {ratio:.4f} |"
    )
    path = write_result(
        "profile_overhead",
        {
            "model": str(model),
            "args": vars(args),
            "pairs": pairs,
            "ours_p50_ms": ours_p50,
            "bare_p50_ms": bare_p50,
            "ratio": ratio,
            "target": "within 2%",
            "met": abs(ratio - 1) <= 0.02,
        },
    )
    print(json.dumps({"ratio": ratio, "result": str(path)}))


if __name__ == "__main__":
    main()
