"""Write ``benchmarks/RESULTS.md`` from the JSON results under ``benchmarks/results`` (nothing is
measured here: every number comes from a result file, which names its machine, versions, commit
and command). A missing result is listed with the command that produces it.

    python benchmarks/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

from _models import RESULTS, ROOT, paired_ratio

OUT = ROOT / "benchmarks" / "RESULTS.md"
OBJECTIVES = ("none", "kd", "mse", "codir")


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def provenance(result: dict) -> str:
    env = result.get("environment", {})
    machine = env.get("machine", {})
    versions = env.get("provenance", {}).get("versions", {})
    shown = ", ".join(
        f"{k} {versions[k]}" for k in ("torch", "transformers", "onnxruntime", "optimum-onnx") if k in versions
    )
    command = " ".join(env.get("argv", [])) or "?"
    return (
        f"<sub>{machine.get('cpu', '?')}, {machine.get('logical_cores', '?')} cores; {shown}; "
        f"commit {env.get('commit', '?')}; `python benchmarks/{Path(command.split()[0]).name}"
        f"{(' ' + ' '.join(command.split()[1:])) if len(command.split()) > 1 else ''}`</sub>"
    )


def missing(name: str, command: str) -> list[str]:
    return [f"_`{name}.json` not written yet: run `{command}`._", ""]


def section(title: str, name: str, command: str) -> tuple[list[str], dict | None]:
    """A section's heading and its result, or the heading and how to produce the missing result."""
    result = load(name)
    heading = [f"## {title}", ""]
    return (heading if result is not None else heading + missing(name, command)), result


def pct(value: float) -> str:
    return f"{100 * value:.2f}"


def quality_section() -> list[str]:
    lines = ["## Distillation quality", ""]
    lines += [
        "Every student is trained by `codir-edge compress` from the fine-tuned all-MiniLM-L6-v2 teacher "
        "(6 layers), skip-initialised, same epochs, length and seeds for every objective; the metric is "
        "the task's GLUE metric on the dev set (accuracy; F1 for MRPC). Mean ± half the range over seeds. "
        "Seconds per run are wall times on a shared 2-core machine, often beside other jobs: the step-cost "
        "benchmark below is the controlled comparison.",
        "",
    ]
    script = "python benchmarks/compress_quality.py"
    final = f"{script} --phase final"
    runs = [
        ("compress_quality", "SST-2, 3-layer student", script),
        ("compress_quality_sst2_2l", "SST-2, 2-layer student", f"{final} --layers 2"),
        ("compress_quality_mrpc_3l", "MRPC, 3-layer student", f"{final} --task mrpc --epochs 2 --max-length 128"),
        ("compress_quality_rte_3l", "RTE, 3-layer student", f"{final} --task rte --epochs 2 --max-length 128"),
    ]
    for name, title, command in runs:
        lines += [f"### {title}", ""]
        result = load(name)
        if result is None:
            lines += missing(name, command)
            continue
        teacher = result["teacher_accuracy"]
        metric = result.get("metric", "accuracy")
        lines += [
            f"Teacher {metric}: **{pct(teacher)}**. {result['epochs']} epoch(s), max length {result['max_length']}, "
            f"seeds {', '.join(map(str, result['seeds']))}; CoDIR setting {result['codir_setting']}.",
            "",
            f"| objective | {metric} mean | ± | of teacher | per seed | s per run |",
            "|---|---|---|---|---|---|",
        ]
        for objective in OBJECTIVES:
            row = result["objectives"][objective]
            seeds = " / ".join(pct(v) for v in row["accuracy"])
            seconds = sum(row["seconds"]) / len(row["seconds"])
            bold = "**" if objective == "codir" else ""
            lines.append(
                f"| {objective} | {bold}{pct(row['mean'])}{bold} | {pct(row['spread'])} | "
                f"{row['mean'] / teacher:.2%} | {seeds} | {seconds:.0f} |"
            )
        lines += ["", provenance(result), ""]
    return lines


TRANSFER_ROWS = {
    "none": "`none`, labels only",
    "kd-labels": "`kd`, labels only",
    "kd": "`kd` + unlabelled text",
    "codir": "`codir` + unlabelled text",
    "codir-augment": "`codir` + augmentation",
}


