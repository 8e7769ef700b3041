"""Sentence-embedding students of all-MiniLM-L6-v2, paired: ``compress --task embedding`` with each
objective over several seeds, every arm of one seed on the same texts, batches and dropout masks
(codir's heads have their own generator), scored as users compare embedding models.

Transfer text: the train sentences of SST-2, CoLA, MRPC, RTE and STS-B and BANKING77's train.csv
(nothing from a scored split: STS-B dev, BANKING77 test), deduplicated by compress, a seeded sample of
``--texts`` of them per seed. Scores: STS-B dev Spearman of cosine; BANKING77 test accuracy of a
logistic regression fit on train.csv embeddings and of 1-NN by cosine (``evaluate --task embedding``).
Rows beside the students: the teacher, and its skip-initialised 3 layers with no training.

    python benchmarks/embedding_distill.py [--seeds 1,2,3] [--arms mse,cosine,codir] [--texts 40000]

Then the best arm's seed-1 student (by mean STS-B dev Spearman) is exported with ``export --task
embedding`` and its bundle checked as apps load it: both files scored (``evaluate`` on the bundle), and
every STS-B dev sentence embedded by sentence-transformers' ONNX backend and by transformers.js in Node
(``examples/apps/node/embed.mjs``, when ``npm ci --prefix examples/apps`` has run), each compared by
cosine with Python's embedding of the same file (PyTorch's for fp32).

Each finished arm is saved under benchmarks/.work/embedding_distill and skipped when re-run. Writes
results/embedding_distill.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

from _models import ROOT, WORK, write_result
from _models import run_cli as run

SAVED = WORK / "embedding_distill"
SHARED = ROOT.parent / "shared" / "data"
CORPUS_FILES = [SHARED / "glue" / task / "train.tsv" for task in ("SST-2", "CoLA", "MRPC", "RTE", "STS-B")]
ARMS = {  # name -> compress arguments
    "mse": ["--objective", "mse"],
    "cosine": ["--objective", "cosine"],
    "codir": ["--objective", "codir"],
    "codir-hard": ["--objective", "codir", "--negative-sampling", "hard"],
}
SCORES = {  # name -> (data, split)
    "sts": (SHARED / "glue" / "STS-B", "dev"),
    "banking77": (SHARED / "banking77", "test"),
}
COMMON = ["--student-layers", "3", "--epochs", "1", "--max-length", "64", "--quiet"]


def corpus() -> Path:
    """One text per line from the train splits (GLUE's and BANKING77's), every sentence of a pair."""
    from codir_edge.data.corpus import read_corpus

    out = SAVED / "corpus.txt"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        texts = [t for file in CORPUS_FILES for t in read_corpus(file).texts]
        texts += read_corpus(SHARED / "banking77" / "train.csv").texts
        out.write_text("\n".join(" ".join(t.split()) for t in dict.fromkeys(texts)) + "\n")
    return out


def scores(model: Path, name: str) -> dict:
    """STS-B dev and BANKING77 test figures of one model folder, saved beside it."""
    saved = SAVED / f"{name}.scores.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    result = {}
    for score, (data, split) in SCORES.items():
        report = SAVED / f"{name}.{score}.json"
        seconds = run(["evaluate", model, "--task", "embedding", "--data", data, "--split", split, "--json", report],
                      SAVED / f"{name}.{score}.log")  # fmt: skip
        result[score] = {**json.loads(report.read_text())["metrics"], "seconds": seconds}
    saved.write_text(json.dumps(result))
    return result


def skip_init(teacher: Path) -> Path:
    """The teacher's mapped 3 layers, untrained: what distillation starts from."""
    from codir_edge.compress.student import skip_student
    from codir_edge.models.loading import load_backbone, load_tokenizer
    from codir_edge.models.sentence import read_sentence_head, write_sentence_head

    out = SAVED / "skip-init"
    if not (out / "modules.json").is_file():
        student = skip_student(load_backbone(teacher, False), 3)
        student.save_pretrained(out)
        load_tokenizer(teacher).save_pretrained(out)
        write_sentence_head(out, read_sentence_head(teacher), student.config.hidden_size, 256)
    return out


def arm(name: str, seed: int, teacher: Path, texts: Path, count: int) -> dict:
    saved = SAVED / f"{name}-s{seed}.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    out = SAVED / f"{name}-s{seed}"
    banks = [x for folder in sorted(SAVED.glob(f"*-s{seed}")) if folder.is_dir() for x in ("--cache-from", folder)]
    seconds = run(["compress", "--task", "embedding", "--teacher", teacher, "--data", texts, *COMMON,
                   "--max-train-samples", count, "--seed", seed, *ARMS[name], "--out", out, *banks, "--overwrite"],
                  SAVED / f"{name}-s{seed}.log")  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    result = {"arm": name, "seed": seed, "wall_s": seconds, "held_out": metrics["dev"],
              "examples_per_s": metrics["train_examples_per_s"], "train_texts": metrics["train_examples"],
              "contrastive_end": metrics.get("contrastive_end"), "bank_seconds": metrics["bank"]["build_seconds"],
              **scores(out, f"{name}-s{seed}")}  # fmt: skip
    saved.write_text(json.dumps(result))
    return result


FIGURES = (("sts", "spearman"), ("banking77", "logistic_accuracy"), ("banking77", "knn1_accuracy"))


