"""``export --task ner``: a token classifier in, a bundle whose graphs output per-token logits
``[batch, sequence, labels]``, as Optimum exports token-classification models and as transformers.js's
token-classification pipeline loads them.

1. Checks before anything loads: a token classifier, the length, the opset, the options, the output
   folder, the dev data (read with the model's labels).
2. The fp32 graph (optimum's token-classification export, eager attention), held to PyTorch on dev
   sentences (the longest first) and generated ones, at batch 1, 4 and 16 (hard failure beyond --atol).
3. INT8 candidates: dynamic quantization of the plain and the fused graph with per-channel weights,
   per-tensor ones beside them with dev data (which can catch their drop), and the peer's recipe
   (Optimum's O2 graph and dynamic INT8, ``o2.optimum``). They are timed at every ``--tune-threads``
   count as classification's are (``ship.tune_int8_only``), and each count ships its fastest whose
   entity F1 on dev (batch 1) is within ``--max-accuracy-drop`` points of fp32's, scored only as picks
   need it; the deployment table names the file per count. A drop beyond the limit everywhere fails
   the export. The agreement of the first count's INT8 graph with fp32 on the probe sentences is
   recorded.
4. The fixed-shape variants for phone accelerators (``fixed_variants.py``): static QDQ INT8 at one
   [batch, length] (``--fixed-shape``; by default with --ort, batch 1 and dev's longest sentence:
   every word a shorter shape cuts is a missed one), its .ort, and the Core ML and NNAPI graphs, each
   scored by dev entity F1 fed at its shape; beyond ``--max-accuracy-drop`` the fewest
   sensitive MatMuls stay in float, and a variant still beyond it is left out under ``auto``.
5. ``model.strings.onnx`` (WordPiece tokenizers; others get a note, or one line under
   ``--tokenizer-in-graph``): raw text in, each piece's label, character offsets (code points and
   UTF-16 units) and white-space word out, held to the tokenizer's ids and ``offset_mapping`` and to
   the shipped graph's logits (``strings/offsets.py``).
6. The .ort form, the runtime claims, the tokenizer, config.json (id2label) and the manifest, all in a
   staging folder that becomes ``--out`` only when complete.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from codir_edge.bundle import layout
from codir_edge.core.atomic import check_output_dir, staged_output_dir
from codir_edge.core.errors import CheckFailedError, InputError, avoidable
from codir_edge.data import DataSpec
from codir_edge.data.ner import NER_TASK, read_tagged
from codir_edge.data.ner_encode import encode_tagged, score_token_logits
from codir_edge.export import fixed, ship
from codir_edge.export.candidates import single_graph_int8
from codir_edge.export.config import ExportConfig
from codir_edge.export.fixed_variants import Calibration, DevScores, fixed_variants, gate_variants
from codir_edge.export.parity import probe_sentences
from codir_edge.export.strings.offsets import offsets_unsupported
from codir_edge.export.strings.rules import strings_graph_wanted


def export_tokens(model_dir: Path, out_dir: Path, config: ExportConfig, data: DataSpec | None, overwrite: bool,
                  command: str | None):  # fmt: skip
    """The bundle at ``out_dir``; returns the export's report (``export/run.ExportReport``)."""
    from codir_edge.export import quantize as q
    from codir_edge.export.plan import check_opset
    from codir_edge.export.run import ExportReport
    from codir_edge.export.spec import read_spec
    from codir_edge.models.checkpoint import check_max_length
    from codir_edge.models.families import family_of
    from codir_edge.models.loading import load_tokenizer, load_trained_token_classifier
    from codir_edge.models.tagger import tagger_folder_labels

    started = time.perf_counter()
    model_config, labels = tagger_folder_labels(model_dir, "MODEL_DIR")
    spec = read_spec(model_config, model_dir)
    check_max_length(model_config, config.max_length, model_dir)
    check_opset(config.opset, spec)
    _check_options(config)
    check_output_dir(out_dir, overwrite)
    dev = read_tagged(data.data, "dev", labels).subsample(config.max_eval_samples, 0) if data is not None else None
    tokenizer = load_tokenizer(model_dir, config.trust_remote_code)
    segments = family_of(model_config).takes_segments(model_config)
    dev_tok = encode_tagged(tokenizer, dev, labels, config.max_length, segments) if dev is not None else None
    with_strings = strings_graph_wanted(config.tokenizer_in_graph, offsets_unsupported(tokenizer))
    shape = fixed.resolve(config.fixed_shape, config.ort, dev_tok.encoded.lengths if dev is not None else None,
                          config.max_length, percentile=100)  # fmt: skip
    probes = probe_sentences(tokenizer, dev.texts if dev is not None else [], config.max_length, segments)
    model = load_trained_token_classifier(model_dir, config.trust_remote_code, attn_implementation="eager").eval()
    target = q.resolve_target(config.target)
    with staged_output_dir(out_dir, overwrite) as stage:
        work = stage / ".work"
        work.mkdir()
        (stage / layout.GRAPH_DIR).mkdir()
        with avoidable("the fp32 graph", "try another --opset"):
            parity = _fp32_graph(model, stage, work, probes, config)
        variants = [{"name": "fp32", "file": layout.FP32, "graph": "plain", "candidate": "plain"}]
        fused_counts: dict = {}
        deployment = tuning = None
        scores = ship.FileScores(_entity_scorer(dev, dev_tok, labels), "f1", config.max_accuracy_drop)
        if config.quantize != "none":
            with avoidable("the INT8 variants", "pass --quantize none"):
                int8, fused_counts = single_graph_int8(stage / layout.FP32, spec, config, target, work, dev is not None)
                encoded = dev_tok.encoded if dev is not None else None
                int8_variants, deployment, tuning = ship.tune_single_graph_int8(int8, scores, config, spec, encoded,
                                                                                target, stage)  # fmt: skip
                int8_variants[0]["agreement_with_fp32"] = _agreement(stage / layout.INT8, stage / layout.FP32, probes)
            variants += int8_variants
        if shape is not None:
            with avoidable(f"the fixed-shape {shape[0]}x{shape[1]} variant", "pass --fixed-shape off"):
                calibration = _calibration(tokenizer, data, labels, config, segments)
                dev_scores = _dev_scores(scores, stage, dev_tok, config)
                variants += fixed_variants(stage, work, stage / layout.FP32, shape, calibration, config, target,
                                           dev_scores)  # fmt: skip
        left_out = _score(variants, stage, scores, config) if dev is not None else []
        shipped = layout.INT8 if (stage / layout.INT8).is_file() else layout.FP32  # the first count's
        if with_strings:
            with avoidable("the tokenizer in the graph", "pass --no-tokenizer-in-graph"):
                variants.append(_strings_variant(stage, work, shipped, tokenizer, config, dev, labels))
        if config.ort:
            from codir_edge.export import steps

            with avoidable("the mobile .ort", "pass --no-ort"):
                variants.append(steps.mobile_variant(stage, shipped, target))
        shutil.rmtree(work)
        variants, deployment, tuning = _write_bundle(model_dir, model, tokenizer, spec, config, target, stage,
                                                     variants, parity, fused_counts, labels, command,
                                                     deployment, tuning, left_out)  # fmt: skip
    return ExportReport(out_dir, variants, parity, fused_counts, deployment, tuning, target,
                        time.perf_counter() - started)  # fmt: skip


