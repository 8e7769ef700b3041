"""A student's shape from a latency budget: ``compress --latency-budget MS``.

Latency depends on a student's shape (blocks x heads per block x FFN neurons per block), not on its
weights, so each candidate is built with random weights, exported to ONNX and quantized to INT8 as
``export`` does (``onnx/graph.py``), and timed by the device runner ``profile`` uses, on this machine or
over SSH. The shape with the most parameters whose p95 meets the budget wins.

Few shapes are timed. The smallest goes first: if it misses, nothing can meet the budget and the
run stops with one line. Then each timing decides more than its own shape: a shape over budget puts
every shape that contains it (at least as deep, as many heads, as wide) over, and a shape that fits
settles every shape with no more parameters; the largest open shape goes next, then always the one
that decides the most either way (``largest_that_fits``). On the MiniLM teacher at 0.7 ms that timed
11 of the 95 shapes, where the scan from the largest down timed 77, and chose the same one
(``benchmarks/budget_search.py``). The report lists every candidate and why it was or was not picked.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codir_edge.compress.prune import ffn_width, keep_count
from codir_edge.core.errors import InputError
from codir_edge.models.families import depth, family_of, heads, set_depth, width
from codir_edge.models.hf_imports import prepare_transformers

FRACTIONS = (1.0, 0.75, 0.5, 0.25)  # of heads and of FFN neurons, per block
RUN_SECONDS = 1.0  # timed loop per shape, after WARMUP untimed calls
WARMUP = 5
REAL_SENTENCES = 64


@dataclass(frozen=True)
class Shape:
    layers: int
    heads: int  # per block
    ffn: int  # FFN neurons per block

    def contains(self, other: Shape) -> bool:
        """At least as large in every dimension, hence at least as slow."""
        return self.layers >= other.layers and self.heads >= other.heads and self.ffn >= other.ffn

    @property
    def label(self) -> str:
        return f"{self.layers} layers, {self.heads} heads, FFN {self.ffn}"


def candidate_shapes(config) -> list[Shape]:
    """Every depth up to the teacher's times each kept fraction of heads (where the family can record
    pruned heads) and of FFN neurons; the teacher's own shape is not a student."""
    family = family_of(config)
    total_heads, total_ffn, layers = heads(config), ffn_width(config), depth(config)
    head_counts = sorted({keep_count(total_heads, f) for f in FRACTIONS}) if family.attn_out else [total_heads]
    ffn_counts = sorted({keep_count(total_ffn, f) for f in FRACTIONS})
    teacher = Shape(layers, total_heads, total_ffn)
    shallowest = int(getattr(config, "num_hidden_groups", 1)) if family.shared_blocks else 1
    return [
        Shape(n, h, f)
        for n in range(shallowest, layers + 1)
        for h in head_counts
        for f in ffn_counts
        if Shape(n, h, f) != teacher
    ]


def shape_config(config, shape: Shape):
    """The teacher's config reshaped: depth, ``pruned_heads`` (the first heads of each block, which
    costs the same as any other choice) and FFN width."""
    family = family_of(config)
    reshaped = copy.deepcopy(config)
    set_depth(reshaped, shape.layers)
    removed = heads(config) - shape.heads
    blocks = shape.layers
    if family.shared_blocks:  # ALBERT prunes its shared layers, numbered group by group
        blocks = int(config.num_hidden_groups) * int(getattr(config, "inner_group_num", 1))
    reshaped.pruned_heads = {i: list(range(removed)) for i in range(blocks)} if removed else {}
    setattr(reshaped, family.ffn_key, shape.ffn)
    return reshaped


def build_random(config, shape: Shape):
    """A classifier of ``shape`` with random weights."""
    prepare_transformers()
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_config(shape_config(config, shape), attn_implementation="eager")