def summary(results: dict[str, list[dict]], baseline: str) -> dict:
    """Per arm: each figure per seed and its mean, and the paired per-seed difference (points) against
    ``baseline``, the arm every other one is compared with."""
    base = {r["seed"]: r for r in results.get(baseline, [])}
    out = {}
    for name, rows in results.items():
        entry = {
            "wall_s": [r["wall_s"] for r in rows], "examples_per_s": [r["examples_per_s"] for r in rows],
            "held_out_cosine": {r["seed"]: r["held_out"]["cosine"] for r in rows},
            "contrastive_end": {r["seed"]: r["contrastive_end"] for r in rows if r["contrastive_end"]},
        }  # fmt: skip
        for score, metric in FIGURES:
            per_seed = {r["seed"]: 100 * r[score][metric] for r in rows}
            entry[metric] = {"per_seed": per_seed, "mean": sum(per_seed.values()) / len(per_seed)}
            if name != baseline and base:
                entry[metric][f"minus_{baseline}"] = {s: v - 100 * base[s][score][metric]
                                                      for s, v in per_seed.items() if s in base}  # fmt: skip
        out[name] = entry
    return out


def _min_cosine(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def bundle_checks(student: Path) -> dict:
    """Export ``student`` and hold its bundle to Python where apps load it (saved; skipped when re-run)."""
    saved = SAVED / "bundle.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    from sentence_transformers import SentenceTransformer

    from codir_edge.data import DataSpec
    from codir_edge.data.embedding import read_embedding_data
    from codir_edge.data.encode import encode
    from codir_edge.data.examples import Examples
    from codir_edge.data.fast_tokenizer import find_tokenizer
    from codir_edge.models.embed import embed_folder
    from codir_edge.onnx.embed import onnx_embeddings

    bundle = SAVED / "bundle"
    export_s = run(["export", student, "--task", "embedding", "--data", SCORES["sts"][0], "--out", bundle,
                    "--max-length", "128", "--overwrite", "-q"], SAVED / "bundle.log")  # fmt: skip
    result = {"student": student.name, "export_s": export_s, "variants": {}}
    for score, (data, split) in SCORES.items():
        report = SAVED / f"bundle.{score}.json"
        run(["evaluate", bundle, "--task", "embedding", "--data", data, "--split", split, "--json", report],
            SAVED / f"bundle.{score}.log")  # fmt: skip
        for variant in json.loads(report.read_text())["variants"]:
            result["variants"].setdefault(variant["variant"], {})[score] = variant["metrics"]
    texts = read_embedding_data(DataSpec(str(SCORES["sts"][0])), "dev", None, 0).texts
    encoded = encode(find_tokenizer(bundle), Examples(texts, None, [0] * len(texts), "sts"), 128)
    python = {"fp32": embed_folder(student, texts, 128, 64, "cpu")[0],
              "q8": onnx_embeddings(bundle / "onnx" / "model_quantized.onnx", encoded)}  # fmt: skip
    files = {"fp32": "onnx/model.onnx", "q8": "onnx/model_quantized.onnx"}
    agreement = {"texts": len(texts), "sentence_transformers_onnx": {}, "transformers_js_node": {}}
    for dtype, file in files.items():
        model = SentenceTransformer(str(bundle), backend="onnx", model_kwargs={"file_name": file}, device="cpu")
        agreement["sentence_transformers_onnx"][dtype] = _min_cosine(model.encode(texts, batch_size=1),
                                                                     python[dtype])  # fmt: skip
        agreement.setdefault("graph_output", {})[dtype] = _min_cosine(onnx_embeddings(bundle / file, encoded),
                                                                      python[dtype])  # fmt: skip
        apps = ROOT / "examples" / "apps"
        if shutil.which("node") and (apps / "node_modules" / "@huggingface" / "transformers").is_dir():
            lines = "\n".join(texts) + "\n"
            done = subprocess.run(["node", "node/embed.mjs", str(bundle), "--dtype", dtype], cwd=apps, input=lines,
                                  capture_output=True, text=True, check=True)  # fmt: skip
            node = [json.loads(line)["embedding"] for line in done.stdout.splitlines()]
            agreement["transformers_js_node"][dtype] = _min_cosine(node, python[dtype])
    result["min_cosine_to_python"] = agreement
    result["reference"] = "fp32: PyTorch (sentence-transformers' pooling); q8: onnxruntime in Python on the same file"
    saved.write_text(json.dumps(result))
    return result


def main() -> None:
    from codir_edge.models.checkpoint import default_backbone

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--texts", type=int, default=40000, help="transfer texts per seed (a seeded sample)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = args.arms.split(",")
    teacher = Path(default_backbone())
    texts = corpus()
    rows = {"teacher": scores(teacher, "teacher"), "skip-init": scores(skip_init(teacher), "skip-init")}
    results: dict[str, list[dict]] = {name: [] for name in arms}
    for seed in seeds:  # seed by seed, every arm: a stopped run leaves complete pairs behind
        for name in arms:
            results[name].append(arm(name, seed, teacher, texts, args.texts))
            done = results[name][-1]
            print(name, seed, {k: round(100 * done[s][k], 2) for s, k in FIGURES}, flush=True)
    arms_summary = summary(results, "mse" if "mse" in results else arms[0])
    best = max(arms_summary, key=lambda name: arms_summary[name]["spearman"]["mean"])
    write_result("embedding_distill", {
        "corpus_texts": sum(1 for _ in texts.open()), "texts_per_seed": args.texts, "seeds": seeds,
        "settings": COMMON, "rows": {name: {s: {k: 100 * v for k, v in f.items() if k != "seconds"}
                                            for s, f in r.items()} for name, r in rows.items()},
        "arms": arms_summary, "best_arm": best, "bundle": bundle_checks(SAVED / f"{best}-s{seeds[0]}"),
    })  # fmt: skip


if __name__ == "__main__":
    main()
