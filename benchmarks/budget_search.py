"""How many student shapes ``compress --latency-budget`` times, and whether it picks the same shape as
the descending scan it replaced, on the MiniLM teacher's shape grid (6 layers x 4 head counts x 4 FFN
widths, 95 shapes) at ``--latency-budget 0.7 --budget-seq-len real`` (64 SST-2 dev sentences, 1 thread).

    python benchmarks/budget_search.py [--budget 0.7]

Two arms, each saved when finished and skipped when re-run:
- ``every``: every shape timed once, exactly as the search times one (random weights, exported and
  INT8-quantized, p95 by the device runner). Both searches are then replayed on this one table, so
  that they choose from the same numbers: today's (``largest_that_fits``) and the scan from 22df184
  (from the most parameters down, skipping shapes that contain one over budget), written out here.
- ``live``: today's search run as compress runs it, for its wall time, the shapes it timed and its
  choice (timings near the budget may land either side of it from one run to the next).

Writes results/budget_search.json.
"""

from __future__ import annotations

import argparse
import json
import time

from _models import ROOT, WORK, teacher_folder, write_result


def scan_22df184(shapes, measure, budget_ms: float, rows: dict):
    """The search before this change: from the most parameters down, the first shape that fits;
    shapes containing one over budget are skipped untimed."""
    over = []
    for shape in reversed(shapes):
        if shape in rows:
            return shape, rows
        if any(shape.contains(slow) for slow in over):
            continue
        rows[shape] = measure(shape)
        if rows[shape]["p95_ms"] <= budget_ms:
            return shape, rows
        over.append(shape)
    raise AssertionError("the fastest shape fits")


def setup():
    from transformers import AutoConfig, AutoTokenizer

    from codir_edge.compress.shapes import budget_inputs
    from codir_edge.data import DataSpec, get_task, load_train_dev

    teacher = teacher_folder()
    config = AutoConfig.from_pretrained(str(teacher))
    tokenizer = AutoTokenizer.from_pretrained(str(teacher))
    _, dev, _ = load_train_dev(get_task("sst2"), DataSpec(str(ROOT.parent / "shared/data/glue/SST-2")))
    texts = [(text, None) for text in dev.texts]
    return config, budget_inputs("real", 1, tokenizer, texts, 128, config.vocab_size)


def time_every_shape(config, inputs) -> dict:
    """shape label -> its timing row, every shape of the grid timed once."""
    import tempfile
    from pathlib import Path

    from codir_edge.compress.shapes import _int8_graph, _time, candidate_shapes
    from codir_edge.devices.session import DeviceSession, write_batches
    from codir_edge.devices.spec import select_devices

    device = select_devices(None, None)[0]
    table = {}
    with tempfile.TemporaryDirectory(prefix="budget-search-") as scratch, DeviceSession(device) as session:
        work = Path(scratch)
        group = write_batches([[row] for row in inputs.rows], inputs.pad_id, work)
        placed = session.stage([group])
        placed_inputs = (placed[group.files[0]], placed[group.files[1]])
        for shape in candidate_shapes(config):
            folder = work / f"{shape.layers}-{shape.heads}-{shape.ffn}"
            folder.mkdir()
            graph = _int8_graph(config, shape, folder)
            table[key(shape)] = _time(session, graph, placed_inputs, inputs.threads, shape.label)
            print(f"{shape.label}: p95 {table[key(shape)]['p95_ms']:.3f} ms", flush=True)
    return table


def key(shape) -> str:
    return f"{shape.layers}-{shape.heads}-{shape.ffn}"


def replay(config, table: dict, budget_ms: float) -> dict:
    from codir_edge.compress.shapes import candidate_shapes, largest_that_fits, parameters

    sizes = {s: parameters(config, s) for s in candidate_shapes(config)}
    shapes = sorted(sizes, key=lambda s: (sizes[s], s.layers))
    out = {}
    for name, search in (("22df184", scan_22df184), ("now", largest_that_fits)):
        timed: list[str] = []

        def measure(shape, timed=timed):
            timed.append(key(shape))
            return table[key(shape)]

        chosen, _ = search(shapes, measure, budget_ms, {shapes[0]: measure(shapes[0])})
        out[name] = {"chosen": key(chosen), "parameters": sizes[chosen], "timed": len(timed), "order": timed}
    out["fitting"] = sum(1 for s in shapes if table[key(s)]["p95_ms"] <= budget_ms)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=0.7)
    args = parser.parse_args()
    saved = WORK / "budget_search"
    saved.mkdir(parents=True, exist_ok=True)
    config, inputs = setup()
    every_path = saved / "every.json"
    if not every_path.is_file():
        started = time.perf_counter()
        table = time_every_shape(config, inputs)
        every_path.write_text(json.dumps({"table": table, "wall_s": time.perf_counter() - started}))
    every = json.loads(every_path.read_text())
    live_path = saved / f"live-{args.budget:g}.json"
    if not live_path.is_file():
        from codir_edge.compress.shapes import search
        from codir_edge.core.progress import stage_progress
        from codir_edge.devices.spec import select_devices

        started = time.perf_counter()
        with stage_progress(True) as bars:
            found = search(config, args.budget, inputs, select_devices(None, None)[0], bars)
        found["wall_s"] = time.perf_counter() - started
        live_path.write_text(json.dumps(found))
    live = json.loads(live_path.read_text())
    replayed = replay(config, every["table"], args.budget)
    chosen = live["chosen"]
    path = write_result("budget_search", {
        "budget_ms": args.budget, "seq_len": "real", "threads": 1, "shapes": len(every["table"]),
        "replayed_on_every_timing": replayed, "every_wall_s": every["wall_s"],
        "live": {"chosen": f"{chosen['layers']}-{chosen['heads']}-{chosen['ffn']}", "timed": live["timed"],
                 "wall_s": live["wall_s"], "p95_ms": chosen["p95_ms"]},
        "table": every["table"],
    })  # fmt: skip
    print(json.dumps({k: v for k, v in replayed.items() if k != "table"}, indent=1))
    print(f"live: chose {chosen['layers']}-{chosen['heads']}-{chosen['ffn']}, timed {live['timed']}, "
          f"{live['wall_s']:.0f} s; wrote {path}")  # fmt: skip


if __name__ == "__main__":
    main()
