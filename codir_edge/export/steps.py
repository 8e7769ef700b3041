"""The steps of ``export`` after its checks, each one job, in the order ``run_export`` calls them.

1. ``fp32_with_parity``: the fp32 graph, held to PyTorch (hard failure).
2. ``graph_candidates``: plain and offline-fused graphs, and their INT8 forms.
3. ``choose_graphs``: whichever candidate runs faster here, copied into the bundle.
4. ``score_variants``: each variant's task metric; a drop beyond the limit is a hard failure.
5. ``strings_variant``: raw text in, scores out, held to tokenizer + graph (hard failure).
6. ``mobile_variant`` and ``write_model_files``: the .ort form, tokenizer, config and labels.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from codir_edge.errors import CheckFailedError
from codir_edge.export import quantize as q
from codir_edge.export.config import ExportConfig
from codir_edge.export.plan import ExportPlan, session_or_error

STRINGS_CHECK_SENTENCES = 120  # the strings model is held to tokenizer + graph on this many sentences


@dataclass
class Fp32Graph:
    path: Path
    input_names: list[str]
    parity: object  # a parity.ParityReport
    dev_by_length: dict | None  # the dev split tokenized at each parity length (None without data)


def fp32_with_parity(model, tokenizer, plan: ExportPlan, work: Path) -> Fp32Graph:
    from codir_edge.data.encode import encode
    from codir_edge.export import parity as par
    from codir_edge.export.convert import export_fp32

    config = plan.config
    plain = work / "plain.onnx"
    export_fp32(model, plain, config.opset)
    session = session_or_error(plain, config.opset)
    input_names = [i.name for i in session.get_inputs()]
    by_length = None
    if plan.dev is not None:
        by_length = {n: encode(tokenizer, plan.dev, n) for n in par.lengths_for(config.max_length)}
        cases, source = list(par.sentence_feeds(by_length)), "task sentences"
    else:
        ids = (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id or 0)
        cases = list(par.generated_feeds(int(plan.model_config["vocab_size"]), *ids, config.max_length))
        source = "generated token ids"
    parity = par.check_parity(model, session, cases, config.atol, source)
    return Fp32Graph(plain, input_names, parity, by_length)


def graph_candidates(fp32: Fp32Graph, plan: ExportPlan, tokenizer, work: Path):
    """(fp32 candidates, INT8 candidates, fused operator counts), each candidate a name -> file."""
    from codir_edge.export.graph import fuse, operator_counts
    from codir_edge.models.families import heads, width

    config, model_config = plan.config, plan.model_config
    candidates = {"plain": fp32.path}
    if plan.spec.optimizer_type is None:  # a family the optimizer's fusions do not match: the graph runs plain
        fused_counts = operator_counts(fp32.path)
    else:
        fused = work / "fused.onnx"
        fused_counts = fuse(fp32.path, fused, plan.spec.optimizer_type, heads(model_config), width(model_config))
        if config.optimize:
            candidates["fused"] = fused
    int8: dict[str, Path] = {}
    if config.quantize == "dynamic":
        for name, path in candidates.items():
            int8[name] = work / f"{name}.int8.onnx"
            q.dynamic_int8(path, int8[name], plan.target, fused=name == "fused")
    elif config.quantize == "static":
        int8["plain"] = work / "plain.int8.onnx"
        feeds = calibration_feeds(tokenizer, plan, fp32.input_names)
        q.static_int8(fp32.path, int8["plain"], feeds, config.calibration_method, plan.target)
    return candidates, int8, fused_counts


def calibration_feeds(tokenizer, plan: ExportPlan, input_names: list[str]) -> list[dict]:
    from codir_edge.data.encode import encode, pad_batch

    feeds = []
    calib = encode(tokenizer, plan.calibration, plan.config.max_length)
    for start in range(0, len(calib), 16):
        batch = pad_batch(calib, list(range(start, min(start + 16, len(calib)))))
        batch.setdefault("token_type_ids", batch["input_ids"] * 0)
        feeds.append({n: batch[n] for n in input_names})
    return feeds


def choose_graphs(candidates: dict, int8: dict, plan: ExportPlan, fp32: Fp32Graph, stage: Path):
    """(variants, graph choice): the fastest fp32 and INT8 graphs here, copied into the bundle, plus
    the fp16 form when asked for or when the target is a GPU."""
    from codir_edge.export.choose import median_latencies
    from codir_edge.models.families import max_positions

    config = plan.config
    everything = {**candidates, **{f"{k}.int8": v for k, v in int8.items()}}
    measured = {}
    if plan.target != "cuda" and len(everything) > 1:
        vocab, seq_len = int(plan.model_config["vocab_size"]), min(128, max_positions(plan.model_config))
        measured = median_latencies(everything, config.threads, vocab, seq_len)
    choice = {"fp32": min(candidates, key=lambda n: measured.get(n, 0.0))}
    if int8:
        choice["int8"] = min(int8, key=lambda n: measured.get(f"{n}.int8", 0.0))
    graph_choice = {"chosen": choice, "median_ms_seq128_batch1": measured, "threads": config.threads}
    shutil.copy(candidates[choice["fp32"]], stage / "model.onnx")
    variants = [{"name": "fp32", "file": "model.onnx", "graph": choice["fp32"]}]
    if int8:
        shutil.copy(int8[choice["int8"]], stage / "model.int8.onnx")
        variants.append(
            {"name": "int8", "file": "model.int8.onnx", "graph": choice["int8"], "quantization": config.quantize}
        )  # noqa: E501
    if config.fp16 or plan.target == "cuda":
        q.fp16(fp32.path, stage / "model.fp16.onnx")
        variants.append({"name": "fp16", "file": "model.fp16.onnx", "graph": "plain"})
    return variants, graph_choice


def score_variants(variants: list[dict], stage: Path, fp32: Fp32Graph, plan: ExportPlan) -> None:
    """Each variant's task metric on dev (in place); fails when one loses more than the allowed drop."""
    from codir_edge.data.metrics import score
    from codir_edge.onnx_predict import onnx_logits

    config, task = plan.config, plan.task
    encoded = fp32.dev_by_length[config.max_length]  # the parity pass tokenized it already
    for variant in variants:
        logits = onnx_logits(stage / variant["file"], encoded, threads=2)
        variant["accuracy"] = score(task, logits, encoded.targets.tolist())
    metric = task.primary_metric
    reference = variants[0]["accuracy"][metric]
    for variant in variants[1:]:
        drop = (reference - variant["accuracy"][metric]) * 100
        variant["accuracy_drop_points"] = drop
        if drop > config.max_accuracy_drop:
            raise CheckFailedError(
                f"the {variant['name']} variant loses {drop:.2f} points of {metric} against fp32 "
                f"(--max-accuracy-drop {config.max_accuracy_drop}): {_remedy(variant['name'], config)}"
            )


