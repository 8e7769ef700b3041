"""The inputs every device is fed: token ids written as ``.npy`` files once (the device needs no
tokenizer), and each target's accuracy on ``--data``, scored here once for all devices."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.core.inputs import REAL, real_batches, synthetic_token_ids
from codir_edge.data.embedding import is_embedding
from codir_edge.data.ner import is_ner
from codir_edge.data.split import RawSplit
from codir_edge.devices.session import Group, write_batches
from codir_edge.onnx.scoring import APP_BATCH
from codir_edge.profile.config import ProfileConfig
from codir_edge.profile.targets import Target, vocab_limit


def _target_tokenizer(target: Target):
    from codir_edge.data.fast_tokenizer import find_tokenizer

    tokenizer = find_tokenizer(target.folder)
    if tokenizer is None:
        raise InputError(
            f"real inputs and accuracy for {target.name} need tokenizer.json in {target.folder}: export the "
            "tokenizer beside the model, or use synthetic --seq-lens only"
        )
    return tokenizer


def run_worker(spec: str, what: str, module: str = "codir_edge.profile.torch_worker") -> dict:
    """A torch child process fed ``spec`` (JSON) on stdin; its one JSON answer, or one line naming ``what``."""
    done = subprocess.run([sys.executable, "-m", module], input=spec, capture_output=True, text=True)
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(
            f"measuring {what} crashed the worker (exit {done.returncode}: {tail}): "
            "check the model with codir-edge verify"
        ) from None
    if "error" in result:
        raise InputError(f"measuring {what} failed ({result['error']}): check the model and its inputs")
    return result


def _torch_accuracy(target: Target, config: ProfileConfig) -> dict[str, float]:
    """A PyTorch folder's task metric, scored in a child process (see ``torch_accuracy``)."""
    spec = {
        "model": str(target.path),
        "task": config.task,
        "data": asdict(config.data),
        "max_length": config.max_length,
        "max_samples": config.max_eval_samples,
    }
    return run_worker(json.dumps(spec), str(target.path), "codir_edge.profile.torch_accuracy")["metrics"]


def _accuracy(target: Target, raw: RawSplit, tokenizer, config: ProfileConfig, length: int) -> dict[str, float]:
    """The target's task metric on ``raw``, its texts cut at ``length`` tokens (as evaluate cuts them)."""
    if is_ner(config.task):  # raw is the dev split's tagged sentences, scored with the target's own labels
        from codir_edge.data.ner_encode import encode_tagged
        from codir_edge.models.tagger import tagger_folder_labels
        from codir_edge.onnx.tokens import score_tagger_onnx

        _, labels = tagger_folder_labels(target.folder, target.name, onnx=True)
        tokens = encode_tagged(tokenizer, raw, labels, length, segments=True)
        return score_tagger_onnx(target.path, tokens, raw, labels, max(config.threads), APP_BATCH)[0]
    if is_embedding(config.task):  # raw is the data's EmbeddingData: its texts and how they are scored
        from codir_edge.data.encode import encode
        from codir_edge.data.examples import Examples
        from codir_edge.onnx.embed import onnx_embeddings

        texts = Examples(raw.texts, None, [0] * len(raw.texts), config.data.data)
        encoded = encode(tokenizer, texts, length)
        return raw.score(onnx_embeddings(target.path, encoded, max(config.threads), APP_BATCH))
    from codir_edge.data import get_task
    from codir_edge.data.encode import encode
    from codir_edge.data.labels import to_examples
    from codir_edge.onnx.scoring import model_label_order, score_onnx

    task = get_task(config.task)
    examples = to_examples(raw, task, model_label_order(target.folder, task)).subsample(config.max_eval_samples, 0)
    encoded = encode(tokenizer, examples, length)  # a fixed-shape graph is fed padded to its shape
    return score_onnx(target.path, task, examples, encoded, max(config.threads), APP_BATCH).metrics


def read_dev_split(config: ProfileConfig) -> RawSplit | None:
    """The dev split's texts; for --task embedding, the data's EmbeddingData (texts and their scoring); for
    --task ner, its tagged sentences (texts: the words joined by spaces)."""
    if config.data is None:
        return None
    if is_embedding(config.task):
        from codir_edge.data.embedding import read_embedding_data

        return read_embedding_data(config.data, "dev", config.max_eval_samples, 0)
    if is_ner(config.task):
        from codir_edge.data.ner import read_tagged

        return read_tagged(config.data.data, "dev").subsample(config.max_eval_samples, 0)
    from codir_edge.data import get_task
    from codir_edge.data.readers import read_split

    task = get_task(config.task)
    return read_split(config.data.data, task, "dev", config.data.columns(task))


def prepare_inputs(targets: list[Target], configurations, raw, config: ProfileConfig, scratch: Path, accuracy: dict,
                   basis: dict):  # fmt: skip
    """Every target's inputs for every configuration as token-id ``.npy`` files (the device needs no
    tokenizer), and accuracy where --data is given, scored here once for all devices (``basis`` says
    what each figure was measured on). Every target is scored on --data, fixed-shape ones included:
    the figure a bundle recorded at export is only shown without --data, and labelled as recorded."""
    from codir_edge.bundle.manifest import exported_max_length

    inputs: dict[tuple[str, tuple], Group] = {}
    for target in targets:
        real_ids, pad_id = [], 0
        length = exported_max_length(target.folder) or config.max_length  # a bundle: where its apps cut
        if raw is not None:
            tokenizer = _target_tokenizer(target)
            real_ids = tokenizer(raw.texts, raw.text_pairs, truncation=True, max_length=length)["input_ids"]
            pad_id = tokenizer.pad_token_id or 0
        if raw is not None and target.kind == "onnx":
            accuracy[target.name] = _accuracy(target, raw, tokenizer, config, length)
            basis[target.name] = (f"measured on {config.data.data} dev, one text per call (batch {APP_BATCH}), "
                                  f"cut at {length} tokens")  # fmt: skip
        elif raw is not None and target.kind == "torch":
            accuracy[target.name] = _torch_accuracy(target, config)
            basis[target.name] = f"measured on {config.data.data} dev in PyTorch"
        elif target.accuracy:
            accuracy[target.name] = dict(target.accuracy)
            basis[target.name] = "recorded by export on its own dev data, not measured here (pass --data)"
        for _, batch_size, seq_len in configurations:
            if (target.name, (batch_size, seq_len)) in inputs:
                continue
            if seq_len == REAL:
                batches = real_batches(real_ids, batch_size, count=min(256, max(1, len(real_ids) // batch_size)))
            else:
                batches = [synthetic_token_ids(batch_size, seq_len, seed=0, vocab=vocab_limit(target))]
            if not batches:
                raise InputError(f"the dev split of {config.data.data} has no sentences: pass data with a dev split")
            inputs[(target.name, (batch_size, seq_len))] = write_batches(batches, pad_id, scratch)
    return inputs