def transfer_section() -> list[str]:
    lines, result = section(
        "Few labels plus unlabelled text (transfer set)", "transfer_set", "python benchmarks/transfer_set.py"
    )
    if result is None:
        return lines
    lines += [
        f"SST-2 with a seeded sample of labelled training sentences; the rest of the training set, labels dropped, "
        f"as `--unlabeled` text ({result['unlabeled_per_epoch']:,} of it per epoch); the MiniLM teacher fine-tuned "
        f"on the full set; {result['student_layers']}-layer students, {result['epochs']} epoch, max length "
        f"{result['max_length']}, seeds {', '.join(map(str, result['seeds']))}. The labels-only rows repeat each "
        "labelled sentence (`--labeled-repeat`) to take the steps of the unlabelled-text rows; the augmentation "
        "row makes `--augment` copies of each labelled sentence (about as many as the unlabelled rows of an "
        "epoch), of which those that repeat another are dropped, so it takes fewer steps. Dev accuracy mean ± "
        "half the range over seeds; wall time is the median run's, the teacher bank's one pass (cached, then "
        "reused by every later run on the same rows) not included.",
        "",
    ]
    for budget, row in result["budgets"].items():
        teacher = row["teacher_accuracy"]
        configs = row["configs"]
        none = configs.get("none", {}).get("mean")
        lines += [
            f"**{int(budget):,} labels** (teacher {pct(teacher)}):",
            "",
            "| student | dev accuracy | of the teacher | vs `none` | steps | train ex/s | wall s | rows the teacher "
            "labels (per epoch) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, label in TRANSFER_ROWS.items():
            if name not in configs:
                continue
            c = configs[name]
            versus = f"{100 * (c['mean'] - none):+.2f}" if none is not None else "-"
            transfer = c.get("transfer_set") or {}
            extra = transfer.get("unlabeled_rows", 0) + transfer.get("augmented_rows", 0)
            per_epoch = transfer.get("rows_per_epoch", 0) - transfer.get("labeled_rows", 0)
            wall = sorted(c["wall_seconds"])[len(c["wall_seconds"]) // 2]  # the seed that built the bank is slowest
            lines.append(
                f"| {label} | {pct(c['mean'])} ± {pct(c['spread'])} | {c['mean'] / teacher:.1%} | {versus} | "
                f"{c['steps']} | {c['examples_per_s']:.0f} | {wall:.0f} | {extra:,} ({per_epoch:,}) |"
            )
        banks = [c["bank_build_seconds"] for c in configs.values() if c.get("transfer_set")]
        lines += ["", f"Teacher bank over the labelled and unlabelled rows: {max(banks):.0f} s, once.", ""]
    lines += [provenance(result), ""]
    for path in sorted(RESULTS.glob("transfer_set_lambda*.json")):
        probe = json.loads(path.read_text())
        for budget, row in probe["budgets"].items():
            codir = row["configs"]["codir"]
            base = result["budgets"].get(budget, {}).get("configs", {})
            against = ", ".join(f"`{n}` {pct(base[n]['mean'])}" for n in ("codir", "kd") if n in base)
            lines += [
                f"Probe: `codir` + unlabelled text with λ = {probe['contrastive_weight']:g} at {int(budget):,} labels, "
                f"seeds {', '.join(map(str, probe['seeds']))}: {pct(codir['mean'])} ± {pct(codir['spread'])} "
                f"(the table above: {against}).",
                "",
                provenance(probe),
                "",
            ]
    return lines


DEPTH_ONLY = ("2L", "3L", "4L")


def width_verdicts(students: dict) -> dict:
    """The issue's targets, computed from the rows: dominance, the 0.6x student, CoDIR's margin."""

    def real(name: str) -> float:
        return students[name]["latency"]["real"]["p50_ms"]

    def long(name: str) -> float:
        return students[name]["latency"]["128"]["p50_ms"]

    pruned = [n for n in students if n not in DEPTH_ONLY]
    depth = [n for n in DEPTH_ONLY if n in students]
    dominating = []
    for p in pruned:
        for d in depth:
            for objective in ("codir", "kd"):
                a, b = students[p][objective], students[d][objective]
                if real(p) < real(d) and long(p) < long(d) and min(a["accuracy"]) >= max(b["accuracy"]):
                    dominating.append((p, d, objective, a["mean"] - b["mean"]))
    base = "3L"
    fast = []
    if base in students:
        for p in pruned:
            ratio = real(p) / real(base)
            gap = students[p]["codir"]["mean"] - students[base]["codir"]["mean"]
            fast.append((p, ratio, long(p) / long(base), gap))
    margins = {n: students[n]["codir"]["mean"] - students[n]["kd"]["mean"] for n in students}
    return {"dominating": dominating, "fast": fast, "margins": margins}


def width_section() -> list[str]:
    lines, result = section(
        "Narrower students: width pruning against depth", "width_pruning", "python benchmarks/width_pruning.py"
    )
    if result is None:
        return lines
    students = result["students"]
    base = students.get("3L")
    lines += [
        f"SST-2, the MiniLM teacher ({pct(result['teacher_accuracy'])}%), students distilled for {result['epochs']} "
        f"epoch on a seeded {result['train_samples']:,} of the training sentences at max length "
        f"{result['max_length']}, seeds {', '.join(map(str, result['seeds']))}; dev accuracy mean ± half the range. "
        "Width-pruned students keep the named fraction of heads (h) and FFN neurons (f) per layer, ranked by the "
        f"teacher's |dL/dmask|. Latency: {result['latency_setting']}, the first seed's `codir` student, "
        f"median over {result['rounds']} rounds of `profile` across all bundles; × 3L is the ratio to the "
        "3-layer depth-only student.",
        "",
        "| student | layers | heads | FFN | parameters | `codir` | `kd` | `codir` − `kd` | INT8 p50 real (ms) | × 3L "
        "| INT8 p50 @128 (ms) | × 3L | INT8 accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in students.items():
        pruning = row["codir"].get("pruning") or {}
        heads = pruning.get("heads_per_layer", result["teacher_heads"])
        ffn = pruning.get("ffn_width", result["teacher_ffn"])
        c, k, lat = row["codir"], row["kd"], row["latency"]
        ratio = {key: f"{lat[key]['p50_ms'] / base['latency'][key]['p50_ms']:.2f}" if base else "-"
                 for key in ("real", "128")}  # fmt: skip
        int8 = lat.get("int8_accuracy")
        lines.append(
            f"| {name} | {row['layers']} | {heads} | {ffn} | {c['parameters'] / 1e6:.1f}M | {pct(c['mean'])} ± "
            f"{pct(c['spread'])} | {pct(k['mean'])} ± {pct(k['spread'])} | {100 * (c['mean'] - k['mean']):+.2f} | "
            f"{lat['real']['p50_ms']:.2f} | {ratio['real']} | {lat['128']['p50_ms']:.2f} | {ratio['128']} | "
            f"{pct(int8) if int8 is not None else '-'} |"
        )
    verdicts = width_verdicts(students)
    lines += ["", "![accuracy against INT8 latency](results/width_pruning.png)", ""]
    if verdicts["dominating"]:
        shown = "; ".join(f"{p} over {d} with `{o}` ({100 * gap:+.2f} points, every seed at least as accurate)"
                          for p, d, o, gap in verdicts["dominating"])  # fmt: skip
        lines.append(f"Pruned students faster at both lengths and at least as accurate on every seed: {shown}.")
    else:
        lines.append("No pruned student is both faster at both lengths and at least as accurate on every seed "
                     "as a depth-only one.")  # fmt: skip
    lines.append("")
    for p, ratio, ratio128, gap in verdicts["fast"]:
        lines.append(f"- {p}: {ratio:.2f}× the 3-layer student's INT8 p50 on real sentences ({ratio128:.2f}× at 128), "
                     f"`codir` accuracy {100 * gap:+.2f} points against it.")  # fmt: skip
    margins = verdicts["margins"]
    shown = ", ".join(f"{n} {100 * m:+.2f}" for n, m in margins.items())
    lines += ["", f"`codir` − `kd` per student (points): {shown}.", "", provenance(result), ""]
    return lines


def pre_section() -> list[str]:
    lines, result = section("CoDIR-Pre, then CoDIR-Fine", "codir_pre", "python benchmarks/codir_pre.py")
    if result is None:
        return lines
    pre = result["pre"]
    excluded = ", ".join(result["corpus_excludes"])
    lines += [
        f"Pre stage, once: the bundled all-MiniLM-L6-v2 (a bare backbone: contrastive term only) into a "
        f"3-layer general student on {pre['train_texts']:,} distinct GLUE texts (all files, labels dropped, "
        f"except {excluded}; {pre['held_out']} held out), {pre['epochs']} epoch, max length {pre['max_length']}: "
        f"**{pre['wall_seconds'] / 60:.1f} min** on {pre['device']} (bank {pre['bank_seconds']:.0f} s, "
        f"training {pre['train_seconds']:.0f} s at {pre['texts_per_s']:.0f} texts/s); held-out retrieval "
        f"top-1 {pct(pre['retrieval_top1'])}%, held-out linear CKA with the teacher's layer summaries "
        f"{pre['held_out_cka']['skip']:.3f} for the skip-initialised student and "
        f"{pre['held_out_cka']['pre']:.3f} after the pre stage.",
        "",
        "Fine stage: codir objective from the task teacher, 3-layer student, from the general student "
        "(`--student`) or from skip initialisation, same settings as the quality runs above.",
        "",
        "| task | start | metric | mean | ± | of teacher | per seed | s per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"].values():
        seeds = " / ".join(pct(v) for v in row["scores"])
        seconds = sum(row["fine_seconds"]) / len(row["fine_seconds"])
        start = "CoDIR-Pre student" if row["init"] == "pre" else "skip init"
        lines.append(
            f"| {row['task']} | {start} | {row['metric']} | {pct(row['mean'])} | {pct(row['spread'])} | "
            f"{row['mean'] / row['teacher']:.2%} | {seeds} | {seconds:.0f} |"
        )
    lines += ["", provenance(result), ""]
    return lines


def export_section() -> list[str]:
    lines, result = section(
        "INT8 cost and our export against Optimum's", "export_latency", "python benchmarks/export_latency.py"
    )
    if result is None:
        return lines
    lines += ["| model | variant | size MB | SST-2 dev accuracy |", "|---|---|---|---|"]
    for row in result["rows"]:
        if row["seq"] == 16 and row["threads"] == 1:
            accuracy = row["sst2_dev_accuracy"]
            lines.append(
                f"| {row['model']} | {row['variant']} | {row['size_mb']:.1f} | "
                f"{pct(accuracy) if accuracy is not None else 'n/a'} |"
            )
    lines += ["", provenance(result), ""]
    return lines


def latency_section() -> list[str]:
    lines, result = section("Latency, batch 1", "latency", "python benchmarks/latency.py")
    if result is None:
        return lines
    lines += [
        f"Median ms over {result['rounds']} rounds (fresh process each, variants interleaved), {result['runs']} runs "
        "each at seq 16 and 128; `real` runs every SST-2 dev sentence once at its own length (p95 in brackets).",
        "",
    ]
    variants = list(dict.fromkeys(row["variant"] for row in result["rows"]))
    lines += ["| threads | seq | " + " | ".join(variants) + " |", "|---|---|" + "---|" * len(variants)]
    for threads in sorted({row["threads"] for row in result["rows"]}):
        for seq in result["seqs"]:
            got = {r["variant"]: r for r in result["rows"] if (r["threads"], r["seq"]) == (threads, seq)}
            cells = []
            for variant in variants:
                row = got[variant]
                cells.append(f"{row['median_ms']:.2f}" + (f" ({row['p95_ms']:.2f})" if seq == "real" else ""))
            lines.append(f"| {threads} | {seq} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| threads | seq | student int8 / teacher Optimum int8 (target ≤ 0.5) | teacher eager / student int8 (≥ 6) "
        "| ours / Optimum, same student (≤ 0.9) | ours / Optimum, same teacher |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["ratios"]:
        lines.append(
            f"| {r['threads']} | {r['seq']} | {r['student_int8_over_teacher_optimum_int8']:.3f} | "
            f"{r['teacher_eager_over_student_int8']:.1f} | {r['ours_over_optimum_same_student']:.3f} | "
            f"{r['ours_over_optimum_same_teacher']:.3f} |"
        )
    lines += ["", *tuning_lines(result), provenance(result), ""]
    return lines


def tuning_lines(result: dict) -> list[str]:
    """What the student's export chose per thread count, every candidate's score, and its fixed-shape
    variant's accelerator figures."""
    bundle = result.get("student_bundle")
    if not bundle:
        return []
    lines = ["The student bundle's choice per thread count (score: median over the fastest, geometric mean over "
             "lengths 16, 128 and real; timed by `export` itself):", "",
             "| threads | kind | shipped | candidates' scores |", "|---|---|---|---|"]  # fmt: skip
    for threads, picks in bundle["deployment"].items():
        for kind, candidate in picks.items():
            scores = bundle["scores"].get(threads, {}).get(kind, {})
            ranked = sorted(scores.items(), key=lambda x: x[1])
            shown = ", ".join(f"{n.removeprefix('int8:')} {v:.2f}" for n, v in ranked)
            lines.append(f"| {threads} | {kind} | {candidate} | {shown} |")
    fixed = bundle.get("fixed")
    if fixed:
        batch, length = fixed["fixed_shape"]
        lines += ["", f"Fixed-shape variant ({batch}x{length}, static QDQ u8, MatMuls quantized; SST-2 dev accuracy "
                  f"{pct(fixed['accuracy']['accuracy'])}, {fixed.get('truncated_rows', 0)} sentences cut at {length}), "
                  "onnxruntime's usability checker:", "",
                  "| accelerator | nodes taken | share | partitions | verdict | unsupported operators |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for name, u in fixed["usability"].items():
            ops = ", ".join(o.split(":")[-1] for o in u["unsupported_ops"])
            lines.append(f"| {name} | {u['supported_nodes']} / {u['nodes']} | {pct(u['share'])} | {u['partitions']} | "
                         f"{u['verdict']} | {ops} |")  # fmt: skip
    return [*lines, ""]


def accuracy_aware_section() -> list[str]:
    lines, result = section("Accuracy-aware INT8 on a damaged model", "int8_accuracy_aware",
                            "python benchmarks/int8_accuracy_aware.py")  # fmt: skip
    if result is None:
        return lines
    damage = result["damage"]
    kept = result["kept_in_float"]
    lines += [
        f"{result['model']}; layer {damage['layer']}'s attention value feature {damage['feature']} scaled by "
        f"{damage['outlier']:g} and the output projection's matching column by its inverse (same fp32 function). "
        f"Dynamic INT8, plain graph, limit {result['limit_points']} points.",
        "",
        "| | SST-2 dev drop vs fp32 (points) |",
        "|---|---|",
        f"| healthy model, all {result['quantized_matmuls']} MatMuls quantized | {result['healthy_int8_drop']:.2f} |",
        f"| damaged model, all quantized (export failed here before) | {result['drop_fully_quantized']:.2f} |",
        f"| damaged model, {len(kept)} kept in fp32 ({', '.join(kept)}) | {result['drop_after']:.2f} |",
        "",
        "Search trials (MatMuls kept → drop): " + ", ".join(f"{t['kept']} → {t['drop']:.2f}" for t in result["trials"]),
        "",
        "| setting | " + " | ".join(next(iter(result["latency_ms"].values()))) + " |",
        "|---|" + "---|" * len(next(iter(result["latency_ms"].values()))),
    ]
    for key, row in result["latency_ms"].items():
        lines.append(f"| {key} | " + " | ".join(f"{v:.2f} ms" for v in row.values()) + " |")
    lines += ["", provenance(result), ""]
    return lines


def limit_section() -> list[str]:
    lines, result = section(
        "The limit: int8 matrix-multiply throughput", "int8_matmul", "python benchmarks/int8_matmul.py"
    )
    if result is None:
        return lines
    macs = result["student_macs"]
    lines += [
        f"The student at sequence length {result['seq']}: {macs['total'] / 1e6:.0f} M multiply-accumulates "
        f"({macs['linear'] / 1e6:.0f} M in quantized linear layers, {macs['attention'] / 1e6:.0f} M in the float "
        "attention products). GMAC/s of single-operator graphs, median of rounds:",
        "",
        "| threads | op | shape | GMAC/s |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(f"| {row['threads']} | {row['op']} | {row['shape']} | {row['gmacs']:.1f} |")
    lines += [
        "",
        "| threads | machine peak GMAC/s (from) | student int8 ms | student GMAC/s "
        "| fraction of peak (≥ 55% at 1 thread) |",
        "|---|---|---|---|---|",
    ]
    for s in result["summary"]:
        lines.append(
            f"| {s['threads']} | {s['peak_gmacs']:.1f} ({s['peak_from']}) | {s['student_int8_ms']:.3f} | "
            f"{s['student_gmacs']:.1f} | **{s['fraction_of_peak']:.1%}** |"
        )
    breakdown = result.get("op_breakdown") or {}
    if breakdown and not isinstance(next(iter(breakdown.values())), dict):  # written before it was per thread
        breakdown = {"1": breakdown}
    if breakdown:
        files = {str(s["threads"]): s.get("student_file", "") for s in result["summary"]}
        outside = {str(s["threads"]): s.get("outside_quantized_gemms") for s in result["summary"]}
        lines += ["", f"Where the student's time goes at seq {result['seq']} (onnxruntime's profiler, share of the "
                  "run; the file each thread count ships):", ""]  # fmt: skip
        threads = list(breakdown)
        ops = list(dict.fromkeys(op for t in threads for op in breakdown[t]))
        lines += ["| operator | " + " | ".join(f"{t} thread(s): {files.get(t, '')}" for t in threads) + " |",
                  "|---|" + "---|" * len(threads)]  # fmt: skip
        lines += [f"| {op} | " + " | ".join(f"{breakdown[t].get(op, 0):.1%}" for t in threads) + " |" for op in ops]
        if any(v is not None for v in outside.values()):
            cells = " | ".join(f"**{outside[t]:.1%}**" if outside.get(t) is not None else "-" for t in threads)
            lines.append(f"| outside the quantized GEMMs (QAttention counted outside) | {cells} |")
    lines += ["", provenance(result), ""]
    return lines


def peer_section() -> list[str]:
    """Our shipped graphs against Optimum's O2 INT8 and against our pick before the tuner timed the
    peer's recipe, operator by operator; and the latency ratios before and after."""
    lines, result = section("Against the peer's recipe, operator by operator", "op_profile",
                            "python benchmarks/op_profile.py")  # fmt: skip
    if result is None:
        return lines
    lines += [
        f"onnxruntime's profiler, batch 1, the student's INT8 graphs, median of {result.get('rounds', 1)} rounds "
        "(fresh process each, graphs interleaved): ms per run by operator type (nodes in brackets); \"outside "
        "kernels\" = run time in no kernel (executor, thread-pool dispatch). The profiler adds a little to every "
        "kernel, and more at 2 threads, so a graph with more nodes reads slower than it runs: shares and "
        "differences between like graphs are the reading; latency is in the section above.",
        "",
    ]
    for threads in (2, 1):
        for seq in (16, 128):
            columns = [row for row in result["rows"] if (row["threads"], row["seq"]) == (threads, seq)]
            ops = sorted({op for row in columns for op in row["ops_ms"]},
                         key=lambda op: -max(row["ops_ms"].get(op, 0) for row in columns))  # fmt: skip
            lines += [f"**{threads} thread(s), length {seq}**", "",
                      "| operator | " + " | ".join(row["graph"] for row in columns) + " |",
                      "|---|" + "---|" * len(columns)]  # fmt: skip
            for op in ops:
                cells = [f"{row['ops_ms'].get(op, 0):.3f} ({row['nodes'].get(op, '-')})" for row in columns]
                lines.append(f"| {op} | " + " | ".join(cells) + " |")
            lines += ["| **run** | " + " | ".join(f"**{row['run_ms']:.3f}**" for row in columns) + " |", ""]
    lines += ["Files: " + "; ".join(f"{k}: `{Path(v['file']).name}`" for k, v in result["graphs"].items()), ""]
    from latency import paired as latency_paired

    old, new = load("latency_before_peer"), load("latency")
    if old is not None and new is not None:
        commits = [r["environment"].get("commit", "?") for r in (old, new)]
        lines += [f"Ours / Optimum O2 INT8, `latency.py`, before (commit {commits[0]}) and after "
                  f"(commit {commits[1]}), "
                  "each its own run; \"paired\" is the median over rounds of each round's ratio (the two timed "
                  "side by side), which the host's drift between rounds moves less:", "",
                  "| threads | seq | student, before | after | after, paired | teacher, before | after | "
                  "student int8 / teacher Optimum int8, before | after |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for a, b in zip(old["ratios"], new["ratios"], strict=True):
            paired = b.get("ours_over_optimum_same_student_paired") or latency_paired(
                new["rows"], b["threads"], b["seq"], "student ours int8", "student Optimum O2 int8")
            lines.append(f"| {a['threads']} | {a['seq']} | {a['ours_over_optimum_same_student']:.3f} | "
                         f"**{b['ours_over_optimum_same_student']:.3f}** | {paired:.3f} | "
                         f"{a['ours_over_optimum_same_teacher']:.3f} | {b['ours_over_optimum_same_teacher']:.3f} | "
                         f"{a['student_int8_over_teacher_optimum_int8']:.3f} | "
                         f"{b['student_int8_over_teacher_optimum_int8']:.3f} |")  # fmt: skip
        lines.append("")
    lines += [provenance(result), ""]
    return lines


def cost_section() -> list[str]:
    lines = ["## Distillation step cost and the teacher cache", ""]
    for k in ("k25", "k100"):
        result = load(f"compress_step_cost_{k}")
        if result is None:
            lines += missing(f"compress_step_cost_{k}", "python benchmarks/compress_step_cost.py")
            continue
        steps = result["median_step_ms"]
        ratios = result["ratio_to_none"]
        lines += [
            f"K = {result['negatives']}: batch {result['batch_size']}, max length {result['max_length']}, "
            f"{result['student_layers']}-layer student, {result['device']} {result['precision']}, "
            f"{result['steps_per_objective']} steps each.",
            "",
            "| objective | median step ms | / none |",
            "|---|---|---|",
        ]
        lines += [f"| {o} | {steps[o]:.1f} | {ratios[o]:.3f} |" for o in steps]
        if "kd+unlabeled" in steps:
            lines += [
                "",
                f"`+unlabeled`: the same batches with {result['unlabeled_rows_in_transfer_variants']} of the bank's "
                "rows marked as a transfer set (no label: no CE, negatives by the teacher's argmax).",
            ]
        bank = result["bank_examples_per_s"]
        lines += [
            "",
            f"Teacher bank (one pass of the teacher, cached): {bank['mean']:.0f} examples/s (mean pooling); "
            f"the full SST-2 train set (67,349 examples) in {67349 / bank['mean']:.0f} s.",
            "",
            provenance(result),
            "",
        ]
    return lines


def bank_section() -> list[str]:
    lines, result = section("The teacher bank out of core", "bank_out_of_core", "python benchmarks/bank_out_of_core.py")
    if result is None:
        return lines
    lines += [
        f"{result['steps']} CoDIR-Pre steps of a 3-layer, 384-wide student per run, {result['rounds']} runs per bank "
        "alternated, each in a fresh process; medians over runs. Targets: peak RSS within 150 MB, step within 5%.",
        "",
        "| bank | rows | file MB | read from | median step ms | peak RSS MB | writer peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, bank in result["banks"].items():
        lines.append(
            f"| {name} | {bank['rows']:,} | {bank['bytes'] / 2**20:.0f} | {bank['runs'][0]['placement']} | "
            f"{bank['median_step_ms']:.1f} | {bank['peak_rss_mb']:.0f} | {bank['writer_peak_rss_mb']:.0f} |"
        )
    lines += [
        "",
        f"Peak RSS difference (2 GB - 0.1 GB): **{result['peak_rss_difference_mb']:+.0f} MB**; step time ratio: "
        f"**{result['step_time_ratio']:.3f}**.",
        "",
        provenance(result),
        "",
    ]
    return lines


def repro_section() -> list[str]:
    lines, result = section("The training-spine refactor reproduces the recorded figures", "refactor_repro",
                            "python benchmarks/refactor_repro.py")  # fmt: skip
    if result is None:
        return lines
    lines += ["| run | recorded | reproduced | equal |", "|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['what']} | {row['recorded']:.6f} | {row['reproduced']:.6f} | {row['exact']} |")
    return lines + ["", provenance(result), ""]


def families_section() -> list[str]:
    lines, result = section("Every encoder family through the chain", "families", "python benchmarks/families.py")
    if result is None:
        return lines
    lines += [
        "Random 4-layer, 32-wide classifiers (tokenizers of their own kind trained on SST-2 sentences) compressed "
        "to 2 layers on 400 SST-2 sentences, exported (dynamic INT8, .ort, strings-in), verified and profiled on "
        "200 SST-2 dev sentences (batch 1, 1 thread, 100 runs). The models are random: accuracy means nothing "
        f"here. Registry: `codir_edge/models/families.py`, {result['registry_lines']} lines.",
        "",
        "| family | compress | parity max abs diff | fused Attention | INT8 = fp32 label | strings-in | .ort | verify "
        "| p50 ms real fp32 / int8 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        strings = row.get("strings")
        shown = "-"
        if strings:
            ties = strings.get("equal_score_ties", 0)
            shown = f"{strings['texts'] - ties}/{strings['texts']} texts" + (
                f" ({ties} equal-score tie{'s' if ties > 1 else ''})" if ties else ""
            )
        p50 = row.get("p50_ms_real", {})
        latency = f"{p50.get('fp32', float('nan')):.2f} / {p50.get('int8', float('nan')):.2f}" if p50 else "-"
        lines.append(
            f"| {row['family']} | {'ok' if row['compress'] else 'FAILED'} | {row.get('parity_max_abs_diff', 0):.1e} | "
            f"{row.get('fused_attention', '-')} | {row.get('int8_agreement', 0):.1%} | {shown} | "
            f"{'yes' if row.get('ort') else 'no'} | {'ok' if row.get('verify') else 'FAILED'} | {latency} |"
        )
    return lines + ["", provenance(result), ""]


def remote_section() -> list[str]:
    lines, result = section("Profiling over SSH", "remote_profile", "python benchmarks/remote_profile.py")
    if result is None:
        return lines
    cache = result["cache"]
    lines += [
        "A real OpenSSH server on 127.0.0.1 and a device Python holding only onnxruntime and numpy; "
        f"{result['model']}; batch 1, 1 thread, {result['runs']} runs per configuration; p50 is the median "
        f"over {result['repeats']} alternated fresh-process repeats of each device.",
        "",
        "| seq | p50 ms local | p50 ms over SSH (loopback) | SSH / local |",
        "|---|---|---|---|",
    ]
    for row in result["p50"]:
        lines.append(f"| {row['seq_len']} | {row['local_p50_ms']:.3f} | {row['ssh_p50_ms']:.3f} | {row['ratio']:.3f} |")
    lines += [
        "",
        f"Device cache: the first run uploaded {cache['first_run_uploaded_bytes'] / 1e6:.1f} MB "
        f"(models {cache['model_bytes'] / 1e6:.1f} MB, plus inputs and the runner) in {cache['first_run_s']:.1f} s; "
        f"the re-run uploaded {cache['rerun_uploaded_bytes']} bytes in {cache['rerun_s']:.1f} s "
        "(on loopback the upload itself is cheap: the time is the measurement).",
        "",
        "Two devices in one report (`to_markdown`, also in `results/remote_profile_report.md`):",
        "",
    ]
    lines += ["> " + line if line else ">" for line in result["two_device_markdown"].strip().splitlines()]
    return lines + ["", provenance(result), ""]


def demo_section() -> list[str]:
    lines, result = section("`codir-edge demo`", "demo", "python benchmarks/demo_run.py")
    if result is None:
        return lines
    lines += [
        f"Wall time **{result['wall_s'] / 60:.1f} min** on this machine{load_note(result)} "
        + "("
        + ", ".join(f"{s['name']} {s['seconds']:.0f} s" for s in result["stages"])
        + ").",
        "",
        "| model | runtime | accuracy | p50 ms | p95 ms | size MB |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['model']} | {row['runtime']} | {pct(row['accuracy'])} | {row['p50_ms']:.2f} | "
            f"{row['p95_ms']:.2f} | {row['size_mb']:.1f} |"
        )
    lines += ["", provenance(result), ""]
    return lines


def load_note(result: dict) -> str:
    """', 2 cores, load average 0.12 before the start': how busy the shared machine was."""
    load = result.get("load_average_before")
    return f", {result['cpus']} cores, load average {load[0]:.2f} before the start" if load else ""


def export_speed_section() -> list[str]:
    lines, result = section("Export's own wall time", "export_speed", "python benchmarks/export_speed.py")
    if result is None:
        return lines
    median, base = result["median_s"], result["baseline"]
    lines += [
        f"The demo's export of its 3-layer student (`--task sst2 --data ../shared/data/glue --max-length 128`), "
        f"{len(result['runs']['baseline'])} interleaved repeats, median wall time{load_note(result)}:",
        "",
        "| code | wall time | × baseline |",
        "|---|---|---|",
        f"| {base} | {median['baseline']:.0f} s | 1.00 |",
        f"| {result['head']}, cold cache (a first export) | {median['first']:.0f} s | {result['first_ratio']:.2f} |",
        f"| {result['head']}, re-export of the unchanged student | {median['again']:.0f} s | "
        f"{result['again_ratio']:.2f} |",
        "",
        "Choices per thread count (fp32 graph / INT8 graph), each run:",
        "",
        "| code | run | " + " | ".join(f"{t} thread(s)" for t in result["runs"]["baseline"][0]["choices"]) + " |",
        "|---|---|" + "---|" * len(result["runs"]["baseline"][0]["choices"]),
    ]
    for arm, rows in result["runs"].items():
        for i, row in enumerate(rows):
            cells = " | ".join(f"{c.get('fp32')} / {str(c.get('int8')).removeprefix('int8:')}"
                               for c in row["choices"].values())  # fmt: skip
            lines.append(f"| {base if arm == 'baseline' else result['head'] + ' ' + arm} | {i + 1} | {cells} |")
    return lines + ["", provenance(result), ""]


def budget_search_section() -> list[str]:
    lines, result = section("Latency-budget search: shapes timed", "budget_search",
                            "python benchmarks/budget_search.py")
    if result is None:
        return lines
    replayed, live = result["replayed_on_every_timing"], result["live"]
    old, now = replayed["22df184"], replayed["now"]
    lines += [
        f"The MiniLM teacher's {result['shapes']} student shapes at `--latency-budget {result['budget_ms']:g} "
        f"--budget-seq-len real` ({result['threads']} thread, p95), {replayed['fitting']} of them within budget. "
        f"Every shape was timed once ({result['every_wall_s'] / 60:.1f} min) and both searches replayed on that one "
        "table, so that they choose from the same numbers:",
        "",
        "| search | shapes timed | chosen (layers-heads-FFN) | parameters |",
        "|---|---|---|---|",
        f"| descending scan (22df184) | {old['timed']} | {old['chosen']} | {old['parameters'] / 1e6:.1f} M |",
        f"| each timing decides the most (now) | {now['timed']} | {now['chosen']} | {now['parameters'] / 1e6:.1f} M |",
        "",
        f"Run live as compress runs it: timed **{live['timed']}** shapes in {live['wall_s']:.0f} s and chose "
        f"{live['chosen']} (p95 {live['p95_ms']:.3f} ms).",
        "",
        provenance(result),
        "",
    ]
    return lines


def apps_section() -> list[str]:
    lines, result = section("The bundle in app runtimes", "apps", "python benchmarks/apps.py")
    if result is None:
        return lines
    clients = ", ".join(f"{k} {v}" for k, v in result["clients"].items())
    lines += [
        f"The demo's student exported with the demo's settings, loaded as exported ({clients}); Python is "
        "onnxruntime with the bundle's tokenizer, one text per call, as the apps call it:",
        "",
        "| dtype | file | client | texts | labels equal | largest score difference | wall |",
        "|---|---|---|---|---|---|---|",
    ]
    for dtype, row in result["results"].items():
        for client, label in (("node", "transformers.js, Node"), ("browser", "transformers.js, headless Chromium")):
            r = row[client]
            lines.append(f"| {dtype} | `{row['file']}` | {label} | {r['texts']} | {r['labels_equal']} | "
                         f"{r['max_score_diff']:.1e} | {r['wall_s']:.1f} s |")  # fmt: skip
    lines += ["", "Each file's runtime needs, from the manifest (measured oldest onnxruntime):", "",
              "| file | MB | IR | opsets | contrib operators | extensions | oldest onnxruntime |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for file, claim in result["claims"].items():
        opsets = ", ".join(f"{k} {v}" for k, v in claim.get("opsets", {}).items()) or "ORT format"
        extensions = claim.get("onnxruntime_extensions")
        lines.append(
            f"| `{file}` | {result['sizes'][file] / 1e6:.1f} | {claim.get('ir_version', '')} | {opsets} | "
            f"{len(claim.get('contrib_operators', []))} | {'>= ' + extensions['min_version'] if extensions else ''} | "
            f"{claim['min_onnxruntime']} |"
        )
    return [*lines, "", provenance(result), ""]


def runtime_floor_section() -> list[str]:
    lines, result = section("The oldest onnxruntime per bundle file", "runtime_floor",
                            "python benchmarks/runtime_floor.py")
    if result is None:
        return lines
    releases, runs = result["releases"], result["runs"]
    lines += [
        "The demo's bundle run on the last patch of every onnxruntime minor release on PyPI (each in its own "
        "environment, onnxruntime-extensions 0.13.0 for the strings graph), outputs held to today's "
        "(atol 1e-4). ✓ runs with the same outputs, ✗ fails to load or run; the manifest's claim beside the "
        "oldest release from which every later one passes:",
        "",
        "| file | claimed | measured | " + " | ".join(r.rsplit(".", 1)[0] for r in releases) + " |",
        "|---|---|---|" + "---|" * len(releases),
    ]
    for file, oldest in result["oldest"].items():
        marks = ["✓" if runs[r][file] == "runs, same outputs" else "✗" for r in releases]
        measured = oldest.rsplit(".", 1)[0] if oldest else "none"
        lines.append(f"| `{file}` | {result['claims'].get(file)} | {measured} | " + " | ".join(marks) + " |")
    return [*lines, "", provenance(result), ""]


def recipe_lines(result: dict) -> list[str]:
    """The teacher's and the students' settings beyond the defaults, where the run recorded them."""
    notes = []
    if result.get("teacher_args"):
        notes.append(f"teacher `finetune {' '.join(result['teacher_args'])}`")
    if result.get("few_labels"):
        notes.append(f"students see {result['few_labels']:,} labelled training rows and the rest of the training "
                     "text without its labels (`--unlabeled`)")  # fmt: skip
    if result.get("student_args"):
        notes.append(f"students `compress {' '.join(result['student_args'])}`")
    return [f"Settings: {'; '.join(notes)}.", ""] if notes else []


def codir_paired_sections() -> list[str]:
    """One section per task benchmarked by codir_paired.py (none until one has run)."""
    lines = []
    for path in sorted(RESULTS.glob("codir_paired_*.json")):
        result = json.loads(path.read_text())
        arms, split = result["arms"], result.get("split", "test")
        epochs = result.get("teacher_epochs", 3)
        backbone = any(name.endswith("-backbone") for name in arms)
        lines += [
            f"## CoDIR against KD, paired: {result['task']}, teacher fine-tuned {epochs} epoch{'s' * (epochs > 1)}",
            "",
            f"MiniLM teacher fine-tuned on the task ({split} accuracy {pct(result['teacher_test'])}), 3-layer "
            f"students, seeds {', '.join(map(str, result['seeds']))}; every arm with one seed sees the same batches "
            f"and dropout masks. Accuracy on the {split} split; paired differences against `kd` in points; "
            f"McNemar's exact test on the pooled {split} predictions; the contrastive term at the end of training "
            "(mean over seeds)"
            + (". Arms ending in `-backbone` start from the bundled backbone's own layers 2, 4, 6 (not fine-tuned) "
               "with a new head, instead of the teacher's, and are paired with `kd-backbone`:" if backbone else ":"),
            "",
            *recipe_lines(result),
            "| arm | mean | of teacher | per seed | minus kd (per seed) | McNemar p (better/worse) | top-1 "
            "| grad share | ex/s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, arm in arms.items():
            seeds = ", ".join(pct(v) for v in arm["per_seed"].values())
            diffs = ", ".join(f"{v:+.2f}" for v in arm.get("paired_minus_kd_points", {}).values()) or "-"
            if arm.get("paired_against", "kd") != "kd":
                diffs += f" (against {arm['paired_against']})"
            test = arm.get("mcnemar_pooled")
            shown = f"{test['p']:.3g}" if test and test["p"] > 0 else "< 1e-300"
            mcnemar = f"{shown} ({test['better']}/{test['worse']})" if test else "-"
            ends = list(arm["contrastive_end"].values())
            top1 = f"{sum(e['contrastive_top1'] for e in ends) / len(ends):.3f}" if ends else "-"
            share = f"{sum(e['contrastive_grad_share'] for e in ends) / len(ends):.3f}" if ends else "-"
            rate = sum(arm["examples_per_s"]) / len(arm["examples_per_s"])
            if len(arm["per_seed"]) < len(result["seeds"]):  # an arm measured on fewer seeds: its mean is not paired
                name = f"{name} (seed {', '.join(map(str, arm['per_seed']))} only)"
            lines.append(f"| {name} | {pct(arm['mean'])} | {arm['of_teacher'] * 100:.1f}% | {seeds} | {diffs} | "
                         f"{mcnemar} | {top1} | {share} | {rate:.0f} |")  # fmt: skip
        lines += ["", provenance(result), ""]
    return lines


def embedding_section() -> list[str]:
    lines, result = section("Sentence embeddings: 3-layer students of all-MiniLM-L6-v2", "embedding_distill",
                            "python benchmarks/embedding_distill.py")  # fmt: skip
    if result is None:
        return lines
    arms, rows = result["arms"], result["rows"]
    base = next((name for name, arm in arms.items() if not any("minus_" in k for k in arm["spearman"])), None)
    lines += [
        f"`compress --task embedding` on {result['texts_per_seed']:,} texts per seed (a seeded sample of "
        f"{result['corpus_texts']:,} train sentences of SST-2, CoLA, MRPC, RTE, STS-B and BANKING77; nothing from a "
        f"scored split), settings `{' '.join(result['settings'])}`, seeds {', '.join(map(str, result['seeds']))}; "
        "every arm with one seed on the same texts, batches and dropout masks. STS-B dev Spearman of cosine; "
        "BANKING77 test accuracy of logistic regression and 1-NN on the embeddings (fit on train.csv). Per seed, "
        f"and paired differences against `{base}` in points. Wall time per arm includes the bank (once per seed, "
        "reused after) and both scorings; the arms ran beside the test suite, so their times are not comparable:",
        "",
        "| model | STS-B Spearman | BANKING77 logistic | BANKING77 1-NN | held-out cosine to teacher | wall s/arm |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['sts']['spearman']:.2f} | {row['banking77']['logistic_accuracy']:.2f} | "
                     f"{row['banking77']['knn1_accuracy']:.2f} | - | - |")  # fmt: skip
    for name, arm in arms.items():
        cells = []
        for metric in ("spearman", "logistic_accuracy", "knn1_accuracy"):
            figures = arm[metric]
            seeds = ", ".join(f"{v:.2f}" for v in figures["per_seed"].values())
            diff = figures.get(f"minus_{base}")
            paired = f"; {' '.join(f'{v:+.2f}' for v in diff.values())}" if diff else ""
            cells.append(f"**{figures['mean']:.2f}** ({seeds}{paired})")
        cosine = sum(arm["held_out_cosine"].values()) / len(arm["held_out_cosine"])
        wall = sum(arm["wall_s"]) / len(arm["wall_s"])
        lines.append(f"| {name} | {' | '.join(cells)} | {cosine:.4f} | {wall:.0f} |")
    ends = {name: list(arm["contrastive_end"].values()) for name, arm in arms.items() if arm["contrastive_end"]}
    for name, values in ends.items():
        top1 = sum(v["contrastive_top1"] for v in values) / len(values)
        share = sum(v["contrastive_grad_share"] for v in values) / len(values)
        lines += ["", f"`{name}`'s contrastive term at the end of training: top-1 {top1:.3f}, gradient share "
                      f"{share:.3f} (mean over seeds)."]  # fmt: skip
    bundle = result.get("bundle")
    if bundle:
        lines += ["", f"The best arm, `{result['best_arm']}` (seed {result['seeds'][0]}), exported with "
                      "`export --task embedding`; each file scored on the same splits (batch 1):", "",
                  "| file | STS-B Spearman | BANKING77 logistic | BANKING77 1-NN |", "|---|---|---|---|"]  # fmt: skip
        for variant, scores in bundle["variants"].items():
            lines.append(f"| {variant} | {pct(scores['sts']['spearman'])} | "
                         f"{pct(scores['banking77']['logistic_accuracy'])} | "
                         f"{pct(scores['banking77']['knn1_accuracy'])} |")  # fmt: skip
        agreement = bundle["min_cosine_to_python"]
        lines += ["", f"Lowest cosine to Python's embedding over the {agreement['texts']:,} STS-B dev sentences "
                      f"({bundle['reference']}):", "", "| loaded by | fp32 | q8 |", "|---|---|---|"]  # fmt: skip
        for where in ("graph_output", "sentence_transformers_onnx", "transformers_js_node"):
            got = agreement.get(where) or {}
            cells = " | ".join(f"{got[d]:.6f}" if d in got else "not run" for d in ("fp32", "q8"))
            lines.append(f"| {where.replace('_', ' ')} | {cells} |")
    lines += side_by_side_lines("embedding_latency", "as a feature-extraction model")
    return [*lines, "", provenance(result), ""]


def side_by_side_lines(name: str, how: str) -> list[str]:
    """The student's INT8 file against its teacher's INT8 through Optimum (``_side_by_side.py``)."""
    latency = load(name)
    if latency is None:
        return []
    lines = ["", f"Latency, batch 1 (`benchmarks/{name}.py`, medians over rounds, fresh process per figure): the "
                 f"student's INT8 file over the teacher's INT8 through Optimum (O2, avx512_vnni dynamic, {how}; "
                 "target <= 0.5):", "",
             "| threads | length | teacher Optimum int8 ms | student fp32 ms | student int8 ms | ratio | "
             "paired ratio |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for ratio in latency["ratios"]:
        rows = {r["variant"]: r for r in latency["rows"]
                if (r["threads"], r["seq"]) == (ratio["threads"], ratio["seq"])}  # fmt: skip
        got = {name: r["median_ms"] for name, r in rows.items()}
        paired = paired_ratio(round_medians(rows["student ours int8"]), round_medians(rows["teacher Optimum O2 int8"]))
        lines.append(f"| {ratio['threads']} | {ratio['seq']} | {got['teacher Optimum O2 int8']:.3f} | "
                     f"{got['student ours fp32']:.3f} | {got['student ours int8']:.3f} | "
                     f"**{ratio['student_int8_over_teacher_optimum_int8']:.3f}** | "
                     f"{paired:.3f} |")  # fmt: skip
    lines += ["", "ratio: of the two medians over rounds; paired: the median over rounds of each round's ratio "
                  "(the two files were timed side by side in a round, so the host's drift between rounds moves "
                  "it less)."]  # fmt: skip
    return [*lines, "", provenance(latency)]


def round_medians(row: dict) -> list[float]:
    return [r["median_ms"] for r in row["rounds"]]


NER_TYPES = ("LOC", "MISC", "ORG", "PER")


def ner_section() -> list[str]:
    lines, result = section("Named entities: 3-layer taggers on CoNLL-2003", "ner_distill",
                            "python benchmarks/ner_distill.py")  # fmt: skip
    if result is None:
        return lines
    teacher, arms, paired = result["teacher"], result["arms"], result["paired"]
    kd = result.get("paired_kd") or {}
    lines += [
        "A teacher fine-tuned from the bundled all-MiniLM-L6-v2 (uncased) with `finetune --task ner` "
        f"(`{' '.join(result['teacher_epochs'])}`, lr 5e-5, batch 16, best dev epoch); 3-layer models (its layers "
        f"2, 4, 6) trained `{' '.join(result['student_epochs'])}` at batch 16 and lr 1e-4, with `compress --task ner` "
        "(kd, codir, mse) or with `finetune` and no teacher; every arm of one seed on the same batches and dropout "
        f"masks, seeds {', '.join(map(str, result['seeds']))}. Test entity F1 (strict IOB2, seqeval's reading), "
        "mean over seeds and per seed, paired differences in points; per-type F1 and token accuracy are means; "
        "wall times are means, and some runs shared the machine with the test suite, so they are not costs. "
        "`mse-all` matches hidden states at every piece (`--pkd-tokens all`), not only at each word's first piece. "
        "`mse-news` adds a transfer set (`--unlabeled`): 28,076 untagged sentences from ../shared's GLUE folders "
        "(MRPC, RTE and STS-B news, train and dev; QNLI dev), whose only targets are the teacher's outputs; its 2 "
        "epochs are 2 passes over both, 3.0 times the steps of the others. "
        "Rows marked `-e4` were trained for 4 epochs instead of 2, and their paired difference is from the "
        "no-teacher model trained as long (`no-teacher-e4`):",
        "",
        "| model | test F1 | minus no-teacher | minus kd | " + " | ".join(NER_TYPES)
        + " | token acc | dev F1 | wall s |",
        "|---|---|---|---|" + "---|" * len(NER_TYPES) + "---|---|---|",
    ]  # fmt: skip
    test = teacher["test"]
    types = " | ".join(f"{test[f'f1_{k}']:.2f}" for k in NER_TYPES)
    lines.append(f"| teacher (6 layers) | **{test['f1']:.2f}** | - | - | {types} | {test['token_accuracy']:.2f} | "
                 f"{teacher['dev_f1']:.2f} | {teacher['wall_s']:.0f} |")  # fmt: skip
    for name, seeds in arms.items():
        rows = list(seeds.values())
        mean = {k: sum(r["test"][k] for r in rows) / len(rows) for k in rows[0]["test"]}
        per_seed = ", ".join(f"{r['test']['f1']:.2f}" for r in rows)
        diff = " ".join(f"{v:+.2f}" for v in paired[name].get("minus_no-teacher", {}).values()) or "-"
        diff_kd = " ".join(f"{v:+.2f}" for v in kd.get(name, {}).get("minus_kd", {}).values()) or "-"
        diff_kd = "-" if name.endswith("-e4") else diff_kd  # kd had half the budget: no pair
        wall = sum(r["wall_s"] for r in rows) / len(rows)
        dev = sum(r["dev_f1"] for r in rows) / len(rows)
        shown = name if len(rows) == len(result["seeds"]) else f"{name} (seed {', '.join(map(str, seeds))} only)"
        lines.append(f"| {shown} | **{mean['f1']:.2f}** ({per_seed}) | {diff} | {diff_kd} | "
                     + " | ".join(f"{mean[f'f1_{k}']:.2f}" for k in NER_TYPES)
                     + f" | {mean['token_accuracy']:.2f} | {dev:.2f} | {wall:.0f} |")  # fmt: skip
    term = []
    for name in (a for a in arms if a.startswith("codir")):
        ends = [r["contrastive_end"] for r in arms[name].values() if r.get("contrastive_end")]
        if ends:
            top1 = sum(e["contrastive_top1"] for e in ends) / len(ends)
            share = sum(e["contrastive_grad_share"] for e in ends) / len(ends)
            term.append(f"`{name}` top-1 {top1:.4f}, gradient share {share:.3f}")
    if term:
        lines += ["", "The token-level contrastive term at the end of training (means over seeds): "
                      + "; ".join(term) + "."]  # fmt: skip
    bundle = result.get("bundle")
    if bundle:
        files = bundle["test"]
        lines += ["", f"The best arm by mean dev F1, `{result['best_arm']}` (`{bundle['student']}`), exported with "
                      "`export --task ner` and scored on test at batch 1:", "",
                  "| file | size MB | test F1 | " + " | ".join(NER_TYPES) + " |",
                  "|---|---|---|" + "---|" * len(NER_TYPES)]  # fmt: skip
        for variant, scores in files.items():
            lines.append(f"| {variant} | {bundle['sizes_mb'][variant]:.1f} | {scores['f1']:.2f} | "
                         + " | ".join(f"{scores[f'f1_{k}']:.2f}" for k in NER_TYPES) + " |")  # fmt: skip
        choice = ", ".join(f"{k} {100 * v:.2f}" for k, v in (bundle.get("int8_choice_dev_f1") or {}).items())
        table = bundle.get("deployment")
        how = ("the INT8 file per thread count is the fastest within the accuracy limit ("
               + ", ".join(f"{t} → {picks['int8']}" for t, picks in table.items())
               + f"); dev F1 of the candidates scored: {choice}.") if table else (
               f"the INT8 graph was chosen by dev F1 among {choice}.")  # fmt: skip
        lines += ["", f"INT8 minus fp32: {bundle['int8_minus_fp32_f1']:+.2f} F1 points (target within 0.5); {how}"]
        lines += _ner_fixed_lines(bundle.get("fixed_shape") or {}, bundle.get("strings"))
        js = bundle.get("transformers_js")
        if js:
            lines += ["", "transformers.js in Node (`examples/apps/node/tag.mjs`) against Python's onnxruntime on "
                          "the same file, every CoNLL-2003 dev sentence: "
                          + "; ".join(f"{d}: {v['differ']} of {v['sentences']:,} sentences differ "
                                      f"({v['words_differ']} word(s))" for d, v in js.items()) + "."]  # fmt: skip
    lines += side_by_side_lines("ner_latency", "as a token-classification model")
    return [*lines, "", provenance(result), ""]


def _ner_fixed_lines(fixed: dict, strings: dict | None) -> list[str]:
    """The tagger bundle's fixed-shape variants (F1 against fp32, the shape's cut, the accelerators'
    verdicts) and what export held its strings graph to."""
    lines = []
    if fixed:
        lines += ["", "Fixed-shape variants (scored fed at their shape; a word past it counts as missed):", "",
                  "| variant | shape | dev F1 (minus fp32) | test F1 (minus fp32) | dev rows cut | MatMuls kept "
                  "in float | accelerator: verdict, share of nodes, partitions |", "|---|---|---|---|---|---|---|"]
        for name, v in fixed.items():
            cut = "-" if v["dev_rows_cut"] is None else v["dev_rows_cut"]
            verdicts = "; ".join(f"{acc} {u['verdict']}, {100 * u['share']:.0f}%, {u['partitions']}"
                                 for acc, u in v["usability"].items())  # fmt: skip
            lines.append(f"| {name} | {v['shape'][0]}x{v['shape'][1]} | {v['dev_f1']:.2f} ({-v['dev_drop']:+.2f}) | "
                         f"{v['test_f1']:.2f} ({v['test_minus_fp32']:+.2f}) | {cut} | "
                         f"{v['kept_float']} | {verdicts} |")  # fmt: skip
    if strings:
        lines += ["", f"`model.strings.onnx` (raw text in; labels, offsets in code points and UTF-16 units, word "
                      f"ids out; on `{strings['from']}`): at export its ids, offsets and word ids equal the "
                      f"tokenizer's on all {strings['texts']} texts ({strings['source']}, the hard cases, "
                      f"{strings['non_ascii']} of them non-ASCII), logits within {strings['max_abs_diff']:.1e}."]
    return lines


def albert_section() -> list[str]:
    """``albert_fusion.json``: ALBERT's first-layer attention fused or not, INT8 side by side."""
    lines, result = section("ALBERT's first layer and the attention fusion", "albert_fusion",
                            "python benchmarks/albert_fusion.py")  # fmt: skip
    if result is None:
        return lines
    counts = result["qattention"]
    lines += [
        "A random 3-layer ALBERT classifier at albert-base-v2's configuration, exported as export does, fused by "
        "onnxruntime's optimizer as the graph is (before: the first layer's attention unfused) and by export's "
        "`fuse` (after: the residual Add's inputs swapped), each quantized as export's dynamic per-channel "
        f"candidate: {counts['before']} and {counts['after']} QAttention nodes. Batch 1, median ms over "
        f"{result['rounds']} rounds of {result['runs']} runs (fresh session per round, alternating order); paired: "
        "the median over rounds of each round's after / before:",
        "",
        "| threads | length | before ms | after ms | paired after / before |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(f"| {row['threads']} | {row['length']} | {row['before_ms']:.2f} | {row['after_ms']:.2f} | "
                     f"{row['paired_after_over_before']:.3f} |")  # fmt: skip
    return [*lines, "", provenance(result)]


def vocab_section() -> list[str]:
    """``vocab_pruning.json``: sizes, memory and accuracy per --vocab arm, and the accelerator variants."""
    lines, result = section("A smaller vocabulary, and variants the accelerators take whole", "vocab_pruning",
                            "python benchmarks/vocab_pruning.py")  # fmt: skip
    if result is None:
        return lines
    arms = result["arms"]
    lines += [
        "The demo's chain at its settings (teacher: 20,000 SST-2 sentences, 1 epoch; 3-layer CoDIR students on "
        "40,000, 1 epoch, max length 64), one student per `compress --vocab` arm and seed (same batches and "
        "dropout masks); each exported as the demo does (`--task sst2 --data`, max length 128) and profiled at 1 "
        "thread, batch 1, on the real dev sentences. Accuracy: SST-2 dev as `evaluate` scores each file, and "
        "on the dev sentences that the pruned vocabulary splits differently (no other-source sentiment set "
        "is staged here, so these stand in for unseen text; every arm scored on the same subset). An arm ending in "
        "`-q4` is the same student exported with `--embedding-bits 4` (the word-embedding table of every INT8 file "
        "in 4 bits):",
        "",
        "| arm | seed | rows kept | fp32 MB | INT8 MB | INT8 peak RSS MB | INT8 p50 ms | dev fp32 | dev INT8 | "
        "changed dev texts | on them, fp32: this arm / full | on them, INT8: this arm / full |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    full = {r["seed"]: r for r in arms if r["arm"] == "full"}
    for r in arms:
        kept = r["vocabulary"]["kept"] if r.get("vocabulary") else 30522
        prof = r["profile"].get("int8", {})
        changed, on_fp32, on_int8 = "-", "-", "-"
        vocab = r["arm"].removesuffix("-q4")  # a -q4 arm: that vocabulary's student, 4-bit embeddings
        mine = r.get("on_changed", {}).get(vocab)
        other = full.get(r["seed"], {}).get("on_changed", {}).get(vocab)
        if vocab != "full" and mine and other:
            changed = str(r.get("changed_dev_texts", "-"))
            on_fp32 = f"{pct(mine['fp32'])} / {pct(other['fp32'])}"
            on_int8 = f"{pct(mine['int8'])} / {pct(other['int8'])}"
        lines.append(
            f"| {r['arm']} | {r['seed']} | {kept:,} | {r['files']['fp32']['mb']:.1f} | {r['files']['int8']['mb']:.1f} "
            f"| {prof.get('peak_rss_mb', 0):.0f} | {prof.get('p50_ms', 0):.2f} | {pct(r['dev']['fp32'])} | "
            f"{pct(r['dev']['int8'])} | {changed} | {on_fp32} | {on_int8} |"
        )
    lines += ["", "The accelerator variants of each bundle (fixed shape from the dev sentences' 99th percentile); "
              "usability by onnxruntime's checker and by ours (`export/accelerators.py`, with the nodes each "
              "limit took away):", "",
              "| arm | seed | variant | MB | dev | onnxruntime: share, partitions, verdict | ours: share, partitions, "
              "verdict | limits ours applied | MatMuls kept in float (drop before, after) |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in arms:
        if r["arm"].endswith("-q4"):
            continue  # the accelerator variants are made from fp32: the same as the arm's without -q4
        for name, v in r.get("variants", {}).items():
            search = v.get("accuracy_search")
            kept = (f"{len(v['keep_float'])} ({search['drop_before']:.2f}, {search['drop_after']:.2f} points)"
                    if search else "none" if "keep_float" in v else "-")  # fmt: skip
            for accelerator, u in (v.get("usability") or {}).items():
                ours = u["ours"]
                caught = ", ".join(f"{k}: {n}" for k, n in ours["caveats"].items()) or "none"
                lines.append(
                    f"| {r['arm']} | {r['seed']} | {name} ({accelerator}) | {r['files'][name]['mb']:.1f} | "
                    f"{pct(r['dev'][name]) if name in r['dev'] else '-'} | {pct(u['share'])}%, {u['partitions']}, "
                    f"{u['verdict']} | {pct(ours['share'])}%, {ours['partitions']}, {ours['verdict']} | {caught} | "
                    f"{kept} |"
                )
    return [*lines, "", provenance(result), ""]


def suite_section() -> list[str]:
    lines, result = section("The README's test command", "test_suite", "python benchmarks/test_suite.py")
    if result is None:
        return lines
    arms = [result["baseline"], result] if "baseline" in result else [result]
    lines += [
        f"The README's test command in a fresh clone with CI's environment, {result['cpus']} cores; the arms ran "
        "one after the other (an arm is saved when it finishes and reused when the script runs again):",
        "",
        "| commit | set-up (venv, install) | lint and suite | pytest's own figure | tests | load before |",
        "|---|---|---|---|---|---|",
    ]
    for arm in arms:
        counts = ", ".join(f"{n} {kind}" for kind, n in arm["counts"].items())
        lines.append(f"| {arm.get('commit', '?')} | {arm['setup_s'] / 60:.1f} min | {arm['checks_s'] / 60:.1f} min | "
                     f"{arm['pytest_s'] / 60:.1f} min | {counts} | {arm['load_average_before'][0]:.2f} |")  # fmt: skip
    counts = ", ".join(f"{n} {kind}" for kind, n in result["counts"].items())
    lines += ["", f"At {result.get('commit', 'HEAD')}: set-up (venv and install) **{result['setup_s'] / 60:.1f} min**, "
              f"lint and suite **{result['checks_s'] / 60:.1f} min** ({counts})."]  # fmt: skip
    if "checks_ratio" in result:
        lines += ["", f"Lint and suite: **{result['checks_ratio']:.2f}x** the wall time of {arms[0]['commit']}."]
    for arm in arms:
        if arm.get("slowest"):
            top = "; ".join(f"{t['test'].split('::')[-1]} {t['seconds']:.0f} s" for t in arm["slowest"][:5])
            lines += ["", f"Slowest at {arm.get('commit', '?')}: {top}."]
    return lines + ["", provenance(result), ""]


def sweep_section() -> list[str]:
    lines, result = section("Profile sweep: the README's plots", "profile_sweep", "python benchmarks/profile_plots.py")
    if result is None:
        return lines
    lengths = list(dict.fromkeys(r["seq_len"] for r in result["results"]))
    lines += [
        "The demo's teacher (PyTorch) and bundle, batch 1, p50 ms by thread count and length "
        f"(`codir-edge profile`, {result['config']['runs']} runs per configuration, each in a fresh process):",
        "",
        "| target | threads | " + " | ".join(map(str, lengths)) + " | accuracy |",
        "|---|---|" + "---|" * (len(lengths) + 1),
    ]
    rows: dict[tuple, dict] = {}
    for r in result["results"]:
        rows.setdefault((r["target"], r["threads"]), {})[r["seq_len"]] = r["p50_ms"]
    for (target, threads), by_length in rows.items():
        accuracy = next(iter(result["accuracy"].get(target, {}).values()), None)
        cells = " | ".join(f"{by_length[n]:.2f}" for n in lengths)
        lines.append(f"| {target} | {threads} | {cells} | {pct(accuracy) if accuracy is not None else '-'} |")
    lines += ["", "![sweep](results/profile_sweep.png)", "", "![accuracy](results/profile_sweep-accuracy.png)", ""]
    return lines + [provenance_of_report(result), ""]


def provenance_of_report(result: dict) -> str:
    """A profile report carries its machine, not a benchmark environment."""
    machine = result.get("machine", {})
    return (
        f"<sub>{machine.get('cpu', '?')}, {machine.get('logical_cores', '?')} cores; onnxruntime "
        f"{machine.get('onnxruntime', '?')}; `python benchmarks/profile_plots.py`</sub>"
    )


def main() -> None:
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python benchmarks/report.py` from `benchmarks/results/*.json`; do not edit by hand. "
        "Commands and targets: [README.md](README.md).",
        "",
    ]
    sections = (demo_section, quality_section, transfer_section, width_section, pre_section, export_section)
    sections += (latency_section,)
    sections += (peer_section, accuracy_aware_section, limit_section)
    sections += (cost_section, bank_section, repro_section, families_section, remote_section, sweep_section)
    sections += (export_speed_section, budget_search_section, suite_section, apps_section, runtime_floor_section)
    sections += (codir_paired_sections, embedding_section, ner_section, vocab_section, albert_section)
    for section in sections:
        lines += section()
    OUT.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
