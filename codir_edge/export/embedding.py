"""``export --task embedding``: a sentence-embedding model in, a bundle that loads as exported in
sentence-transformers' ONNX backend, transformers.js's feature-extraction pipeline and onnxruntime alone.

1. Checks before anything loads: an embedding model (its sentence-transformers head, or a bare encoder
   read as mean pooling, normalised), the length, the opset, the output folder, the data's layout.
2. The fp32 graph (optimum's feature-extraction export, eager attention) with the sentence head appended
   (``onnx/pooling.py``): outputs ``last_hidden_state`` and ``sentence_embedding``; held to PyTorch on
   both (hard failure beyond ``--atol``).
3. INT8 tuned per thread count as for ``--task ner`` (``ship.tune_single_graph_int8``): the plain and
   fused graphs' dynamic INT8 (per channel; per tensor too with dev data) and the peer's recipe, timed
   at every ``--tune-threads`` count; each count ships its fastest within the accuracy limit. Every
   variant is scored by the embedding metric on dev at batch 1 (Spearman for STS pairs, logistic
   regression accuracy for labelled texts; a drop beyond ``--max-accuracy-drop`` fails) and by its
   cosine to fp32 on the probe sentences.
4. The .ort form, the runtime claims, the tokenizer, config.json and the sentence-transformers files,
   and the manifest. All in a staging folder that becomes ``--out`` only when complete.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codir_edge.bundle import layout
from codir_edge.core.atomic import check_output_dir, staged_output_dir
from codir_edge.core.errors import CheckFailedError, InputError, avoidable
from codir_edge.core.notes import note
from codir_edge.data import DataSpec
from codir_edge.data.encode import Encoded
from codir_edge.export import ship
from codir_edge.export.candidates import single_graph_int8
from codir_edge.export.config import ExportConfig
from codir_edge.export.parity import probe_sentences
from codir_edge.models.sentence import SentenceHead


@dataclass(frozen=True)
class _Source:
    """What the export reads once and every step after the checks uses."""

    model_dir: Path
    config: ExportConfig
    head: SentenceHead
    spec: object  # export/spec.ExportSpec
    tokenizer: object
    model: object  # the bare encoder, eager attention
    target: str  # resolved: native becomes this machine's instruction set


def export_embedding(model_dir: Path, out_dir: Path, config: ExportConfig, data: DataSpec | None,
                     overwrite: bool, command: str | None):  # fmt: skip
    """The bundle at ``out_dir``; returns the export's report (``export/run.ExportReport``)."""
    from codir_edge.export import quantize as q
    from codir_edge.export.plan import check_opset
    from codir_edge.export.run import ExportReport
    from codir_edge.export.spec import read_spec
    from codir_edge.models.checkpoint import check_max_length, read_model_config
    from codir_edge.models.embed import folder_head
    from codir_edge.models.loading import load_tokenizer

    started = time.perf_counter()
    model_config = read_model_config(model_dir, "MODEL_DIR")
    head = folder_head(model_dir, option="MODEL_DIR")
    spec = read_spec(model_config, model_dir)
    check_max_length(model_config, config.max_length, model_dir)
    check_opset(config.opset, spec)
    _check_options(config)
    check_output_dir(out_dir, overwrite)
    wanted = _dev_data(data, config)
    tokenizer = load_tokenizer(model_dir, config.trust_remote_code)
    probes = probe_sentences(tokenizer, wanted.texts if wanted is not None else [], config.max_length)
    scored = _encode_texts(tokenizer, wanted.texts, config.max_length) if wanted is not None else None
    source = _Source(model_dir, config, head, spec, tokenizer, _load_encoder(model_dir, config.trust_remote_code),
                     q.resolve_target(config.target))  # fmt: skip
    with staged_output_dir(out_dir, overwrite) as stage:
        work = stage / ".work"
        work.mkdir()
        (stage / layout.GRAPH_DIR).mkdir()
        with avoidable("the fp32 graph", "try another --opset"):
            parity = _fp32_graph(source, stage, work, probes)
        variants = [{"name": "fp32", "file": layout.FP32, "graph": "plain", "candidate": "plain"}]
        fused_counts: dict = {}
        deployment = tuning = None
        scores = ship.FileScores(_embedding_scorer(wanted, scored), None, config.max_accuracy_drop)
        if config.quantize != "none":
            with avoidable("the INT8 variants", "pass --quantize none"):
                int8, fused_counts = single_graph_int8(stage / layout.FP32, source.spec, config, source.target, work,
                                                       scored is not None)  # fmt: skip
                tuned = ship.tune_single_graph_int8(int8, scores, config, source.spec, scored, source.target, stage)
                int8_variants, deployment, tuning = tuned
            variants += int8_variants
        _score(variants, stage, probes, scores, config)
        if config.ort:
            from codir_edge.export import steps

            with avoidable("the mobile .ort", "pass --no-ort"):
                shipped = layout.INT8 if (stage / layout.INT8).is_file() else layout.FP32  # the first count's
                variants.append(steps.mobile_variant(stage, shipped, source.target))
        shutil.rmtree(work)
        variants, deployment, tuning = _write_bundle(source, stage, variants, parity, fused_counts, command,
                                                     deployment, tuning)  # fmt: skip
    return ExportReport(out_dir, variants, parity, fused_counts, deployment, tuning, source.target,
                        time.perf_counter() - started)  # fmt: skip


