"""``run_export``: a Hugging Face sequence classifier in, a verified ONNX bundle out.

Read top to bottom: check the cheap things (folder, architecture, options, output), export the fp32
graph and hold it to PyTorch (hard failure), fuse and keep whichever graph is faster here, quantize,
score every variant on the task when there is data (hard failure beyond the allowed drop), convert
for mobile, then write tokenizer, config, labels and a manifest with every file's hash. All of it
happens in a staging folder that becomes ``--out`` only when complete.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from codir_edge.atomic import check_output_dir, staged_output_dir
from codir_edge.data import DataSpec, get_task, load_split
from codir_edge.errors import CheckFailedError, InputError
from codir_edge.evaluate.run import model_labels
from codir_edge.export import quantize as q
from codir_edge.export.bundle import write_manifest
from codir_edge.export.spec import DEFAULT_OPSET, MIN_OPSET, spec_for
from codir_edge.extras import require_extra
from codir_edge.models.checkpoint import check_max_length, is_sequence_classifier, read_model_config

QUANTIZE_MODES = ("none", "dynamic", "static")
STRINGS_CHECK_SENTENCES = 120  # the strings model is held to tokenizer + graph on this many sentences


@dataclass(frozen=True)
class ExportConfig:
    quantize: str = "dynamic"
    task: str | None = None
    calibration_samples: int = 300
    calibration_method: str = "minmax"
    optimize: bool = True  # offline fusion allowed; kept only where measured faster
    fp16: bool = False  # also made whenever the target is a GPU
    ort: bool = True
    opset: int = DEFAULT_OPSET
    atol: float = 1e-4
    max_accuracy_drop: float = 0.5  # points of the task's primary metric
    target: str = "native"
    max_length: int = 128
    max_eval_samples: int | None = None
    threads: int = 1  # for the measurements that choose between graphs
    tokenizer_in_graph: bool | None = None  # None: whenever the tokenizer is a WordPiece one
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.quantize not in QUANTIZE_MODES:
            raise InputError(f"unknown --quantize '{self.quantize}': use one of {', '.join(QUANTIZE_MODES)}")
        if self.calibration_method not in q.CALIBRATION_METHODS:
            raise InputError(
                f"unknown --calibration-method '{self.calibration_method}': use one of "
                f"{', '.join(q.CALIBRATION_METHODS)} (percentile clips BERT's outliers and wrecks its accuracy)"
            )
        if self.target not in q.TARGETS:
            raise InputError(f"unknown --target '{self.target}': use one of {', '.join(q.TARGETS)}")
        if self.calibration_samples < 1 or self.threads < 1:
            raise InputError("--calibration-samples and threads must be at least 1")
        if not self.atol > 0 or self.max_accuracy_drop < 0:
            raise InputError("--atol must be positive and --max-accuracy-drop must not be negative")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ExportReport:
    out_dir: Path
    variants: list[dict]
    parity: dict
    fused_operators: dict[str, int]
    graph_choice: dict
    target: str
    wall_time_s: float


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime's quantizer logs a 'consider pre-processing' hint on the root logger; hide it
    for the export only, and give the caller its logging back."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _remedy(variant: str, config: ExportConfig) -> str:
    if variant == "fp16":
        return "drop --fp16 for this model, or allow a larger drop"
    if config.quantize == "static" and config.calibration_method == "minmax":
        return "try --calibration-method entropy or --quantize dynamic, or allow a larger drop"
    if config.quantize == "static":
        return "try --quantize dynamic, or allow a larger drop"
    return "try --quantize static --calibration-method entropy, or allow a larger --max-accuracy-drop"


def _check_opset(opset: int) -> None:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise InputError(f"--opset {opset} is outside what can be exported here: use {MIN_OPSET} to {newest}")


def _session_or_error(path: Path, opset: int):
    from codir_edge.onnx_session import create_session

    try:
        return create_session(path, 1)
    except Exception as exc:  # onnxruntime raises its own (pybind) types
        import onnxruntime

        first = str(exc).strip().splitlines()[0][:200]
        raise InputError(
            f"onnxruntime {onnxruntime.__version__} cannot run opset {opset} ({first}): use --opset {DEFAULT_OPSET}"
        ) from exc


def _is_pair_model(model_dir: Path, task, data: DataSpec | None) -> bool:
    """Whether the strings model takes a text pair: from --task/--data, else from the task the model was
    trained on (finetune and compress record it in metrics.json)."""
    if task is not None:
        return task.is_pair or bool(data and data.text_pair_column)
    try:
        trained_on = json.loads((model_dir / "metrics.json").read_text(encoding="utf-8")).get("task")
        return bool(trained_on) and get_task(trained_on).is_pair
    except (OSError, ValueError, AttributeError, InputError):
        return False


def _strings_variant(stage: Path, source: str, tokenizer, config: ExportConfig, pair: bool, regression: bool,
                     dev) -> dict:  # fmt: skip
    """Build model.strings.onnx on the shipped graph and hold it to tokenizer + that graph (hard failure)."""
    from codir_edge.export.strings import build_strings_model, check_strings_model, generated_sentences, probe_texts

    build_strings_model(stage / source, stage / "model.strings.onnx", tokenizer, config.max_length, pair, regression)
    # task sentences when there are enough, topped up with generated ones
    sentences = list(dev.texts[:STRINGS_CHECK_SENTENCES]) if dev is not None else []
    pairs = list(dev.text_pairs[:STRINGS_CHECK_SENTENCES]) if dev is not None and dev.text_pairs is not None else []
    missing = STRINGS_CHECK_SENTENCES - len(sentences)
    sentences += generated_sentences(tokenizer, missing, seed=0)
    pairs += generated_sentences(tokenizer, len(sentences) - len(pairs), seed=1) if pair else []
    texts = probe_texts(sentences, pairs if pair else None, config.max_length)
    agreement = check_strings_model(
        stage / "model.strings.onnx", stage / source, tokenizer, texts, config.max_length, config.atol
    )
    agreement["source"] = (
        "task sentences"
        if missing <= 0
        else f"{STRINGS_CHECK_SENTENCES - missing} task and {missing} generated sentences"
    )
    return {
        "name": "strings",
        "file": "model.strings.onnx",
        "from": source,
        "takes": "text",
        "inputs": ["text", "text_pair"] if pair else ["text"],
        "outputs": ["logits", "probabilities"],
        "agreement": agreement,
    }


def run_export(
    model_dir: Path,
    out_dir: Path,
    config: ExportConfig,
    data: DataSpec | None = None,
    overwrite: bool = False,
    command: str | None = None,
) -> ExportReport:
    require_extra("train", "export")
    started = time.perf_counter()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    # ---- cheap checks -----------------------------------------------------------------------------
    model_config = read_model_config(model_dir, "MODEL_DIR")
    spec = spec_for(model_config, model_dir)
    if not is_sequence_classifier(model_config):
        raise InputError(f"{model_dir} is not a sequence classifier: fine-tune or compress it first")
    check_max_length(model_config, config.max_length, model_dir)
    _check_opset(config.opset)
    if config.quantize == "static" and data is None:
        raise InputError("--quantize static calibrates on task sentences: pass --task and --data, or use dynamic")
    if data is not None and config.task is None:
        raise InputError("--data needs --task to know its columns and metric: pass --task")
    check_output_dir(out_dir, overwrite)
    target = q.resolve_target(config.target)
    task = get_task(config.task) if config.task else None
    labels = model_labels(model_config, task, model_dir) if task else None
    dev = load_split(task, data, "dev", labels).subsample(config.max_eval_samples, 0) if data else None
    calibration = (
        load_split(task, data, "train", labels).subsample(config.calibration_samples, 0)
        if data and config.quantize == "static"
        else None
    )

    from codir_edge.data.encode import encode, pad_batch
    from codir_edge.data.metrics import score
    from codir_edge.evaluate.onnx_predict import onnx_logits
    from codir_edge.export import parity as par
    from codir_edge.export.choose import median_latencies
    from codir_edge.export.convert import export_fp32, load_for_export
    from codir_edge.export.graph import fuse, operator_counts
    from codir_edge.models.loading import load_tokenizer

    tokenizer = load_tokenizer(model_dir, config.trust_remote_code)
    from codir_edge.export.strings import unsupported_reason

    cannot_embed = unsupported_reason(tokenizer)
    if config.tokenizer_in_graph and cannot_embed:
        raise InputError(cannot_embed)
    with_strings = config.tokenizer_in_graph is not False and cannot_embed is None
    model = load_for_export(model_dir, config.trust_remote_code)
    with _quiet_root_logger(), staged_output_dir(out_dir, overwrite) as stage:
        work = stage / ".work"
        work.mkdir()
        # ---- fp32 graph, held to PyTorch ---------------------------------------------------------
        plain = work / "plain.onnx"
        export_fp32(model, plain, config.opset)
        session = _session_or_error(plain, config.opset)
        input_names = [i.name for i in session.get_inputs()]
        if dev is not None:
            by_length = {n: encode(tokenizer, dev, n) for n in par.lengths_for(config.max_length)}
            cases, source = list(par.sentence_feeds(by_length)), "task sentences"
        else:
            cases = list(
                par.generated_feeds(
                    int(model_config["vocab_size"]),
                    tokenizer.cls_token_id,
                    tokenizer.sep_token_id,
                    tokenizer.pad_token_id or 0,
                    config.max_length,
                )
            )
            source = "generated token ids"
        parity = par.check_parity(model, session, cases, config.atol, source)
        del session

        # ---- graph: offline-fused or plain, whichever runs faster here ----------------------------
        heads, width = int(model_config.get("num_attention_heads", 12)), int(model_config.get("hidden_size", 768))
        fused = work / "fused.onnx"
        fused_counts = fuse(plain, fused, spec.optimizer_type, heads, width)
        candidates = {"plain": plain}
        if config.optimize:
            candidates["fused"] = fused
        int8_candidates: dict[str, Path] = {}
        if config.quantize == "dynamic":
            for name, path in candidates.items():
                int8_candidates[name] = work / f"{name}.int8.onnx"
                q.dynamic_int8(path, int8_candidates[name], target, fused=name == "fused")
        elif config.quantize == "static":
            feeds = []
            calib = encode(tokenizer, calibration, config.max_length)
            for start in range(0, len(calib), 16):
                batch = pad_batch(calib, list(range(start, min(start + 16, len(calib)))))
                batch.setdefault("token_type_ids", batch["input_ids"] * 0)
                feeds.append({n: batch[n] for n in input_names})
            int8_candidates["plain"] = work / "plain.int8.onnx"
            q.static_int8(plain, int8_candidates["plain"], feeds, config.calibration_method, target)
        measured = (
            median_latencies({**candidates, **{f"{k}.int8": v for k, v in int8_candidates.items()}}, config.threads)
            if target != "cuda" and len(candidates) + len(int8_candidates) > 1
            else {}
        )
        choice = {"fp32": min(candidates, key=lambda n: measured.get(n, 0.0))}
        if int8_candidates:
            choice["int8"] = min(int8_candidates, key=lambda n: measured.get(f"{n}.int8", 0.0))
        graph_choice = {"chosen": choice, "median_ms_seq128_batch1": measured, "threads": config.threads}
        shutil.copy(candidates[choice["fp32"]], stage / "model.onnx")
        variants = [{"name": "fp32", "file": "model.onnx", "graph": choice["fp32"]}]
        if int8_candidates:
            shutil.copy(int8_candidates[choice["int8"]], stage / "model.int8.onnx")
            variants.append(
                {"name": "int8", "file": "model.int8.onnx", "graph": choice["int8"], "quantization": config.quantize}
            )
        if config.fp16 or target == "cuda":
            q.fp16(plain, stage / "model.fp16.onnx")
            variants.append({"name": "fp16", "file": "model.fp16.onnx", "graph": "plain"})

        # ---- accuracy on the task -----------------------------------------------------------------
        if dev is not None:
            encoded = by_length[config.max_length]  # the parity pass tokenized it already
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

        # ---- strings in, scores out ----------------------------------------------------------------
        if with_strings:
            shipped = "model.int8.onnx" if int8_candidates else "model.onnx"
            pair = _is_pair_model(model_dir, task, data)
            regression = model.config.num_labels == 1
            variants.append(_strings_variant(stage, shipped, tokenizer, config, pair, regression, dev))

        # ---- mobile form, tokenizer, config, labels, manifest -------------------------------------
        if config.ort:
            from codir_edge.export.mobile import to_ort

            mobile_source = stage / ("model.int8.onnx" if int8_candidates else "model.onnx")
            to_ort(mobile_source, stage, target)
            variants.append({"name": "ort", "file": "model.ort", "from": mobile_source.name})
        shutil.rmtree(work)
        tokenizer.save_pretrained(stage)
        model.config.save_pretrained(stage)
        id2label = {int(k): v for k, v in (model.config.id2label or {}).items()}
        (stage / "labels.json").write_text(json.dumps([id2label[i] for i in sorted(id2label)], indent=2) + "\n")
        report = ExportReport(
            out_dir=out_dir,
            variants=variants,
            parity=parity.to_dict(),
            fused_operators=fused_counts,
            graph_choice=graph_choice,
            target=target,
            wall_time_s=time.perf_counter() - started,
        )
        write_manifest(
            stage,
            variants=variants,
            model_dir=model_dir,
            spec=spec,
            config=config.to_dict() | {"target_resolved": target},
            parity=parity.to_dict(),
            fused_operators=fused_counts,
            graph_choice=graph_choice,
            command=command,
            plain_counts=operator_counts(stage / "model.onnx"),
        )
    return report