def parameters(config, shape: Shape) -> int:
    """Counted on an unallocated (meta) model with every head, less what each removed head holds:
    its query, key and value rows (weights and biases) and its output-projection columns, per block
    with weights of its own. (transformers cannot prune heads on the meta device.)"""
    import torch

    prepare_transformers()
    from transformers import AutoModelForSequenceClassification

    full = shape_config(config, Shape(shape.layers, heads(config), shape.ffn))
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(full)
    total = sum(p.numel() for p in model.parameters())
    removed = heads(config) - shape.heads
    if not removed:
        return total
    head_dim = width(config) // heads(config)
    blocks = len(shape_config(config, shape).pruned_heads)
    return total - blocks * removed * head_dim * (4 * width(config) + 3)


@dataclass(frozen=True)
class BudgetInputs:
    """What the budget is measured on: threads, and the sentences as token-id rows (batch 1)."""

    threads: int
    seq_len: int | str
    rows: list[list[int]]
    pad_id: int


def _int8_graph(config, shape: Shape, folder: Path) -> Path:
    import torch

    from codir_edge.onnx.graph import dynamic_int8, export_fp32

    torch.manual_seed(0)
    model = build_random(config, shape).eval()
    fp32, int8 = folder / "fp32.onnx", folder / "int8.onnx"
    export_fp32(model, fp32)
    dynamic_int8(fp32, int8, target="native", fused=False)
    fp32.unlink()
    return int8


def _time(session, graph: Path, placed_inputs: dict, threads: int, label: str) -> dict[str, float]:
    from codir_edge.devices.measurement import Measurement
    from codir_edge.devices.session import Group

    placed = session.stage([Group((graph,))])
    spec = Measurement(model=placed[graph], ids=placed_inputs[0], lengths=placed_inputs[1], threads=threads,
                       runs=0, warmup=WARMUP, duration_s=RUN_SECONDS)  # fmt: skip
    samples = np.asarray(session.measure(spec, label)["samples_ms"])
    return {"p50_ms": float(np.percentile(samples, 50)), "p95_ms": float(np.percentile(samples, 95)),
            "runs": int(samples.size)}  # fmt: skip


def search(config, budget_ms: float, inputs: BudgetInputs, device, bars=None) -> dict:
    """The candidate table and the chosen shape (see the module docstring for the order), or one line
    when even the fastest shape misses the budget. ``bars`` (core.progress) shows the shapes decided
    and the last one timed."""
    from codir_edge.devices.session import DeviceSession, write_batches

    sizes = {s: parameters(config, s) for s in candidate_shapes(config)}
    shapes = sorted(sizes, key=lambda s: (sizes[s], s.layers))  # fewest parameters first
    with tempfile.TemporaryDirectory(prefix="codir-edge-shapes-") as scratch, DeviceSession(device) as session:
        work = Path(scratch)
        session.describe()  # the preflight: a device without onnxruntime is refused with its fix, before uploads
        group = write_batches([[row] for row in inputs.rows], inputs.pad_id, work)
        placed = session.stage([group])
        placed_inputs = (placed[group.files[0]], placed[group.files[1]])

        def measure(shape: Shape) -> dict:
            folder = work / f"{shape.layers}-{shape.heads}-{shape.ffn}"
            folder.mkdir()
            graph = _int8_graph(config, shape, folder)
            return _time(session, graph, placed_inputs, inputs.threads, f"student shape {shape.label}")

        bar = bars.add("student shapes", len(shapes), "shapes") if bars is not None else None

        def timed(shape: Shape, row: dict, decided: int) -> None:
            if bar is not None:
                said = f"timed {shape.label}: p95 {row['p95_ms']:.2f} ms (budget {budget_ms:g})"
                bars.advance(bar, decided - bars.bars[bar].completed, stats=said)

        fastest = shapes[0]
        first = measure(fastest)
        if first["p95_ms"] > budget_ms:
            raise InputError(
                f"no student shape meets --latency-budget {budget_ms:g} ms: the fastest ({fastest.label}) measured "
                f"p95 {first['p95_ms']:.2f} ms at {inputs.threads} thread(s), sequence length "
                f"{inputs.seq_len} on {device.name}: raise the budget, or give more --budget-threads"
            )
        timed(fastest, first, 1)
        chosen, rows = largest_that_fits(shapes, measure, budget_ms, {fastest: first}, timed)
        if bar is not None:
            bars.advance(bar, len(shapes) - bars.bars[bar].completed, stats=f"chose {chosen.label}")
    table = [_row(shape, sizes[shape], rows.get(shape), shape == chosen, budget_ms) for shape in reversed(shapes)]
    return {
        "budget_ms": budget_ms, "threads": inputs.threads, "seq_len": inputs.seq_len, "device": device.name,
        "statistic": "p95", "precision": "int8 (dynamic, per-channel)",
        "chosen": {"layers": chosen.layers, "heads": chosen.heads, "ffn": chosen.ffn,
                   "heads_keep": chosen.heads / heads(config), "ffn_keep": chosen.ffn / ffn_width(config),
                   "parameters": sizes[chosen], **rows[chosen]},
        "timed": sum(1 for r in rows.values() if "p95_ms" in r), "candidates": table,
    }  # fmt: skip


