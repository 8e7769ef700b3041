"""Benchmark helpers: build real BERT ONNX models from a local folder (never downloaded).

Until ``codir-edge export`` lands, models go through Optimum's exporter and onnxruntime's dynamic
quantizer, which is exactly what a user without this tool would do.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work"
RESULTS = ROOT / "benchmarks" / "results"


def teacher_folder() -> Path:
    """The fine-tuned SST-2 teacher when present (runs/teacher-sst2), else the bundled backbone with a new head."""
    trained = ROOT / "runs" / "teacher-sst2"
    if (trained / "config.json").is_file():
        return trained
    target = WORK / "backbone-classifier"
    if not (target / "config.json").is_file():
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from codir_edge.models.checkpoint import default_backbone

        source = default_backbone()
        AutoModelForSequenceClassification.from_pretrained(str(source), num_labels=2).save_pretrained(target)
        AutoTokenizer.from_pretrained(str(source)).save_pretrained(target)
    return target


def demo_student() -> Path:
    """The demo's student (``runs/demo/student``), made by the README's demo when it is missing."""
    folder = ROOT / "runs" / "demo" / "student"
    if not (folder / "config.json").is_file():
        subprocess.run([sys.executable, "-m", "codir_edge", "demo"], cwd=ROOT, check=True)
    return folder


def layer_cut(teacher: Path, layers: int) -> Path:
    """A student shaped like the distilled one: the teacher's embeddings, ``layers`` evenly spaced layers, head.
    Latency and size do not depend on training, so an untrained cut measures the same."""
    target = WORK / f"cut-{layers}l"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(teacher))
    total = model.config.num_hidden_layers
    keep = [round((i + 1) * total / layers) - 1 for i in range(layers)]
    model.bert.encoder.layer = torch.nn.ModuleList(model.bert.encoder.layer[i] for i in keep)
    model.config.num_hidden_layers = layers
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(str(teacher)).save_pretrained(target)
    return target


def export_onnx(model_dir: Path, name: str) -> Path:
    """model.onnx (fp32) via Optimum, with eager attention so onnxruntime's BERT fusions apply."""
    out = WORK / f"{name}-onnx"
    if not (out / "model.onnx").is_file():
        from optimum.exporters.onnx import onnx_export_from_model
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), attn_implementation="eager")
        onnx_export_from_model(model, output=str(out), task="text-classification", do_validation=False)
        AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(out)
    return out / "model.onnx"


def quantize_int8(model: Path) -> Path:
    out = model.with_name("model.int8.onnx")
    if not out.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(model), str(out), per_channel=True, weight_type=QuantType.QInt8)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (model.parent / name).is_file() and not (out.parent / name).is_file():
            shutil.copy(model.parent / name, out.parent / name)
    return out


_BARE_LATENCY = textwrap.dedent("""
    import sys, time, numpy as np, onnxruntime as ort
    from codir_edge.core.inputs import synthetic_token_ids, to_feed
    from codir_edge.onnx.session import session_options
    path = sys.argv[1]
    threads, seq, runs, warmup = (int(a) for a in sys.argv[2:6])
    session = ort.InferenceSession(path, session_options(threads), providers=["CPUExecutionProvider"])
    feed = to_feed(synthetic_token_ids(1, seq), [i.name for i in session.get_inputs()])
    for _ in range(warmup):
        session.run(None, feed)
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        session.run(None, feed)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    print(float(np.median(samples)))
""")


def bare_latency(model: Path, threads: int, seq: int, runs: int, warmup: int) -> float:
    """Median ms of a bare ``session.run`` loop at batch 1, in a fresh process, with the session
    settings every codir-edge measurement uses: the reference all latency benchmarks compare against."""
    done = subprocess.run(
        [sys.executable, "-c", _BARE_LATENCY, str(model), str(threads), str(seq), str(runs), str(warmup)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip())


def timing_parser(description: str, rounds: int = 3):
    """The options every interleaved latency benchmark takes: rounds, timed runs and warm-up runs per
    process, thread counts; a benchmark adds its own to the parser returned."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", default="1,2", help="thread counts to measure, comma-separated")
    return parser


def rotated(items: list, round_index: int) -> list:
    """``items`` starting at a different one each round, so that machine noise (a neighbour, a
    frequency change) hits every variant of an interleaved benchmark alike."""
    shift = round_index % len(items)
    return items[shift:] + items[:shift]


def paired_ratio(mine: list[float], theirs: list[float]) -> float:
    """Median over rounds of ``mine``'s round median over ``theirs``'s in the same round: the two were timed
    side by side, so the host's drift between rounds (up to 40% on a shared VM) cancels."""
    import statistics

    return statistics.median(a / b for a, b in zip(mine, theirs, strict=True))


def environment() -> dict:
    from codir_edge.core.machine import describe_machine
    from codir_edge.core.provenance import provenance

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "codir_edge", "benchmarks/*.py"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return {
        "machine": describe_machine(),
        "provenance": provenance(),
        "commit": commit.stdout.strip() + ("+uncommitted" if dirty else ""),
        "python": platform.python_version(),
        "argv": sys.argv,
    }


def run_command(command: list[str], name: str) -> float:
    """Seconds ``command`` took; a failure stops the benchmark with its name and the end of its stderr."""
    import time

    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return time.perf_counter() - started


def run_cli(command: list, log: Path) -> float:
    """Seconds ``codir-edge COMMAND`` took, its output in ``log``; a failure stops the benchmark naming the log."""
    import time

    started = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run([sys.executable, "-m", "codir_edge", *map(str, command)], cwd=ROOT, stdout=out,
                              stderr=subprocess.STDOUT)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({done.returncode}): see {log}")
    return time.perf_counter() - started


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**payload, "environment": environment()}, indent=2, default=str) + "\n")
    return path
