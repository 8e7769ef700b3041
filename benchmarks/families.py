"""Every encoder family in the registry through the whole chain, in one run: one table.

For each family, a random 4-layer, 32-wide classifier with a tokenizer of its own kind trained on
SST-2 sentences (the builder of ``tests/families.py``: vocabularies of 1,000 to 1,200 tokens, saved by
``save_pretrained`` with transformers' default label map) is compressed to 2 layers with CoDIR on 400
SST-2 sentences, exported (dynamic INT8, ``.ort``, strings-in where the tokenizer allows), verified,
and profiled on 200 real SST-2 dev sentences. The models are random, so their accuracy says nothing;
the table is about the chain: parity, fusion, how often INT8 predicts fp32's label, the strings-in
check, and latency at real lengths.

    python benchmarks/families.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from _models import write_result

from codir_edge.bundle import layout

ROOT = Path(__file__).resolve().parents[1]
GLUE = ROOT.parent / "shared" / "data" / "glue"
sys.path.insert(0, str(ROOT / "tests"))


def cut(folder: Path, train: int, dev: int) -> Path:
    folder.mkdir(parents=True)
    for split, rows in (("train", train), ("dev", dev)):
        lines = (GLUE / "SST-2" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        (folder / f"{split}.tsv").write_text("\n".join(lines[: rows + 1]) + "\n", encoding="utf-8")
    return folder


def int8_agreement(bundle: Path, data: Path) -> float:
    """Share of dev sentences where the INT8 graph predicts the fp32 graph's label."""
    from codir_edge.data import DataSpec, get_task, load_split
    from codir_edge.data.encode import encode
    from codir_edge.models.families import family_of
    from codir_edge.models.loading import load_tokenizer
    from codir_edge.onnx.predict import onnx_logits

    task = get_task("sst2")
    config = json.loads((bundle / "config.json").read_text())
    dev = load_split(task, DataSpec(str(data)), "dev", list(task.labels))
    encoded = encode(load_tokenizer(bundle), dev, 128, family_of(config).takes_segments(config))
    fp32 = onnx_logits(bundle / layout.FP32, encoded).argmax(-1)
    int8 = onnx_logits(bundle / layout.INT8, encoded).argmax(-1)
    return float((fp32 == int8).mean())


def one_family(family: str, work: Path, data: Path) -> dict:
    from families import build_family_classifier
    from typer.testing import CliRunner

    from codir_edge.cli.app import app

    def run(*args) -> tuple[bool, float]:
        start = time.perf_counter()
        result = CliRunner().invoke(app, [str(a) for a in args])
        if result.exit_code != 0:
            print(f"{family}: {args[0]} failed: {result.output.strip()[-300:]}", flush=True)
        return result.exit_code == 0, time.perf_counter() - start

    teacher = build_family_classifier(family, work / "teacher", GLUE)
    row: dict = {"family": family}
    row["compress"], row["compress_s"] = run("compress", "--teacher", teacher, "--task", "sst2", "--data", data,
                                             "--out", work / "student", "--student-layers", "2", "--max-length",
                                             "64", "--epochs", "1", "--quiet")  # fmt: skip
    bundle = work / "bundle"
    row["export"], row["export_s"] = run("export", work / "student", "--out", bundle, "--quantize", "dynamic", "--ort",
                                         "--task", "sst2", "--data", data)  # fmt: skip
    if not row["export"]:
        return row
    manifest = json.loads((bundle / "manifest.json").read_text())
    variants = {v["name"]: v for v in manifest["variants"]}
    row["parity_max_abs_diff"] = manifest["parity"]["max_abs_diff"]
    row["fused_attention"] = manifest["fused_operators"]["offline_fusion"]["Attention"]
    row["graph_chosen"] = manifest["deployment"]["threads"]
    row["int8_agreement"] = int8_agreement(bundle, data)
    strings = variants.get("strings")
    row["strings"] = strings.get("agreement") if strings else None
    row["ort"] = "ort" in variants
    row["verify"], _ = run("verify", bundle)
    report = work / "profile.json"
    row["profile"], _ = run("profile", bundle, "--task", "sst2", "--data", data, "--seq-lens", "real",
                            "--batch-sizes", "1", "--threads", "1", "--runs", "100", "--warmup", "10", "--quiet",
                            "--json", report)  # fmt: skip
    if row["profile"]:
        results = json.loads(report.read_text())["results"]
        row["p50_ms_real"] = {r["target"]: r["p50_ms"] for r in results}
    return row


def main() -> None:
    from codir_edge.models.families import FAMILIES

    registry = ROOT / "codir_edge" / "models" / "families.py"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = cut(Path(tmp) / "SST-2", 400, 200)
        for family in FAMILIES:
            rows.append(one_family(family, Path(tmp) / family, data))
            print(json.dumps(rows[-1]), flush=True)
    optimizer = {name: f.optimizer for name, f in FAMILIES.items()}
    lines = len(registry.read_text().splitlines())
    path = write_result("families", {"rows": rows, "registry_lines": lines, "optimizer_type": optimizer})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
