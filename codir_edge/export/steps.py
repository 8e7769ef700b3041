"""The steps of ``export`` after its checks, each one job, in the order ``run_export`` calls them.

1. ``fp32_with_parity``: the fp32 graph, held to PyTorch (hard failure).
2. ``candidates.py``: plain and offline-fused graphs and their INT8 forms; the INT8 ones beyond
   the allowed accuracy drop set aside (and the accuracy-aware search when none is left).
3. ``ship.py``: every candidate timed at every deployment setting, the winners per thread count
   copied into the bundle.
4. ``score_variants``: each variant's task metric; a drop beyond the limit is a hard failure.
5. ``fixed_variants.py``: the fixed-shape QDQ graph (and its .ort), and the Core ML and NNAPI graphs.
6. ``strings_variant``: raw text in, scores out, held to tokenizer + graph (hard failure).
7. ``mobile_variant`` and ``write_model_files``: the .ort form, tokenizer, config and labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from codir_edge.bundle import layout
from codir_edge.core.errors import CheckFailedError
from codir_edge.core.notes import note
from codir_edge.data.encode import Encoded
from codir_edge.export.config import ExportConfig
from codir_edge.export.parity import ParityReport
from codir_edge.export.plan import ExportPlan, session_or_error

STRINGS_CHECK_SENTENCES = 120  # the strings model is held to tokenizer + graph on this many sentences


@dataclass
class Fp32Graph:
    path: Path
    parity: ParityReport


def encode_dev(tokenizer, plan: ExportPlan) -> dict[int, Encoded] | None:
    """The dev split tokenized once, at every length the parity check runs (``--max-length`` among
    them, which the scoring and timing steps use); None without data."""
    from codir_edge.data.encode import encode
    from codir_edge.export.parity import lengths_for

    if plan.dev is None:
        return None
    return {n: encode(tokenizer, plan.dev, n) for n in lengths_for(plan.config.max_length)}


def fp32_with_parity(model, tokenizer, plan: ExportPlan, dev_by_length: dict[int, Encoded] | None,
                     work: Path) -> Fp32Graph:  # fmt: skip
    """The fp32 graph, held to PyTorch on task sentences when there are some, else on generated ids."""
    from codir_edge.export import parity as par
    from codir_edge.export.convert import export_fp32

    config = plan.config
    plain = work / "plain.onnx"
    export_fp32(model, plain, config.opset)
    session = session_or_error(plain, config.opset)
    takes = {i.name for i in session.get_inputs()}
    if takes != set(plan.spec.inputs):
        raise CheckFailedError(
            f"the exported graph takes {sorted(takes)}, not the {plan.spec.model_type} family's "
            f"{list(plan.spec.inputs)}: report this checkpoint's config.json as a bug"
        )
    if dev_by_length is not None:
        cases, source = list(par.sentence_feeds(dev_by_length)), "task sentences"
    else:
        ids = (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id or 0)
        cases = list(par.generated_feeds(plan.spec.vocab_size, *ids, config.max_length))
        source = "generated token ids"
    return Fp32Graph(plain, par.check_parity(model, session, cases, config.atol, source))


def calibration_encoded(tokenizer, plan: ExportPlan):
    """Training sentences to calibrate static INT8 on, or, without data, generated ones (the fixed-shape
    variant is made without data too; the manifest says which)."""
    from codir_edge.data.encode import encode

    if plan.calibration is not None:
        return encode(tokenizer, plan.calibration, plan.config.max_length)
    return generated_encoded(tokenizer, plan.config.calibration_samples, plan.config.max_length)


def generated_encoded(tokenizer, count: int, max_length: int) -> Encoded:
    """``count`` generated sentences, tokenized: what static INT8 calibrates on without data."""
    import numpy as np

    from codir_edge.export.strings.check import generated_sentences

    sentences = generated_sentences(tokenizer, count, seed=2)
    ids = tokenizer(sentences, truncation=True, max_length=max_length)["input_ids"]
    return Encoded([np.asarray(r, dtype=np.int64) for r in ids], None, np.zeros(len(ids)), tokenizer.pad_token_id or 0)


def calibration_feeds(encoded, input_names: list[str]) -> list[dict]:
    from codir_edge.data.encode import pad_batch

    feeds = []
    for start in range(0, len(encoded), 16):
        batch = pad_batch(encoded, list(range(start, min(start + 16, len(encoded)))))
        batch.setdefault("token_type_ids", batch["input_ids"] * 0)
        feeds.append({n: batch[n] for n in input_names})
    return feeds


def score_variants(variants: list[dict], stage: Path, encoded: Encoded, plan: ExportPlan) -> list[dict]:
    """Each variant's task metric on dev (in place), then the gate of ``fixed_variants.gate_variants``:
    a drop beyond the limit fails, naming every such variant and its remedy (a fixed-shape variant
    ``--fixed-shape auto`` added is left out instead)."""
    from codir_edge.export.candidates import task_metrics
    from codir_edge.export.fixed_variants import gate_variants

    for variant in variants:
        if "accuracy" not in variant and "fixed_shape" not in variant:  # INT8 candidates: scored before timing
            variant["accuracy"] = task_metrics(stage / variant["file"], encoded, plan)
    return gate_variants(variants, stage, plan.task.primary_metric, plan.config, _remedy)


def _remedy(variant: str, config: ExportConfig) -> str:
    if variant == "fp16":
        return "drop --fp16 for this model, or allow a larger drop"
    if config.quantize == "static" and config.calibration_method == "minmax":
        return "try --calibration-method entropy or --quantize dynamic, or allow a larger drop"
    if config.quantize == "static":
        return "try --quantize dynamic, or allow a larger drop"
    return "try --quantize static --calibration-method entropy, or allow a larger --max-accuracy-drop"


def dev_scores(encoded: Encoded | None, plan: ExportPlan, reference: dict | None):
    """How the fixed-shape variants of a classifier are scored: its task metrics on dev (None without data)."""
    from codir_edge.export.candidates import task_metrics
    from codir_edge.export.fixed_variants import DevScores

    if encoded is None or reference is None:
        return None
    metric = plan.task.primary_metric
    return DevScores(lambda path: task_metrics(path, encoded, plan), metric, reference[metric], encoded.lengths,
                     plan.config.max_accuracy_drop)  # fmt: skip


def strings_variant(stage: Path, work: Path, source: str, tokenizer, config: ExportConfig, pair: bool,
                    regression: bool, dev) -> dict:  # fmt: skip
    """Build onnx/model.strings.onnx on the shipped graph and hold it to tokenizer + that graph (hard failure)."""
    import onnx

    from codir_edge.export.strings.build import build_strings_model
    from codir_edge.export.strings.check import check_strings_model, generated_sentences, probe_texts
    from codir_edge.export.strings.rules import graph_tokenizer_kind

    with_ids = work / "strings_ids.onnx"  # the graph with its token ids exposed, for the check
    build_strings_model(stage / source, with_ids, tokenizer, config.max_length, pair, regression, ids_out=True)
    shipped = onnx.load(str(with_ids))  # the same graph, only logits and probabilities out
    del shipped.graph.output[2:]
    onnx.save(shipped, str(stage / layout.STRINGS))
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
        "file": layout.STRINGS,
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
    return {"name": "ort", "file": layout.ORT, "from": source}


def write_model_files(stage: Path, tokenizer, model, max_length: int) -> None:
    """What an app needs beside the graphs: the tokenizer, the model config and the label names.
    ``model_max_length`` becomes the export's ``--max-length``: transformers.js truncates at it,
    so an app cuts long texts where ``evaluate`` and ``profile`` measured the bundle."""
    tokenizer.model_max_length = min(max_length, tokenizer.model_max_length)
    tokenizer.save_pretrained(stage)
    model.config.save_pretrained(stage)
    id2label = {int(k): v for k, v in (model.config.id2label or {}).items()}
    (stage / "labels.json").write_text(json.dumps([id2label[i] for i in sorted(id2label)], indent=2) + "\n")


def claim_runtimes(variants: list[dict], stage: Path, config: ExportConfig,
                   deployed: set[str]) -> tuple[list[dict], list[dict]]:  # fmt: skip
    """(each variant kept, with what it needs of the runtime: ``runtime`` in the manifest; the manifest's
    record of each left out). Under ``--min-onnxruntime`` a file that needs a newer onnxruntime is left out
    with one line, and the files built from it with it; a file the deployment table names cannot be, and
    fails the export."""
    import onnxruntime

    from codir_edge.export.config import min_onnxruntime
    from codir_edge.export.fixed_variants import left_out_record
    from codir_edge.onnx.runtime_needs import needs_of, version_tuple

    wanted = min_onnxruntime(config.min_onnxruntime) if config.min_onnxruntime else None
    kept, dropped, records = [], set(), []
    for variant in variants:
        if variant.get("from") in dropped:
            dropped.add(variant["file"])
            (stage / variant["file"]).unlink()
            records.append(left_out_record(variant, f"made from {variant['from']}, which was left out"))
            continue
        needs = needs_of(stage / variant["file"], runtime_optimized=variant["name"] == "ort-fixed")
        _run_once(stage / variant["file"], bool(needs.get("onnxruntime_extensions")))
        needs["checked_in"] = [f"onnxruntime {onnxruntime.__version__} (Python)"]
        if needs.get("onnxruntime_extensions"):
            needs["checked_in"].append(f"onnxruntime-extensions {_extensions_version()}")
        if wanted is not None and version_tuple(needs["min_onnxruntime"]) > wanted:
            why = f"it needs onnxruntime {needs['min_onnxruntime']}, above --min-onnxruntime {config.min_onnxruntime}"
            if variant["name"] in deployed:
                raise CheckFailedError(f"{variant['file']}: {why} ({needs['basis']}): pass a newer "
                                       "--min-onnxruntime, or a lower --opset")  # fmt: skip
            note(f"no {variant['file']}: {why} ({needs['basis']})")
            (stage / variant["file"]).unlink()
            dropped.add(variant["file"])
            records.append(left_out_record(variant, f"{why} ({needs['basis']})"))
            continue
        variant["runtime"] = needs
        kept.append(variant)
    for ort_file, ops_config in ((layout.ORT, layout.OPS_CONFIG), (layout.ORT_FIXED, layout.OPS_CONFIG_FIXED)):
        if ort_file in dropped:  # a slim build's operator list goes with the .ort file it lists
            (stage / ops_config).unlink(missing_ok=True)
    return kept, records


def _run_once(path: Path, custom_ops: bool) -> None:
    """Load ``path`` and run it once on a short input in this onnxruntime, so that ``checked_in``
    is a run, not an assumption (without --data no other step runs every file)."""
    import numpy as np

    from codir_edge.core.errors import first_line
    from codir_edge.onnx.session import create_session

    try:
        session = create_session(path, 1, custom_ops=custom_ops)
        feeds = {}
        for given in session.get_inputs():
            if given.type == "tensor(string)":
                feeds[given.name] = np.array(["a short test sentence"])
                continue
            shape = [d if isinstance(d, int) else (1 if i == 0 else 8) for i, d in enumerate(given.shape)]
            fill = 0 if given.name == "token_type_ids" else 1
            feeds[given.name] = np.full(shape, fill, dtype=np.int32 if "int32" in given.type else np.int64)
        session.run(None, feeds)
    except Exception as exc:  # onnxruntime raises its own (pybind) types
        raise CheckFailedError(
            f"{path.name} does not run in this onnxruntime ({first_line(exc)}): report the model"
        ) from exc


def _extensions_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("onnxruntime-extensions")
