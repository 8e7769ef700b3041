"""Vocabulary pruning (``compress --vocab``) on the demo's student: sizes, memory and accuracy, paired.

The demo's chain at its own settings: the MiniLM teacher fine-tuned on 20,000 SST-2 sentences (1 epoch,
max length 64, seed 42), then 3-layer CoDIR students distilled on 40,000 (1 epoch, max length 64), one per
``--vocab`` arm and seed; arms with one seed see the same batches and dropout masks. Each student is
exported as the demo exports it (max length 128, INT8 tuned per thread count) and profiled at 1 thread,
batch 1, on the real dev sentences (size, peak RSS, p50, accuracy from the same run).

Accuracy is SST-2 dev (872), and the dev sentences that a pruned vocabulary tokenizes differently from the
full one (their words were not in the training text): that subset is the text the pruned student has
not seen pieces of, which is where pruning could cost accuracy. No sentiment set from another source
is staged on this machine, so that subset stands in for one.

    python benchmarks/vocab_pruning.py [--arms full,auto,8000,auto-q4] [--seeds 1,2]

An arm ``<vocab>-q4`` exports the ``<vocab>`` arm's student (not trained again) with ``--embedding-bits 4``:
the word-embedding table of every INT8 file in 4 bits.

Each finished arm is saved under benchmarks/.work/vocab and skipped when re-run; the result holds every
arm finished so far. Writes results/vocab_pruning.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from _models import ROOT, WORK, write_result
from _models import run_cli as run

SAVED = WORK / "vocab"
GLUE = ROOT.parent / "shared" / "data" / "glue"


def teacher() -> Path:
    out = SAVED / "teacher"
    if not (out / "config.json").is_file():
        SAVED.mkdir(parents=True, exist_ok=True)
        run(["finetune", "--task", "sst2", "--data", GLUE, "--out", out, "--epochs", "1", "--max-length", "64",
             "--max-train-samples", "20000", "--seed", "42", "--quiet", "--overwrite"],
            SAVED / "teacher.log")  # fmt: skip
    return out


def changed_dev(student: Path, full_tokenizer: Path) -> Path:
    """A GLUE-shaped folder holding the dev sentences ``student``'s tokenizer splits differently from the
    full vocabulary's (the train file is a copy, which evaluate needs beside dev)."""
    from transformers import AutoTokenizer

    out = student.parent / f"{student.name}-changed" / "SST-2"
    if (out / "dev.tsv").is_file():
        return out
    pruned, full = AutoTokenizer.from_pretrained(str(student)), AutoTokenizer.from_pretrained(str(full_tokenizer))
    lines = (GLUE / "SST-2" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines[1:]
            if pruned.convert_ids_to_tokens(pruned(line.split("\t")[0])["input_ids"])
            != full.convert_ids_to_tokens(full(line.split("\t")[0])["input_ids"])]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "dev.tsv").write_text("\n".join([lines[0], *kept]) + "\n", encoding="utf-8")
    (out / "train.tsv").write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    return out


def accuracy(bundle: Path, data: Path, log: Path) -> dict:
    """Accuracy of each ONNX variant of ``bundle`` on ``data``'s dev split, as ``evaluate`` scores it."""
    report = log.with_suffix(".json")
    run(["evaluate", bundle, "--task", "sst2", "--data", data, "--json", report], log)
    scored = json.loads(report.read_text())
    rows = scored if isinstance(scored, list) else scored.get("variants", [scored])
    return {row.get("variant", row.get("target", "model")): row["metrics"]["accuracy"] for row in rows}


VARIANT_FIELDS = ("accuracy", "fixed_shape", "usability", "rewritten", "keep_float", "accuracy_search",
                  "accuracy_drop_points")  # what the result keeps of each fixed-shape variant's manifest entry


def vocab_of(name: str) -> str:
    """The --vocab of an arm: ``auto-q4`` is the ``auto`` student exported with 4-bit embeddings."""
    return name.removesuffix("-q4")


def student_of(name: str, seed: int) -> Path:
    return SAVED / f"{vocab_of(name)}-s{seed}" / "student"