def _check_options(config: ExportConfig) -> None:
    """Settings this export does not read yet are refused by name, not ignored."""
    if config.quantize == "static":
        raise InputError("--quantize static is not available for --task ner: use --quantize dynamic or none")
    if config.fp16:
        raise InputError("--fp16 is not available for --task ner yet: drop it")


def _fp32_graph(model, stage: Path, work: Path, probes, config: ExportConfig) -> dict:
    """onnx/model.onnx, held to PyTorch's logits on the probe sentences at several batch sizes."""
    import torch

    from codir_edge.export.parity import sentence_feeds
    from codir_edge.onnx.graph import export_fp32
    from codir_edge.onnx.session import create_session

    export_fp32(model, stage / layout.FP32, config.opset, task="token-classification")
    session = create_session(stage / layout.FP32, 1)
    names = [i.name for i in session.get_inputs()]
    cases = []
    for batch, length, feed in sentence_feeds({config.max_length: probes}):  # the longest first, then random
        with torch.inference_mode():
            expected = model(**{k: torch.from_numpy(v) for k, v in feed.items() if k in names}).logits.numpy()
        (got,) = session.run(None, {n: feed[n] for n in names})
        mask = feed["attention_mask"].astype(bool)
        cases.append({"batch": batch, "length": length, "max_abs_diff": float(np.abs(expected - got)[mask].max())})
    worst = max(c["max_abs_diff"] for c in cases)
    if not worst <= config.atol:
        raise CheckFailedError(f"ONNX logits differ from PyTorch by up to {worst:.2e} (--atol {config.atol:g}): "
                               "the export is wrong; try another --opset")  # fmt: skip
    return {"max_abs_diff": worst, "atol": config.atol, "source": "dev and generated sentences",
            "outputs": ["logits"], "cases": cases}  # fmt: skip


def _agreement(path: Path, reference: Path, probes) -> float:
    """Share of the probe pieces whose argmax label matches the reference graph's."""
    from codir_edge.onnx.tokens import onnx_token_logits

    mine, theirs = onnx_token_logits(path, probes), onnx_token_logits(reference, probes)
    same = sum(int((a.argmax(-1) == b.argmax(-1)).sum()) for a, b in zip(mine, theirs, strict=True))
    return same / max(1, sum(len(a) for a in mine))


def _entity_scorer(dev, dev_tok, labels: list[str]):
    """path -> dev entity scores at batch 1, or None without dev data."""
    if dev is None:
        return None

    def score(path: Path) -> dict:
        from codir_edge.onnx.tokens import onnx_token_logits

        return score_token_logits(onnx_token_logits(path, dev_tok.encoded), dev_tok, dev, labels)

    return score


