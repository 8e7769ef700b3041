"""The steps of ``export`` after its checks, each one job, in the order ``run_export`` calls them.

1. ``fp32_with_parity``: the fp32 graph, held to PyTorch (hard failure).
2. ``candidates.py``: plain and offline-fused graphs and their INT8 forms; the INT8 ones beyond
   the allowed accuracy drop set aside (and the accuracy-aware search when none is left).
3. ``ship.py``: every candidate timed at every deployment setting, the winners per thread count
   copied into the bundle.
4. ``score_variants``: each variant's task metric; a drop beyond the limit is a hard failure.
5. ``fixed_variants``: the fixed-shape QDQ graph (and its .ort), and the Core ML and NNAPI graphs.
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
from codir_edge.export import quantize as q
from codir_edge.export.config import ExportConfig
from codir_edge.export.mixed import DropJudge, Search
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
    import numpy as np

    from codir_edge.data.encode import encode
    from codir_edge.export.strings.check import generated_sentences

    if plan.calibration is not None:
        return encode(tokenizer, plan.calibration, plan.config.max_length)
    sentences = generated_sentences(tokenizer, plan.config.calibration_samples, seed=2)
    ids = tokenizer(sentences, truncation=True, max_length=plan.config.max_length)["input_ids"]
    return Encoded([np.asarray(r, dtype=np.int64) for r in ids], None, np.zeros(len(ids)), tokenizer.pad_token_id or 0)


def calibration_feeds(encoded, input_names: list[str]) -> list[dict]:
    from codir_edge.data.encode import pad_batch

    feeds = []
    for start in range(0, len(encoded), 16):
        batch = pad_batch(encoded, list(range(start, min(start + 16, len(encoded)))))
        batch.setdefault("token_type_ids", batch["input_ids"] * 0)
        feeds.append({n: batch[n] for n in input_names})
    return feeds


def score_variants(variants: list[dict], stage: Path, encoded: Encoded, plan: ExportPlan) -> None:
    """Each variant's task metric on dev (in place); fails, naming every variant beyond the allowed
    drop and its remedy, when one or more loses too much. A fixed-shape variant that ``--fixed-shape
    auto`` added on its own (the QDQ, Core ML and NNAPI graphs) is left out of the bundle instead, with
    a note: it is not shipped, and the rest of the bundle is."""
    from codir_edge.export.candidates import task_metrics

    config, metric = plan.config, plan.task.primary_metric
    for variant in variants:
        if "accuracy" not in variant and "fixed_shape" not in variant:  # INT8 candidates: scored before timing
            variant["accuracy"] = task_metrics(stage / variant["file"], encoded, plan)
    reference = variants[0]["accuracy"][metric]
    failures, left_out = [], []
    for variant in (v for v in variants[1:] if "accuracy" in v):
        drop = (reference - variant["accuracy"][metric]) * 100
        variant["accuracy_drop_points"] = drop
        if drop <= config.max_accuracy_drop:
            continue
        said = f"the {variant['name']} variant loses {drop:.2f} points of {metric} against fp32 " \
               f"(--max-accuracy-drop {config.max_accuracy_drop})"  # fmt: skip
        if "fixed_shape" in variant and config.fixed_shape == "auto":
            left_out.append(variant)
            note(f"{said}: left out of the bundle (a longer --fixed-shape or a larger drop ships it)")
        else:
            failures.append(f"{said}: {_remedy(variant['name'], config)}")
    if failures:
        raise CheckFailedError("; ".join(failures))
    _leave_out(variants, left_out, stage)


def _leave_out(variants: list[dict], left_out: list[dict], stage: Path) -> None:
    """Remove ``left_out`` (and the .ort made from one, with its operator list) from ``variants`` and the stage."""
    files = {v["file"] for v in left_out}
    gone = [v for v in variants if v["file"] in files or v.get("from") in files]
    for variant in gone:
        (stage / variant["file"]).unlink(missing_ok=True)
        if variant["file"] == layout.ORT_FIXED:
            (stage / layout.OPS_CONFIG_FIXED).unlink(missing_ok=True)
    variants[:] = [v for v in variants if v not in gone]


def _remedy(variant: str, config: ExportConfig) -> str:
    if variant.endswith("-fixed") or variant in ("coreml", "nnapi"):
        return "pass --fixed-shape off, a longer --fixed-shape, or allow a larger drop"
    if variant == "fp16":
        return "drop --fp16 for this model, or allow a larger drop"
    if config.quantize == "static" and config.calibration_method == "minmax":
        return "try --calibration-method entropy or --quantize dynamic, or allow a larger drop"
    if config.quantize == "static":
        return "try --quantize dynamic, or allow a larger drop"
    return "try --quantize static --calibration-method entropy, or allow a larger --max-accuracy-drop"


def fixed_variants(stage: Path, work: Path, plain: Path, shape: tuple[int, int], calibration, plan: ExportPlan,
                   encoded, reference: dict | None = None) -> list[dict]:  # fmt: skip
    """The fixed-shape static QDQ INT8 graph (u8 activations and weights), its accelerator usability,
    its dev accuracy with inputs padded or truncated to its length, and its .ort (runtime-optimised,
    so NNAPI and Core ML can still take its nodes). Per-tensor u8 weights can lose more than the limit
    where per-channel ones do not: then the fewest most sensitive MatMuls stay in float (the search of
    ``export/mixed.py``, judged against the fp32 ``reference``), and the variant ships instead of being
    left out."""
    from codir_edge.export import fixed
    from codir_edge.export.candidates import CHECK_BATCHES, drop_judge, run_fault, task_metrics
    from codir_edge.export.mixed import MOBILE_QDQ, SENSITIVITY_SENTENCES, quantize_within, sensitivity
    from codir_edge.export.mobile import to_ort
    from codir_edge.onnx.predict import fixed_batches
    from codir_edge.onnx.session import create_session

    batch, length = shape
    fixed_fp32, file = work / "fixed.onnx", layout.INT8_FIXED
    fixed.fix_shapes(plain, fixed_fp32, batch, length)
    names = [i.name for i in create_session(fixed_fp32, 1).get_inputs()]
    count = plan.config.calibration_samples
    feeds = [{n: b[n] for n in names} for b in fixed_batches(calibration, batch, length, count)]
    judge = drop_judge(encoded, plan, reference[plan.task.primary_metric] if reference else None)

    def quantize(keep: tuple[str, ...]) -> Path:
        q.static_int8(fixed_fp32, stage / file, feeds, plan.config.calibration_method, plan.target,
                      op_types=fixed.FIXED_OPS, keep_float=keep, weights_u8_per_tensor=True)  # fmt: skip
        return stage / file

    def rank() -> list[str]:
        ranked = sensitivity(fixed_fp32, feeds[:SENSITIVITY_SENTENCES], MOBILE_QDQ, tuple(fixed.FIXED_OPS))
        return [name for name, _ in ranked]

    search = quantize_within(quantize, rank, judge)
    fault = run_fault(stage / file, feeds[:CHECK_BATCHES])
    if fault is not None:
        (stage / file).unlink()
        if plan.config.fixed_shape != "auto":
            raise CheckFailedError(f"the fixed-shape INT8 variant {fault}: pass --fixed-shape off")
        note(f"no fixed-shape variant: it {fault}")
        return []
    entry = {
        "name": "int8-fixed",
        "file": file,
        "fixed_shape": [batch, length],
        "quantization": "static",
        "format": "QDQ",
        "activations": "u8",
        "weights": "u8 per-tensor",
        "quantized_ops": fixed.FIXED_OPS,
        "calibration": "training sentences" if plan.calibration is not None else "generated sentences",
        "usability": fixed.usability(stage / file),
    }
    if encoded is not None:
        entry["accuracy"] = task_metrics(stage / file, encoded, plan)  # fed at its fixed shape
        entry["truncated_rows"] = int((encoded.lengths > length).sum())
    entry.update(search_record(search))
    out = [entry]
    if plan.config.ort:
        to_ort(stage / file, stage, plan.target, layout.ORT_FIXED, layout.OPS_CONFIG_FIXED, "Runtime")
        out.append({"name": "ort-fixed", "file": layout.ORT_FIXED, "from": file, "fixed_shape": [batch, length]})
    return [*out, *accelerator_variants(stage, work, fixed_fp32, (batch, length), feeds, encoded, plan, judge)]


def search_record(search: Search | None) -> dict:
    """What the manifest says of an accuracy-aware search that kept MatMuls in float (nothing otherwise)."""
    if search is None or not search.keep_float:
        return {}
    return {"keep_float": list(search.keep_float),
            "accuracy_search": {"drop_before": search.trials[0]["drop"], "drop_after": round(search.drop, 4),
                                "trials": search.trials}}  # fmt: skip


def accelerator_variants(stage: Path, work: Path, fixed_fp32: Path, shape: tuple[int, int], feeds: list[dict],
                         encoded, plan: ExportPlan, judge: DropJudge | None = None) -> list[dict]:  # fmt: skip
    """The Core ML variant (``export/coreml.py``: fp16 inside, the Gathers Core ML stops at rewritten) and
    the NNAPI one (``export/nnapi.py``: int32 ids, 2-D QDQ MatMuls, tanh GELU, decomposed LayerNorm, u8
    embeddings), each with its accelerator's usability by onnxruntime's checker and ours, and its dev
    accuracy at its fixed shape (gated like every variant by ``score_variants``)."""
    from codir_edge.export.coreml import coreml_graph
    from codir_edge.export.nnapi import as_int32, nnapi_graph

    config = plan.config
    made = [
        _accelerator_variant(stage, "coreml", layout.COREML,
                             lambda: (coreml_graph(fixed_fp32, stage / layout.COREML), None),
                             feeds, shape, encoded, plan,
                             {"precision": "fp16 inside; inputs int64, outputs fp32"}),
        _accelerator_variant(stage, "nnapi", layout.NNAPI,
                             lambda: nnapi_graph(fixed_fp32, stage / layout.NNAPI, work, feeds,
                                                 config.calibration_method, plan.target, judge),
                             as_int32(feeds), shape, encoded, plan,
                             {"precision": "QDQ u8 weight MatMuls and embeddings; outputs fp32",
                              "input_dtype": "int32", "gelu": "tanh approximation"}),
    ]  # fmt: skip
    return [entry for entry in made if entry is not None]


def _accelerator_variant(stage: Path, name: str, file: str, build, feeds: list[dict], shape: tuple[int, int],
                         encoded, plan: ExportPlan, described: dict) -> dict | None:  # fmt: skip
    """Build one accelerator variant (``build`` returns what it rewrote and its accuracy-aware search, if any)
    and check it runs; a model it cannot be made for gets a note under ``--fixed-shape auto`` and fails an
    explicit ``--fixed-shape``."""
    from codir_edge.export import fixed
    from codir_edge.export.candidates import CHECK_BATCHES, run_fault, task_metrics

    try:
        rewritten, search = build()
        fault = run_fault(stage / file, feeds[:CHECK_BATCHES])
    except Exception as exc:  # noqa: BLE001 - the converters' errors have no common type; the message says why
        fault = f"could not be built ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
    if fault is not None:
        (stage / file).unlink(missing_ok=True)
        if plan.config.fixed_shape != "auto":
            raise CheckFailedError(f"the {name} variant {fault}: pass --fixed-shape off")
        note(f"no {name} variant: it {fault}")
        return None
    entry = {"name": name, "file": file, "fixed_shape": list(shape), **described, "rewritten": rewritten,
             "usability": fixed.usability(stage / file, (name,)), **search_record(search)}  # fmt: skip
    if encoded is not None:
        entry["accuracy"] = task_metrics(stage / file, encoded, plan)
    return entry


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


def claim_runtimes(variants: list[dict], stage: Path, config: ExportConfig, deployed: set[str]) -> list[dict]:
    """Each variant with what it needs of the runtime (``runtime`` in the manifest). Under
    ``--min-onnxruntime`` a file that needs a newer onnxruntime is left out with one line, and the
    files built from it with it; a file the deployment table names cannot be, and fails the export."""
    import onnxruntime

    from codir_edge.export.config import min_onnxruntime
    from codir_edge.onnx.runtime_needs import needs_of, version_tuple

    wanted = min_onnxruntime(config.min_onnxruntime) if config.min_onnxruntime else None
    kept, dropped = [], set()
    for variant in variants:
        if variant.get("from") in dropped:
            dropped.add(variant["file"])
            (stage / variant["file"]).unlink()
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
            continue
        variant["runtime"] = needs
        kept.append(variant)
    for ort_file, ops_config in ((layout.ORT, layout.OPS_CONFIG), (layout.ORT_FIXED, layout.OPS_CONFIG_FIXED)):
        if ort_file in dropped:  # a slim build's operator list goes with the .ort file it lists
            (stage / ops_config).unlink(missing_ok=True)
    return kept


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