def arm(name: str, seed: int, teacher_dir: Path) -> dict:
    saved = SAVED / f"{name}-s{seed}.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    out = SAVED / f"{name}-s{seed}"
    student, bundle, profile = student_of(name, seed), out / "bundle", out / "profile.json"
    out.mkdir(parents=True, exist_ok=True)
    if not (student / "metrics.json").is_file():  # a student kept from an interrupted run is not trained again
        run(["compress", "--teacher", teacher_dir, "--task", "sst2", "--data", GLUE, "--out", student,
             "--student-layers", "3", "--objective", "codir", "--epochs", "1", "--max-length", "64",
             "--max-train-samples", "40000", "--seed", seed, "--vocab", vocab_of(name), "--overwrite", "--quiet"],
            student.parent / "compress.log")  # fmt: skip
    # as the demo's pipeline exports it: scored and gated on SST-2 dev, fixed shapes at its 99th percentile
    bits = ["--embedding-bits", "4"] if name.endswith("-q4") else []
    export_s = run(["export", student, "--out", bundle, "--task", "sst2", "--data", GLUE, "--max-length", "128",
                    *bits, "--overwrite"], out / "export.log")  # fmt: skip
    run(["profile", bundle, "--task", "sst2", "--data", GLUE, "--threads", "1", "--batch-sizes", "1",
         "--seq-lens", "real", "--runs", "200", "--quiet", "--json", profile], out / "profile.log")  # fmt: skip
    metrics = json.loads((student / "metrics.json").read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    files = {v["name"]: {"file": v["file"], "mb": (bundle / v["file"]).stat().st_size / 1e6}
             for v in manifest["variants"]}  # fmt: skip
    profiled = json.loads(profile.read_text())
    rows = profiled["results"]
    result = {
        "arm": name, "seed": seed, "vocabulary": metrics.get("vocabulary"), "student_dev": metrics["dev"]["accuracy"],
        "compress_s": metrics["wall_time_s"], "export_s": export_s, "files": files,
        "variants": {v["name"]: {k: v.get(k) for k in VARIANT_FIELDS} for v in manifest["variants"]
                     if "fixed_shape" in v},
        "profile": {r["target"]: {k: r.get(k) for k in ("size_mb", "peak_rss_mb", "p50_ms", "accuracy")} for r in rows},
        "profile_accuracy": profiled["accuracy"], "dev": accuracy(bundle, GLUE, out / "eval_dev.log"),
    }  # fmt: skip
    if vocab_of(name) != "full":
        changed = changed_dev(student, teacher_dir) / "dev.tsv"
        result["changed_dev_texts"] = len(changed.read_text(encoding="utf-8").splitlines()) - 1
    saved.write_text(json.dumps(result, indent=2))
    return result


def on_changed(results: list[dict], teacher_dir: Path) -> None:
    """Every arm of a seed scored on each pruned vocabulary's changed dev sentences (the full arm too:
    paired), keyed by that --vocab."""
    for result in results:
        if "on_changed" in result:
            continue
        result["on_changed"] = {}
        for other in results:
            if vocab_of(other["arm"]) in ("full", *result["on_changed"]) or other["seed"] != result["seed"]:
                continue
            data = changed_dev(student_of(other["arm"], other["seed"]), teacher_dir).parent
            bundle = SAVED / f"{result['arm']}-s{result['seed']}" / "bundle"
            log = SAVED / f"{result['arm']}-s{result['seed']}" / f"eval_changed_{vocab_of(other['arm'])}.log"
            result["on_changed"][vocab_of(other["arm"])] = accuracy(bundle, data, log)
        (SAVED / f"{result['arm']}-s{result['seed']}.json").write_text(json.dumps(result, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default="full,auto,8000")
    parser.add_argument("--seeds", default="1")
    args = parser.parse_args()
    teacher_dir = teacher()
    for seed in args.seeds.split(","):
        for name in args.arms.split(","):
            arm(name, int(seed), teacher_dir)
    # every arm finished so far, this run's or an earlier one's (so seeds added later join the table)
    results = [json.loads(p.read_text()) for p in sorted(SAVED.glob("*-s*.json"))]
    order = ["full", "auto", "8000", "full-q4", "auto-q4"]
    results.sort(key=lambda r: (r["seed"], order.index(r["arm"]) if r["arm"] in order else len(order)))
    on_changed(results, teacher_dir)
    summary = {}
    for name in dict.fromkeys(r["arm"] for r in results):
        mine = [r for r in results if r["arm"] == name]
        summary[name] = {
            "int8_mb": statistics.median(r["files"]["int8"]["mb"] for r in mine),
            "fp32_mb": statistics.median(r["files"]["fp32"]["mb"] for r in mine),
            "dev_int8": [r["dev"].get("int8") for r in mine], "dev_fp32": [r["dev"].get("fp32") for r in mine],
        }  # fmt: skip
    write_result("vocab_pruning", {"arms": results, "summary": summary,
                                   "teacher_dev": json.loads((teacher_dir / "metrics.json").read_text())})  # fmt: skip


if __name__ == "__main__":
    main()