def _check_options(config: ExportConfig) -> None:
    """Settings this export does not read yet are refused by name, not ignored."""
    if config.quantize == "static":
        raise InputError("--quantize static is not available for --task embedding: use --quantize dynamic or none")
    if config.tokenizer_in_graph:
        raise InputError("--tokenizer-in-graph is not available for --task embedding yet: drop it")
    if config.fixed_shape not in ("auto", "off"):
        raise InputError("--fixed-shape is not available for --task embedding yet: drop it")
    if config.fp16:
        raise InputError("--fp16 is not available for --task embedding yet: drop it")
    note("--task embedding: no model.strings.onnx and no fixed-shape variant yet (token ids in, embedding out)")


def _dev_data(data: DataSpec | None, config: ExportConfig):
    from codir_edge.data.embedding import read_embedding_data

    if data is None:
        return None
    return read_embedding_data(data, "dev", config.max_eval_samples, 0)


def _encode_texts(tokenizer, texts: list[str], max_length: int) -> Encoded:
    from codir_edge.data.encode import encode
    from codir_edge.data.examples import Examples

    return encode(tokenizer, Examples(list(texts), None, [0] * len(texts), "texts"), max_length)


def _load_encoder(model_dir: Path, trust_remote_code: bool):
    """The bare encoder with eager attention (the pattern onnxruntime's fusions recognise)."""
    import torch

    from codir_edge.models.loading import _quiet_transformers, _weights_error

    _quiet_transformers()
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code,
                                         torch_dtype=torch.float32, attn_implementation="eager").eval()  # fmt: skip
    except Exception as exc:  # safetensors, torch and transformers each raise their own types for bad files
        raise _weights_error(model_dir, exc) from exc


