"""Named-entity taggers on CoNLL-2003, paired: a teacher fine-tuned from the bundled all-MiniLM-L6-v2,
3-layer students distilled from it with ``compress --task ner`` (one per objective and seed, every arm
of one seed on the same batches and dropout masks), and the same 3 layers fine-tuned with no teacher.

Chosen on dev (the teacher's best epoch), reported on test: micro entity F1 (strict IOB2, seqeval's
reading), per-type F1 and token accuracy, from ``evaluate --task ner``. The best student's seed-1
folder is then exported (``export --task ner``), its INT8 file scored on test beside its fp32 one.

    python benchmarks/ner_distill.py [--seeds 1,2,3] [--arms kd,mse,codir,codir-instance,mse-all,mse-news,codir-news,
                                     mse-e4]
                                     [--longer-seeds 1,2] [--only train]

The teacher uses the issue's recipe (lr 5e-5, batch 16, 3 epochs); the students and the no-teacher
baseline share one budget: 2 epochs at batch 16 and lr 1e-4 (compress's default), so that every
3-layer model is trained the same way and the three seeds of four arms fit one working session.
``mse-e4`` and ``no-teacher-e4`` give the best objective and the no-teacher model twice that budget
(4 epochs) on ``--longer-seeds``: both were still improving on dev at the end of epoch 2.

The best arm (by mean dev F1) has its seed-1 student exported with ``export --task ner``; both files
are scored on test, and every dev sentence is tagged by transformers.js in Node
(``examples/apps/node/tag.mjs``, when ``npm ci --prefix examples/apps`` has run) and compared word by
word with Python's onnxruntime on the same file. Each finished run and score is saved under
benchmarks/.work/ner_distill and skipped when re-run. Writes results/ner_distill.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _models import ROOT, WORK, write_result
from _models import run_cli as run

SAVED = WORK / "ner_distill"
DATA = ROOT.parent / "shared" / "data" / "conll2003"
TRAIN = ["--data", DATA, "--task", "ner", "--batch-size", "16", "--quiet"]
TEACHER_EPOCHS = ["--epochs", "3"]  # the recipe for the teacher
STUDENT_EPOCHS = ["--epochs", "2"]  # every 3-layer model, with a teacher or without: one budget for all
LONGER = ["--epochs", "4"]  # the longer budget: dev F1 still rose from epoch 1 to 2 in every arm
NEWS = "NEWS"  # stands for news_text() in an arm's arguments
# arms trained on the first N of --seeds only (the sessions' time), each paired with those seeds' other arms;
# they are not candidates for the exported bundle (chosen among the arms of the default budget)
FEW_SEEDS = {"codir-instance": 1, "mse-all": 1, "codir-news": 3}
LONG_ARMS = ("mse-e4",)  # trained on --longer-seeds only, each beside a no-teacher model trained as long
ARMS = {  # name -> compress arguments
    "kd": ["--objective", "kd"],
    "mse": ["--objective", "mse"],
    "codir": ["--objective", "codir"],
    # every other token a negative, same tag included: the label-aware term is solved in the first epoch
    "codir-instance": ["--objective", "codir", "--token-negatives", "instance"],
    # the hidden states matched at every piece of the sentence, not only at each word's first piece
    "mse-all": ["--objective", "mse", "--pkd-tokens", "all"],
    # a transfer set: untagged news and encyclopedia sentences from the GLUE folders, tagged by the teacher
    "mse-news": ["--objective", "mse", "--unlabeled", NEWS],
    # the same transfer set under codir (seeds 1, 2): the untagged words' negatives follow the teacher's argmax
    "codir-news": ["--objective", "codir", "--unlabeled", NEWS],
    # twice the epochs, paired with the no-teacher model given the same budget (no-teacher-e4)
    "mse-e4": ["--objective", "mse", *LONGER],
}


def teacher() -> Path:
    """The bundled backbone fine-tuned as a token classifier (the issue's recipe)."""
    from codir_edge.models.checkpoint import default_backbone

    out = SAVED / "teacher"
    if not (out / "metrics.json").is_file():
        SAVED.mkdir(parents=True, exist_ok=True)
        run(["finetune", "--model", default_backbone(), *TRAIN, *TEACHER_EPOCHS, "--lr", "5e-5", "--seed", "1",
             "--out", out, "--overwrite"], SAVED / "teacher.log")  # fmt: skip
    return out


def cut(source: Path) -> Path:
    """The backbone's layers 2, 4 and 6 (the students' skip map), as a bare encoder to fine-tune."""
    from codir_edge.compress.student import skip_student
    from codir_edge.models.loading import load_backbone, load_tokenizer

    out = SAVED / "cut-3l"
    if not (out / "config.json").is_file():
        skip_student(load_backbone(source, False), 3).save_pretrained(out)
        load_tokenizer(source).save_pretrained(out)
    return out


def baseline(seed: int, epochs: list[str] = STUDENT_EPOCHS, suffix: str = "") -> Path:
    """The 3 layers fine-tuned on the labels alone, as a user without a teacher would."""
    from codir_edge.models.checkpoint import default_backbone

    out = SAVED / f"no-teacher{suffix}-s{seed}"
    if not (out / "metrics.json").is_file():
        run(["finetune", "--model", cut(Path(default_backbone())), *TRAIN, *epochs, "--lr", "1e-4", "--seed",
             seed, "--out", out, "--overwrite"], SAVED / f"{out.name}.log")  # fmt: skip
    return out


def reference(arm: str) -> str:
    """The no-teacher model an arm is paired with: the one trained for as many epochs."""
    return "no-teacher-e4" if arm.endswith("-e4") else "no-teacher"


def news_text() -> Path:
    """Untagged text a user with a news tagger could have: every sentence of GLUE's MRPC, RTE and STS-B
    news (train and dev) and QNLI's dev questions and Wikipedia sentences, once each, one per line
    (28,076 sentences, 538k words, against CoNLL's 14,041 tagged ones). compress drops any that is a
    CoNLL train or dev sentence."""
    import csv

    from codir_edge.core.atomic import atomic_write_text

    out = SAVED / "news.txt"
    if out.is_file():
        return out
    glue = ROOT.parent / "shared" / "data" / "glue"
    columns = {"MRPC": ("#1 String", "#2 String"), "RTE": ("sentence1", "sentence2"),
               "STS-B": ("sentence1", "sentence2"), "QNLI": ("question", "sentence")}  # fmt: skip
    csv.field_size_limit(1 << 30)
    texts: dict[str, str] = {}  # case-folded -> as written, in order
    files = [(task, split) for split in ("train", "dev") for task in ("MRPC", "RTE", "STS-B")] + [("QNLI", "dev")]
    for task, split in files:
        with (glue / task / f"{split}.tsv").open(encoding="utf-8-sig", newline="") as handle:
            for record in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                if task == "STS-B" and record["genre"] != "main-news":
                    continue
                for text in (" ".join(record[name].split()) for name in columns[task]):
                    texts.setdefault(text.casefold(), text)
    SAVED.mkdir(parents=True, exist_ok=True)  # by rename: a stopped run leaves no half file to be reused
    atomic_write_text(out, "\n".join(t for t in texts.values() if t) + "\n")
    return out


def student(name: str, seed: int, teacher_dir: Path) -> Path:
    out = SAVED / f"{name}-s{seed}"
    if not (out / "metrics.json").is_file():
        epochs = [] if "--epochs" in ARMS[name] else STUDENT_EPOCHS
        extra = [news_text() if x == NEWS else x for x in ARMS[name]]
        run(["compress", "--teacher", teacher_dir, *TRAIN, *epochs, "--student-layers", "3", "--seed", seed,
             *extra, "--out", out, "--overwrite"], SAVED / f"{name}-s{seed}.log")  # fmt: skip
    return out


def scores(model: Path, split: str = "test") -> dict:
    """Test (or dev) figures of one model folder or bundle file, saved beside the run."""
    saved = SAVED / f"{model.name}.{split}.json"
    if not saved.is_file():
        seconds = run(["evaluate", model, "--task", "ner", "--data", DATA, "--split", split, "--json", saved],
                      SAVED / f"{model.name}.{split}.log")  # fmt: skip
        report = json.loads(saved.read_text())
        report["seconds"] = seconds
        saved.write_text(json.dumps(report))
    return json.loads(saved.read_text())


def row(model: Path) -> dict:
    metrics = json.loads((model / "metrics.json").read_text())
    test = scores(model)["metrics"]
    return {"test": {k: 100 * v for k, v in test.items()},
            "dev_f1": 100 * metrics["dev" if "dev" in metrics else "dev_metrics"]["f1"],
            "wall_s": metrics["wall_time_s"], "examples_per_s": metrics["train_examples_per_s"],
            "contrastive_end": metrics.get("contrastive_end")}  # fmt: skip


def paired(rows: dict[str, dict[int, dict]], against: str) -> dict:
    """Per arm: test F1 per seed, its mean, and the per-seed difference (points) from ``against`` (for
    "no-teacher": the no-teacher model of the arm's own budget, see ``reference``)."""
    out = {}
    for name, seeds in rows.items():
        f1 = {s: r["test"]["f1"] for s, r in seeds.items()}
        entry = {"f1": f1, "mean_f1": sum(f1.values()) / len(f1)}
        other = reference(name) if against == "no-teacher" else against
        if name != other and other in rows and reference(other) == reference(name):  # one budget
            entry[f"minus_{against}"] = {s: v - rows[other][s]["test"]["f1"] for s, v in f1.items()
                                         if s in rows[other]}  # fmt: skip
        out[name] = entry
    return out


def bundle_checks(student_dir: Path) -> dict:
    """Export the student, score fp32 and INT8 on test, and tag every dev sentence with transformers.js."""
    bundle = SAVED / f"bundle-{student_dir.name}"
    if not (bundle / "manifest.json").is_file():
        run(["export", student_dir, "--task", "ner", "--data", DATA, "--out", bundle, "--max-length", "128",
             "--overwrite", "-q"], SAVED / f"{bundle.name}.log")  # fmt: skip
    saved = SAVED / f"{bundle.name}.test.json"
    if not saved.is_file():
        run(["evaluate", bundle, "--task", "ner", "--data", DATA, "--split", "test", "--json", saved],
            SAVED / f"{bundle.name}.test.log")  # fmt: skip
    files = {v["variant"]: {k: 100 * x for k, x in v["metrics"].items()}
             for v in json.loads(saved.read_text())["variants"]}  # fmt: skip
    manifest = json.loads((bundle / "manifest.json").read_text())
    int8 = next(v for v in manifest["variants"] if v["name"] == "int8")
    drop = files["int8"]["f1"] - files["fp32"]["f1"]
    return {"student": str(student_dir.name), "path": str(bundle.relative_to(ROOT)), "test": files,
            "int8_minus_fp32_f1": drop,
            "int8_choice_dev_f1": int8.get("int8_choice") or {n: v["f1"] for n, v in
                                                               manifest["tuning"].get("int8_dev_scores", {}).items()},
            "deployment": manifest["deployment"].get("threads"), "parity": manifest["parity"]["max_abs_diff"],
            "sizes_mb": {v["name"]: (bundle / v["file"]).stat().st_size / 1e6 for v in manifest["variants"]},
            "fixed_shape": fixed_checks(manifest, files), "strings": strings_check(manifest),
            "transformers_js": js_checks(bundle)}  # fmt: skip


def fixed_checks(manifest: dict, test: dict) -> dict:
    """The fixed-shape variants: their shape, dev F1 (at export) and test F1 (evaluate, fed at the shape),
    each against fp32's, the dev rows the shape cuts, and the accelerators' usability verdicts."""
    out = {}
    for variant in (v for v in manifest["variants"] if "fixed_shape" in v and "accuracy" in v):
        usability = {name: {k: u[k] for k in ("verdict", "share", "partitions")}
                     for name, u in variant["usability"].items()}  # fmt: skip
        out[variant["name"]] = {"shape": variant["fixed_shape"], "dev_f1": 100 * variant["accuracy"]["f1"],
                                "dev_drop": variant["accuracy_drop_points"], "test_f1": test[variant["name"]]["f1"],
                                "test_minus_fp32": test[variant["name"]]["f1"] - test["fp32"]["f1"],
                                "dev_rows_cut": variant.get("truncated_rows"), "usability": usability,
                                "kept_float": len(variant.get("keep_float", []))}  # fmt: skip
    return out


def strings_check(manifest: dict) -> dict | None:
    """What export held model.strings.onnx to (ids, offset_mapping, word ids and logits on these texts)."""
    strings = next((v for v in manifest["variants"] if v["name"] == "strings"), None)
    return None if strings is None else {"from": strings["from"], **strings["agreement"]}


def js_checks(bundle: Path) -> dict | None:
    """Sentences of CoNLL dev whose tags (and so entities) transformers.js gives differently from Python."""
    import shutil
    import subprocess

    from codir_edge.data.fast_tokenizer import find_tokenizer
    from codir_edge.data.ner import read_tagged
    from codir_edge.data.ner_encode import encode_tagged, word_tags
    from codir_edge.onnx.tokens import onnx_token_logits

    apps = ROOT / "examples" / "apps"
    if shutil.which("node") is None or not (apps / "node_modules" / "@huggingface" / "transformers").is_dir():
        return None
    saved = SAVED / f"{bundle.name}.js.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    dev = read_tagged(DATA, "dev")
    labels = json.loads((bundle / "manifest.json").read_text())["token_classification"]["labels"]
    tokens = encode_tagged(find_tokenizer(bundle), dev, labels, 128, True)
    out = {}
    for dtype, file in (("fp32", "model.onnx"), ("q8", "model_quantized.onnx")):
        logits = onnx_token_logits(bundle / "onnx" / file, tokens.encoded)
        python = [word_tags(row.argmax(-1), tokens.word_of[i], len(dev.words[i]), labels)
                  for i, row in enumerate(logits)]  # fmt: skip
        sentences = "\n".join(" ".join(w) for w in dev.words) + "\n"
        done = subprocess.run(["node", "node/tag.mjs", str(bundle), "--dtype", dtype], cwd=apps, capture_output=True,
                              text=True, input=sentences, check=True)  # fmt: skip
        js = [json.loads(line)["tags"] for line in done.stdout.splitlines()]
        differ = [i for i, (a, b) in enumerate(zip(js, python, strict=True)) if a != b]
        words = sum(x != y for i in differ for x, y in zip(js[i], python[i], strict=True))
        out[dtype] = {"sentences": len(dev), "differ": len(differ), "first": differ[:5], "words_differ": words}
    saved.write_text(json.dumps(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--longer-seeds", default="1", help="seeds of the 4-epoch arms (LONG_ARMS)")
    parser.add_argument("--only", choices=("train", "all"), default="all", help="train: runs only, no scoring")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = [a for a in args.arms.split(",") if a]
    teacher_dir = teacher()
    folders: dict[str, dict[int, Path]] = {"no-teacher": {}, **{name: {} for name in arms}}
    for seed in seeds:  # seed by seed: a stopped run leaves complete pairs
        folders["no-teacher"][seed] = baseline(seed)
        for name in (a for a in arms if a not in (*FEW_SEEDS, *LONG_ARMS)):
            folders[name][seed] = student(name, seed, teacher_dir)
            print(name, seed, "trained", flush=True)
    for name in (a for a in arms if a in FEW_SEEDS):
        for seed in seeds[: FEW_SEEDS[name]]:
            folders[name][seed] = student(name, seed, teacher_dir)
    for name in (a for a in arms if a in LONG_ARMS):
        for seed in (int(s) for s in args.longer_seeds.split(",")):
            folders.setdefault(reference(name), {})[seed] = baseline(seed, LONGER, "-e4")
            folders[name][seed] = student(name, seed, teacher_dir)
    if args.only == "train":
        return
    rows = {name: {seed: row(folder) for seed, folder in runs.items()} for name, runs in folders.items()}
    full = [a for a in arms if a not in (*FEW_SEEDS, *LONG_ARMS)]  # the bundle: the best arm of the default budget
    best = max(full, key=lambda name: sum(r["dev_f1"] for r in rows[name].values()) / len(rows[name]))
    write_result("ner_distill", {
        "data": str(DATA), "seeds": seeds, "settings": [str(x) for x in TRAIN], "teacher_epochs": TEACHER_EPOCHS,
        "student_epochs": STUDENT_EPOCHS, "teacher": row(teacher_dir), "arms": rows,
        "paired": paired(rows, "no-teacher"), "paired_kd": paired(rows, "kd") if "kd" in rows else None,
        "best_arm": best, "bundle": bundle_checks(folders[best][seeds[0]]),
    })  # fmt: skip


if __name__ == "__main__":
    main()