def largest_that_fits(shapes: list[Shape], measure, budget_ms: float, rows: dict,
                      timed=lambda shape, row, decided: None) -> tuple[Shape, dict]:  # fmt: skip
    """The shape with the most parameters whose p95 fits, from few timings. ``shapes`` go fewest
    parameters first; ``shapes[0]`` (already in ``rows``) is known to fit.

    Latency grows with depth, heads and width, so one timing decides more than its own shape: one
    over budget puts every shape that contains it over, and one that fits settles every shape with
    no more parameters. The largest open shape goes first (a generous budget ends there), then each
    timing goes to the open shape that decides the most whichever way it comes out. ``timed(shape,
    row, decided)`` is called after each timing with how many shapes are decided so far."""
    rank = {shape: i for i, shape in enumerate(shapes)}
    best, over = shapes[0], set()
    open_ = shapes[1:]  # more parameters than the best that fits, and not known to be over
    while open_:
        first = len(open_) == len(shapes) - 1
        pick = open_[-1] if first else max(open_, key=lambda c: (_decides(c, open_, rank), rank[c]))
        rows[pick] = measure(pick)
        if rows[pick]["p95_ms"] <= budget_ms:
            best = pick
        else:
            for shape in (s for s in shapes if s.contains(pick)):
                over.add(shape)
                rows.setdefault(shape, {"status": "over (contains a shape over budget)"})
        open_ = [s for s in shapes[rank[best] + 1 :] if s not in over]
        timed(pick, rows[pick], len(shapes) - len(open_))
    return best, rows


def _decides(candidate: Shape, open_: list[Shape], rank: dict) -> int:
    """How many open shapes a timing of ``candidate`` decides at the least: if it is over, those
    that contain it; if it fits, those with no more parameters."""
    if_over = sum(1 for s in open_ if s.contains(candidate))
    if_fits = sum(1 for s in open_ if rank[s] <= rank[candidate])
    return min(if_over, if_fits)


def _row(shape: Shape, size: int, timed: dict | None, chosen: bool, budget_ms: float) -> dict:
    row = {"layers": shape.layers, "heads": shape.heads, "ffn": shape.ffn, "parameters": size,
           **(timed or {"status": "not timed (fewer parameters than the chosen shape)"})}  # fmt: skip
    if "p95_ms" in row:
        row["status"] = "chosen" if chosen else ("fits" if row["p95_ms"] <= budget_ms else "over")
    return row


def budget_inputs(seq_len: int | str, threads: int, tokenizer, texts: list[tuple[str, str | None]], max_length: int,
                  vocab: int) -> BudgetInputs:  # fmt: skip
    """Token-id rows for the budget: the task's dev sentences (``real``) or one row of ``seq_len`` ids."""
    from codir_edge.core.inputs import synthetic_token_ids

    pad_id = tokenizer.pad_token_id or 0
    if seq_len == "real":
        rows = []
        for text, pair in texts[:REAL_SENTENCES]:
            encoded = tokenizer(text, pair, truncation=True, max_length=max_length)
            rows.append(encoded["input_ids"])
        if not rows:
            raise InputError("--budget-seq-len real needs dev sentences: the task's data has no dev split")
        return BudgetInputs(threads, seq_len, rows, pad_id)
    return BudgetInputs(threads, seq_len, synthetic_token_ids(1, int(seq_len), seed=0, vocab=vocab), pad_id)
