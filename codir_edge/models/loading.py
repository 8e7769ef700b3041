"""Load tokenizers and sequence classifiers with transformers, safely and with errors users can act on.

Remote code stays off unless asked for, and weights load from safetensors (or ``torch.load`` with
``weights_only=True``, which transformers enforces for ``.bin`` files).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.core.notes import note
from codir_edge.models.hf_imports import prepare_transformers


def _quiet_transformers() -> None:
    """Call before importing transformers' model classes: they load without scikit-learn
    (``hf_imports``), and the 'newly initialized classifier' warning, expected when a backbone becomes a
    classifier, is not shown."""
    prepare_transformers()
    import transformers

    transformers.logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*were not initialized from the model checkpoint.*")


def _weights_error(model_dir: Path, exc: Exception) -> InputError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputError(f"cannot load the weights in {model_dir} ({first}): re-save the model or pick another")


def load_tokenizer(model_dir: Path, trust_remote_code: bool = False):
    """The folder's fast tokenizer; a slow-only folder is converted, a folder without one is refused."""
    prepare_transformers()
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), use_fast=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(
            f"{model_dir} has no usable tokenizer ({str(exc).splitlines()[0]}): "
            "save the tokenizer into the model folder with tokenizer.save_pretrained"
        ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(f"{model_dir} has only a slow tokenizer: add tokenizer.json (install tokenizers and re-save)")
    return tokenizer


def load_classifier(model_dir: Path, labels: list[str], regression: bool, trust_remote_code: bool = False, **kwargs):
    """A sequence classifier with the task's head: a backbone gets a new head, a classifier with
    another label count gets its head replaced (said in one ``note:`` line), a matching one is kept."""
    import torch

    _quiet_transformers()
    from transformers import AutoConfig, AutoModelForSequenceClassification

    num_labels = 1 if regression else len(labels)
    config = AutoConfig.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
    saved_outputs = getattr(config, "num_labels", num_labels)  # read before the task's labels overwrite it
    replaced_head = saved_outputs != num_labels and any(
        "SequenceClassification" in a for a in (config.architectures or [])
    )
    config.num_labels = num_labels
    config.problem_type = "regression" if regression else "single_label_classification"
    if not regression:
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir),
            config=config,
            ignore_mismatched_sizes=True,
            trust_remote_code=trust_remote_code,
            torch_dtype=torch.float32,
            **kwargs,
        )
    except Exception as exc:  # safetensors, torch and transformers each raise their own types for bad files
        raise _weights_error(model_dir, exc) from exc
    if replaced_head:
        note(f"{model_dir} has a {_outputs(saved_outputs)}; it is replaced by a new {_outputs(num_labels)} "
             "for the task")  # fmt: skip
    return model


def _outputs(count: int) -> str:
    return "regression head (1 output)" if count == 1 else f"{count}-way classification head"


def load_trained_classifier(model_dir: Path, trust_remote_code: bool = False, **kwargs):
    """A fine-tuned classifier exactly as saved (its head and labels are part of the artifact);
    ``kwargs`` go to ``from_pretrained`` (export asks for eager attention)."""
    import torch

    _quiet_transformers()
    from transformers import AutoModelForSequenceClassification

    try:
        return AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), trust_remote_code=trust_remote_code, torch_dtype=torch.float32, **kwargs
        )
    except Exception as exc:  # safetensors, torch and transformers each raise their own types for bad files
        raise _weights_error(model_dir, exc) from exc


def load_token_classifier(model_dir: Path, labels: list[str], trust_remote_code: bool = False):
    """A token classifier (``*ForTokenClassification``) with one output per label and ``id2label``
    written; a saved token classifier with other labels gets a new head, said in one ``note:`` line."""
    import torch

    _quiet_transformers()
    from transformers import AutoConfig, AutoModelForTokenClassification

    config = AutoConfig.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
    saved = dict(getattr(config, "id2label", {}) or {})
    was_tagger = any("TokenClassification" in a for a in (config.architectures or []))
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    try:
        model = AutoModelForTokenClassification.from_pretrained(
            str(model_dir), config=config, ignore_mismatched_sizes=True, trust_remote_code=trust_remote_code,
            torch_dtype=torch.float32,
        )  # fmt: skip
    except Exception as exc:  # safetensors, torch and transformers each raise their own types for bad files
        raise _weights_error(model_dir, exc) from exc
    if was_tagger and [saved.get(i, saved.get(str(i))) for i in range(len(saved))] != labels:
        note(f"{model_dir} tags {len(saved)} labels of its own; its head is replaced by a new one for "
             f"{len(labels)} labels")  # fmt: skip
    return model


def load_trained_token_classifier(model_dir: Path, trust_remote_code: bool = False, **kwargs):
    """A fine-tuned token classifier exactly as saved; a folder that is not one is refused."""
    import torch

    _quiet_transformers()
    from transformers import AutoConfig, AutoModelForTokenClassification

    config = AutoConfig.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
    if not any("TokenClassification" in a for a in (config.architectures or [])):
        raise InputError(f"{model_dir} is not a token classifier (architectures: {config.architectures}): "
                         "fine-tune one with finetune --task ner")  # fmt: skip
    try:
        return AutoModelForTokenClassification.from_pretrained(
            str(model_dir), trust_remote_code=trust_remote_code, torch_dtype=torch.float32, **kwargs
        )
    except Exception as exc:  # safetensors, torch and transformers each raise their own types for bad files
        raise _weights_error(model_dir, exc) from exc


def load_backbone(model_dir: Path, with_mlm_head: bool, trust_remote_code: bool = False):
    """A pretrained encoder as saved: with its masked-LM head (``AutoModelForMaskedLM``, which also
    reads ``*ForPreTraining`` checkpoints) or bare (``AutoModel``; a sentence-transformers folder
    such as all-MiniLM-L6-v2 is one)."""
    import torch

    _quiet_transformers()
    from transformers import AutoModel, AutoModelForMaskedLM

    auto = AutoModelForMaskedLM if with_mlm_head else AutoModel
    try:
        return auto.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code, torch_dtype=torch.float32)
    except Exception as exc:  # safetensors, torch and transformers each raise their own types for bad files
        raise _weights_error(model_dir, exc) from exc