def _strings_variant(stage: Path, work: Path, source: str, tokenizer, config: ExportConfig, dev,
                     labels: list[str]) -> dict:  # fmt: skip
    """onnx/model.strings.onnx on the shipped graph: raw text in, each piece's label, offsets and word
    out (``strings/offsets.py``), held to the tokenizer + that graph (hard failure) on dev sentences,
    generated ones and the hard cases."""
    import onnx

    from codir_edge.export.steps import STRINGS_CHECK_SENTENCES
    from codir_edge.export.strings.check import check_offsets_model, generated_sentences, probe_texts
    from codir_edge.export.strings.offsets import OUTPUTS, build_offsets_model

    with_ids = work / "strings_ids.onnx"  # the graph with its token ids exposed, for the check
    build_offsets_model(stage / source, with_ids, tokenizer, config.max_length, labels, ids_out=True)
    shipped = onnx.load(str(with_ids))
    del shipped.graph.output[len(OUTPUTS) :]
    onnx.save(shipped, str(stage / layout.STRINGS))
    sentences = [" ".join(words) for words in dev.words[:STRINGS_CHECK_SENTENCES]] if dev is not None else []
    missing = STRINGS_CHECK_SENTENCES - len(sentences)
    sentences += generated_sentences(tokenizer, missing, seed=0)
    specials = tuple(t.content for t in tokenizer.added_tokens_decoder.values())
    texts = [text for text, _ in probe_texts(sentences, None, config.max_length, specials)]
    agreement = check_offsets_model(with_ids, stage / source, tokenizer, texts, config.max_length, config.atol)
    given = STRINGS_CHECK_SENTENCES - max(missing, 0)
    agreement["source"] = ("dev sentences" if missing <= 0 else f"{given} dev and {missing} generated sentences"
                           if given else "generated sentences")  # fmt: skip
    return {"name": "strings", "file": layout.STRINGS, "from": source, "takes": "text", "tokenizer": "wordpiece",
            "inputs": ["text"], "outputs": list(OUTPUTS),
            "offsets": "offsets: code points (Python string indices); offsets_utf16: UTF-16 code units "
                       "(JavaScript, Java, NSString); [0, 0] for special tokens",
            "agreement": agreement}  # fmt: skip


def _calibration(tokenizer, data: DataSpec | None, labels: list[str], config: ExportConfig,
                 segments: bool) -> Calibration:  # fmt: skip
    """Training sentences (their tags unread) for the fixed-shape variant's static INT8, or generated
    ones when there is no training split."""
    from codir_edge.export.steps import generated_encoded

    if data is not None:
        try:
            train = read_tagged(data.data, "train").subsample(config.calibration_samples, 0)
        except InputError:
            pass
        else:
            encoded = encode_tagged(tokenizer, train, labels, config.max_length, segments, tagged=False).encoded
            return Calibration(encoded, "training sentences")
    return Calibration(generated_encoded(tokenizer, config.calibration_samples, config.max_length),
                       "generated sentences")  # fmt: skip


def _dev_scores(scores: ship.FileScores, stage: Path, dev_tok, config: ExportConfig) -> DevScores | None:
    """The fixed-shape variants scored as every variant is, by dev entity F1 against fp32's."""
    if scores.score is None:
        return None
    reference = scores.of(stage / layout.FP32)["f1"]
    return DevScores(scores.of, "f1", reference, dev_tok.encoded.lengths, config.max_accuracy_drop)


def _score(variants: list[dict], stage: Path, scores, config: ExportConfig) -> list[dict]:
    """Each variant's dev entity scores at batch 1 (a fixed-shape one at its shape, scored as it was
    made); a drop beyond ``--max-accuracy-drop`` F1 points fails, except that a fixed-shape variant
    ``--fixed-shape auto`` added is left out with a note (``fixed_variants.gate_variants``): returned."""
    for variant in variants:
        if "fixed_shape" not in variant:
            variant["accuracy"] = scores.of(stage / variant["file"])
    return gate_variants(variants, stage, "f1", config,
                         lambda name, config: "pass --quantize none, or allow a larger drop")  # fmt: skip


def _write_bundle(model_dir: Path, model, tokenizer, spec, config: ExportConfig, target: str, stage: Path,
                  variants: list[dict], parity: dict, fused_counts: dict, labels: list[str], command: str | None,
                  deployment: dict | None, tuning: dict | None,
                  left_out: list[dict]) -> tuple[list[dict], dict, dict]:  # fmt: skip
    """Runtime claims, the tokenizer and config.json beside the graphs, and the manifest with the labels
    and the variants ``left_out``."""
    from codir_edge.export.bundle import write_untuned_bundle

    extra = {"token_classification": {"labels": labels, "output": "logits", "aligned_by": "first piece of each word",
                                      "scheme": "IOB2"}}  # fmt: skip
    return write_untuned_bundle(stage, model_dir, model, tokenizer, spec, config, target, variants, parity,
                                fused_counts, NER_TASK, extra, command, deployment, tuning, left_out)  # fmt: skip