def _remedy(variant: str, config: ExportConfig) -> str:
    if variant == "fp16":
        return "drop --fp16 for this model, or allow a larger drop"
    if config.quantize == "static" and config.calibration_method == "minmax":
        return "try --calibration-method entropy or --quantize dynamic, or allow a larger drop"
    if config.quantize == "static":
        return "try --quantize dynamic, or allow a larger drop"
    return "try --quantize static --calibration-method entropy, or allow a larger --max-accuracy-drop"


def strings_variant(stage: Path, work: Path, source: str, tokenizer, config: ExportConfig, pair: bool,
                    regression: bool, dev) -> dict:  # fmt: skip
    """Build model.strings.onnx on the shipped graph and hold it to tokenizer + that graph (hard failure)."""
    import onnx

    from codir_edge.export.strings import build_strings_model
    from codir_edge.export.strings_check import check_strings_model, generated_sentences, probe_texts
    from codir_edge.export.strings_rules import graph_tokenizer_kind

    with_ids = work / "strings_ids.onnx"  # the graph with its token ids exposed, for the check
    build_strings_model(stage / source, with_ids, tokenizer, config.max_length, pair, regression, ids_out=True)
    shipped = onnx.load(str(with_ids))  # the same graph, only logits and probabilities out
    del shipped.graph.output[2:]
    onnx.save(shipped, str(stage / "model.strings.onnx"))
    # task sentences when there are enough, topped up with generated ones
    sentences = list(dev.texts[:STRINGS_CHECK_SENTENCES]) if dev is not None else []
    pairs = list(dev.text_pairs[:STRINGS_CHECK_SENTENCES]) if dev is not None and dev.text_pairs is not None else []
    missing = STRINGS_CHECK_SENTENCES - len(sentences)
    sentences += generated_sentences(tokenizer, missing, seed=0)
    pairs += generated_sentences(tokenizer, len(sentences) - len(pairs), seed=1) if pair else []
    specials = tuple(t.content for t in tokenizer.added_tokens_decoder.values())
    texts = probe_texts(sentences, pairs if pair else None, config.max_length, specials)
    agreement = check_strings_model(with_ids, stage / source, tokenizer, texts, config.max_length, config.atol)
    given = STRINGS_CHECK_SENTENCES - missing
    agreement["source"] = "task sentences" if missing <= 0 else f"{given} task and {missing} generated sentences"
    return {
        "name": "strings",
        "file": "model.strings.onnx",
        "from": source,
        "takes": "text",
        "tokenizer": graph_tokenizer_kind(tokenizer),  # wordpiece, byte-level-bpe or sentencepiece
        "inputs": ["text", "text_pair"] if pair else ["text"],
        "outputs": ["logits", "probabilities"],
        "agreement": agreement,
    }


def mobile_variant(stage: Path, source: str, target: str) -> dict:
    from codir_edge.export.mobile import to_ort

    to_ort(stage / source, stage, target)
    return {"name": "ort", "file": "model.ort", "from": source}


def write_model_files(stage: Path, tokenizer, model) -> None:
    """What an app needs beside the graphs: the tokenizer, the model config and the label names."""
    tokenizer.save_pretrained(stage)
    model.config.save_pretrained(stage)
    id2label = {int(k): v for k, v in (model.config.id2label or {}).items()}
    (stage / "labels.json").write_text(json.dumps([id2label[i] for i in sorted(id2label)], indent=2) + "\n")
