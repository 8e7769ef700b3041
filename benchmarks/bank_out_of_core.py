"""The teacher bank out of core: host memory and step time of CoDIR training against a bank of
about 0.1 GB and one of about 2 GB, each placed as ``compress`` places it (the small one loaded into
memory, the large one read per step from its cache file).

Each bank is written straight into the bank format by ``BankWriter`` (random teacher outputs: the
bank's contents do not change what reading it costs), by a process of its own whose peak RSS is
recorded. Then, each in a fresh process, 200 CoDIR-Pre training steps (a 3-layer, 384-wide BERT
student as the demo's, batch 32, SST-2-like lengths of 8 to 40 tokens, K = 25 random corpus rows plus
the rest of the batch as negatives, anchors spread over the whole bank) run through the engine's
``train_step``; the process's peak RSS and the median step are recorded. Runs alternate between
the two banks (``--rounds`` times) so that machine noise hits both.
Targets: peak RSS within 150 MB of each other; the 2 GB bank's median step within 5% of the 0.1 GB one's.

    python benchmarks/bank_out_of_core.py [--rounds 3] [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _models import write_result

WIDTH = 3 * 768  # three matched layers of a BERT-base-wide teacher: 4.5 KiB per row
SIZES = {"0.1GB": 100 << 20, "2GB": 2 << 30}
STUDENT = {"hidden_size": 384, "num_hidden_layers": 3, "num_attention_heads": 12, "intermediate_size": 1536}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(path: Path, rows: int) -> dict:
    """Write a bank of ``rows`` random rows in 16 MB chunks, in shuffled chunk order (as a teacher pass
    writes length-sorted batches), and report the writer's peak RSS."""
    from codir_edge.compress.bank.cache import BankWriter

    rng = np.random.default_rng(0)
    chunk = (16 << 20) // (WIDTH * 2)
    starts = rng.permutation(np.arange(0, rows, chunk))
    with BankWriter(path, "bench", rows, WIDTH, 2) as writer:
        for start in starts:
            index = np.arange(start, min(start + chunk, rows))
            feats = rng.standard_normal((len(index), WIDTH), dtype=np.float32).astype(np.float16)
            writer.write(index, feats, rng.standard_normal((len(index), 2)).astype(np.float16))
        writer.commit()
    return {"rows": rows, "bytes": path.stat().st_size, "writer_peak_rss_mb": peak_rss_mb()}


def train(path: Path, rows: int, steps: int) -> dict:
    """``steps`` CoDIR-Pre steps reading the bank as compress would; the peak RSS and the median step in ms."""
    import time

    import torch
    from transformers import BertConfig, BertModel

    from codir_edge.compress.bank.build import bank_device, make_teacher_bank
    from codir_edge.compress.bank.cache import open_bank
    from codir_edge.compress.config import PreConfig
    from codir_edge.compress.objectives import PreDistiller
    from codir_edge.compress.pre import random_negatives
    from codir_edge.models.runtime import resolve_runtime
    from codir_edge.training.engine import train_step
    from codir_edge.training.optim import build_optimizer, linear_schedule

    torch.manual_seed(0)
    runtime = resolve_runtime("cpu", "fp32")
    baseline = peak_rss_mb()
    rng = np.random.default_rng(1)
    features, logits = open_bank(path, "bench", rows)
    placement = bank_device(runtime, features.numel() * 2)
    bank = make_teacher_bank(features, logits, torch.zeros(rows), placement)
    config = PreConfig(negatives=25, batch_size=32, student_layers=STUDENT["num_hidden_layers"])
    student = BertModel(BertConfig(vocab_size=30522, **STUDENT))
    distiller = PreDistiller(student, bank, None, config, STUDENT["hidden_size"], WIDTH // STUDENT["num_hidden_layers"])
    optimizer = build_optimizer(distiller.named_parameters(), config.lr, config.weight_decay)
    scheduler = linear_schedule(optimizer, steps, config.warmup_ratio)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    times = []
    for _ in range(steps):
        anchors = rng.choice(rows, 32, replace=False)
        length = int(rng.integers(8, 40))
        inputs = {"input_ids": torch.from_numpy(rng.integers(1000, 30000, (32, length))),
                  "attention_mask": torch.ones((32, length), dtype=torch.int64)}  # fmt: skip
        started = time.perf_counter()
        negatives = torch.from_numpy(random_negatives(anchors, rows, config.negatives, rng))
        train_step(distiller, optimizer, scheduler, scaler, runtime, 1.0, inputs, torch.from_numpy(anchors), None,
                   negatives)  # fmt: skip
        times.append((time.perf_counter() - started) * 1000)
    return {"placement": placement, "median_step_ms": statistics.median(times[10:]), "peak_rss_mb": peak_rss_mb(),
            "rss_before_bank_mb": baseline}  # fmt: skip


def child(args) -> None:
    path, rows = Path(args.path), int(args.rows)
    result = build(path, rows) if args.child == "build" else train(path, rows, args.steps)
    print(json.dumps(result))


def run_child(kind: str, path: Path, rows: int, steps: int) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--path", str(path), "--rows", str(rows),
               "--steps", str(steps)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--child", choices=("build", "train"), help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="bank-bench-", dir=Path(__file__).resolve().parent) as folder:
        banks = {name: (Path(folder) / f"{name}.safetensors", size // (WIDTH * 2)) for name, size in SIZES.items()}
        built = {name: run_child("build", path, rows, 0) for name, (path, rows) in banks.items()}
        runs = {name: [] for name in banks}
        for round_index in range(args.rounds):
            for name in list(banks)[:: 1 if round_index % 2 == 0 else -1]:
                path, rows = banks[name]
                runs[name].append(run_child("train", path, rows, args.steps))
                print(f"round {round_index + 1} {name}: {runs[name][-1]}", flush=True)
    summary = {
        name: {
            **built[name],
            "median_step_ms": statistics.median(r["median_step_ms"] for r in runs[name]),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs[name]),
            "runs": runs[name],
        }
        for name in banks
    }
    small, large = summary["0.1GB"], summary["2GB"]
    comparison = {
        "peak_rss_difference_mb": large["peak_rss_mb"] - small["peak_rss_mb"],
        "step_time_ratio": large["median_step_ms"] / small["median_step_ms"],
        "writer_rss_difference_mb": large["writer_peak_rss_mb"] - small["writer_peak_rss_mb"],
    }
    print(json.dumps(comparison, indent=2))
    write_result("bank_out_of_core", {"steps": args.steps, "rounds": args.rounds, "banks": summary, **comparison})


if __name__ == "__main__":
    main()
