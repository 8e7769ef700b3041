"""Remote profiling over SSH: the transport's cost, and the cache's worth.

A real OpenSSH server on 127.0.0.1 (Debian's ``openssh-server``, as in the tests) and a device
interpreter holding only onnxruntime and numpy. On the same 3-layer student (fp32 and dynamic
INT8), batch 1, 1 thread:

- p50 through SSH on loopback against ``local``, alternated in one run, medians over repeats. Both
  run the same runner file; the transport is outside the timed region. Target: within 3%.
- wall time and bytes uploaded of a first run (empty device cache) and a re-run (warm cache).
- one report with two devices (``local`` and the loopback device), its Markdown kept beside the JSON.

    python benchmarks/remote_profile.py [--repeats 7] [--runs 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _models import RESULTS, ROOT, export_onnx, layer_cut, quantize_int8, rotated, teacher_folder, write_result

sys.path.insert(0, str(ROOT / "tests"))
from sshd import device_python, start_sshd, stop_sshd  # noqa: E402 - the tests' real-server fixture

SEQ_LENS = (16, 128)


def profile(models: list[Path], devices, runs: int, warmup: int, seq_lens=SEQ_LENS):
    from codir_edge.profile.run import ProfileConfig, run_profile

    config = ProfileConfig(
        threads=(1,), batch_sizes=(1,), seq_lens=seq_lens, runs=runs, warmup=warmup, devices=tuple(devices)
    )
    started = time.perf_counter()
    report = run_profile(models, config)
    if report.failures:
        raise SystemExit(f"profiling failed: {report.failures}")
    return report, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    from codir_edge.devices.spec import LOCAL_DEVICE, read_devices
    from codir_edge.profile.report import to_markdown

    fp32 = export_onnx(layer_cut(teacher_folder(), 3), "cut-3l")
    int8 = quantize_int8(fp32)
    with tempfile.TemporaryDirectory(prefix="codir-remote-bench-") as scratch:
        root = Path(scratch)
        process, server = start_sshd(root / "sshd")
        try:
            python = device_python(root / "device")
            toml = root / "devices.toml"
            toml.write_text(server.device_toml("loopback", str(python), str(root / "workdir")))
            (remote,) = read_devices(toml)

            cold, cold_s = profile([fp32, int8], [remote], args.runs, args.warmup, seq_lens=(128,))
            warm, warm_s = profile([fp32, int8], [remote], args.runs, args.warmup, seq_lens=(128,))
            cache = {
                "first_run_s": cold_s,
                "first_run_uploaded_bytes": cold.uploaded_bytes["loopback"],
                "rerun_s": warm_s,
                "rerun_uploaded_bytes": warm.uploaded_bytes["loopback"],
                "model_bytes": fp32.stat().st_size + int8.stat().st_size,
            }
            print(cache)

            p50: dict[str, dict[int, list[float]]] = {"local": {}, "loopback": {}}
            for i in range(args.repeats):
                for device in rotated([LOCAL_DEVICE, remote], i):
                    report, _ = profile([int8], [device], args.runs, args.warmup)
                    for row in report.results:
                        p50[device.name].setdefault(row["seq_len"], []).append(row["p50_ms"])
                print(f"round {i + 1}/{args.repeats}", {d: {s: v[-1] for s, v in x.items()} for d, x in p50.items()})
            rows = []
            for seq in SEQ_LENS:
                local, ssh = statistics.median(p50["local"][seq]), statistics.median(p50["loopback"][seq])
                rows.append(
                    {
                        "seq_len": seq,
                        "local_p50_ms": local,
                        "ssh_p50_ms": ssh,
                        "ratio": ssh / local,
                        "local_samples": p50["local"][seq],
                        "ssh_samples": p50["loopback"][seq],
                    }
                )

            both, _ = profile([fp32, int8], [LOCAL_DEVICE, remote], args.runs, args.warmup)
            markdown = to_markdown(both)
            (RESULTS / "remote_profile_report.md").write_text(markdown)
        finally:
            stop_sshd(process)
    path = write_result(
        "remote_profile",
        {
            "model": "3-layer cut of the teacher (all-MiniLM-L6-v2 shape), fp32 and dynamic INT8",
            "repeats": args.repeats,
            "runs": args.runs,
            "p50": rows,
            "cache": cache,
            "two_device_markdown": markdown,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