def _fp32_graph(source: _Source, stage: Path, work: Path, probes: Encoded) -> dict:
    """onnx/model.onnx with the sentence head, held to PyTorch: every probe batch, both outputs."""
    import torch

    from codir_edge.export.parity import sentence_feeds
    from codir_edge.models.sentence import embed_output
    from codir_edge.onnx.graph import export_fp32
    from codir_edge.onnx.pooling import EMBEDDING, HIDDEN, add_sentence_embedding
    from codir_edge.onnx.session import create_session

    model, head, config = source.model, source.head, source.config
    export_fp32(model, work / "hidden.onnx", config.opset, task="feature-extraction")
    add_sentence_embedding(work / "hidden.onnx", stage / layout.FP32, head)
    session = create_session(stage / layout.FP32, 1)
    names = [i.name for i in session.get_inputs()]
    cases, worst_cos = [], 1.0
    for batch, _, feed in sentence_feeds({config.max_length: probes}):  # the parity rows classifiers get
        with torch.inference_mode():
            tensors = {k: torch.from_numpy(v) for k, v in feed.items() if k in names}
            hidden = model(**tensors).last_hidden_state
            expected = embed_output(hidden, tensors["attention_mask"], head).numpy()
        got_hidden, got = session.run([HIDDEN, EMBEDDING], {n: feed[n] for n in names})
        diff = max(float(np.abs(expected - got).max()), float(np.abs(hidden.numpy() - got_hidden).max()))
        worst_cos = min(worst_cos, float(_cosines(expected, got).min()))
        cases.append({"batch": int(batch), "length": int(feed["input_ids"].shape[1]), "max_abs_diff": diff})
    worst = max(c["max_abs_diff"] for c in cases)
    if not worst <= config.atol:
        raise CheckFailedError(f"ONNX output differs from PyTorch by up to {worst:.2e} (--atol {config.atol:g}): "
                               "the export is wrong; try another --opset")  # fmt: skip
    return {"max_abs_diff": worst, "min_cosine": worst_cos, "atol": config.atol, "source": "probe sentences",
            "outputs": [HIDDEN, EMBEDDING], "cases": cases}  # fmt: skip


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def _embedding_scorer(wanted, scored: Encoded | None):
    """path -> the embedding metric on dev at batch 1, or None without dev data."""
    if scored is None:
        return None

    def score(path: Path) -> dict:
        from codir_edge.onnx.embed import onnx_embeddings

        return wanted.score(onnx_embeddings(path, scored))

    return score


def _score(variants: list[dict], stage: Path, probes: Encoded, scores, config: ExportConfig) -> None:
    """Each variant's cosine to fp32 on the probes, and with dev data its embedding metric at batch 1;
    a variant whose primary metric drops more than ``--max-accuracy-drop`` points fails the export."""
    from codir_edge.onnx.embed import onnx_embeddings

    reference = onnx_embeddings(stage / variants[0]["file"], probes)
    for variant in variants:
        mine = onnx_embeddings(stage / variant["file"], probes)
        variant["cosine_to_fp32"] = {"min": float(_cosines(mine, reference).min()),
                                     "mean": float(_cosines(mine, reference).mean()), "texts": len(probes)}  # fmt: skip
        if scores.score is not None:
            variant["accuracy"] = scores.of(stage / variant["file"])
    if scores.score is None:
        return
    metric = next(iter(variants[0]["accuracy"]))  # spearman (STS) or logistic_accuracy (labelled texts)
    failures = []
    for variant in variants[1:]:
        drop = 100 * (variants[0]["accuracy"][metric] - variant["accuracy"][metric])
        variant["accuracy_drop_points"] = drop
        if drop > config.max_accuracy_drop:
            failures.append(f"the {variant['name']} variant loses {drop:.2f} points of {metric} against fp32 "
                            f"(--max-accuracy-drop {config.max_accuracy_drop})")  # fmt: skip
    if failures:
        raise CheckFailedError("; ".join(failures) + ": pass --quantize none, or allow a larger drop")


def _write_bundle(source: _Source, stage: Path, variants: list[dict], parity: dict, fused_counts: dict,
                  command: str | None, deployment: dict | None,
                  tuning: dict | None) -> tuple[list[dict], dict, dict]:  # fmt: skip
    """Runtime claims, the files beside the graphs (tokenizer, config.json, the sentence-transformers
    files) and the manifest; (variants kept, deployment, tuning)."""
    from codir_edge.export.bundle import write_untuned_bundle
    from codir_edge.models.sentence import write_sentence_head
    from codir_edge.onnx.pooling import EMBEDDING

    config, spec, head = source.config, source.spec, source.head
    write_sentence_head(stage, head, spec.hidden, config.max_length)
    extra = {"embedding": {"pooling": head.pooling, "normalize": head.normalize, "output": EMBEDDING,
                           "dimension": spec.hidden}}  # fmt: skip
    return write_untuned_bundle(stage, source.model_dir, source.model, source.tokenizer, spec, config, source.target,
                                variants, parity, fused_counts, "embedding", extra, command, deployment,
                                tuning)  # fmt: skip
