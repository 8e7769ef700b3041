"""Sentence-embedding models as sentence-transformers saves them: read the head a folder declares,
write the same files beside a student, and pool token states the way that head does.

A sentence-transformers folder is a transformers model plus ``modules.json`` (Transformer, then
Pooling, then optionally Normalize) and the Pooling module's ``config.json``. Reading those files
ourselves, rather than loading sentence-transformers, keeps compress, evaluate and export on the one
model-loading path the rest of the tool uses, and lets a student be written that
``SentenceTransformer(folder)`` loads with no custom code. Heads the tool cannot reproduce (Dense
layers, weighted-mean or last-token pooling) are refused by name instead of silently dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.errors import InputError

POOLINGS = ("mean", "cls", "max")
MODULES = "modules.json"
_ST = "sentence_transformers.models."
_TRANSFORMER, _POOLING, _NORMALIZE = _ST + "Transformer", _ST + "Pooling", _ST + "Normalize"
# the Pooling config's mode keys; only one of ours may be on, every other one off
_MODE_KEYS = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens"}
_OTHER_MODES = ("pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")


@dataclass(frozen=True)
class SentenceHead:
    """How token states become one sentence embedding: the pooling, then (or not) unit length."""

    pooling: str
    normalize: bool

    def describe(self) -> str:
        return f"{self.pooling} pooling" + (", normalised" if self.normalize else "")


def read_sentence_head(folder: Path) -> SentenceHead | None:
    """The head a sentence-transformers folder declares, or None when it has no ``modules.json``.

    Raises InputError for a module list or pooling mode that cannot be reproduced (the one-line error
    names the file and the module), so an embedding is never computed differently from the teacher's.
    """
    path = Path(folder) / MODULES
    if not path.is_file():
        return None
    try:
        modules = json.loads(path.read_text())
        kinds = [m["type"] for m in modules]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a sentence-transformers module list ({exc}): re-save the model") from exc
    unknown = [k for k in kinds if k not in (_TRANSFORMER, _POOLING, _NORMALIZE)]
    if unknown or _POOLING not in kinds or kinds[0] != _TRANSFORMER:
        what = f"module {unknown[0]}" if unknown else "modules other than Transformer, Pooling[, Normalize]"
        raise InputError(
            f"{path} lists {what}: codir-edge reproduces Transformer, Pooling and Normalize only; "
            "give a model with that head, or its bare encoder with --pooling and --normalize"
        )
    if modules[0].get("path", "") not in ("", "."):
        raise InputError(f"{path} keeps its transformer in '{modules[0]['path']}': give that sub-folder's parent "
                         "re-saved with the transformer at the top (SentenceTransformer.save does this)")  # fmt: skip
    pooling_dir = Path(folder) / modules[kinds.index(_POOLING)].get("path", "1_Pooling")
    return SentenceHead(read_pooling(pooling_dir / "config.json"), _NORMALIZE in kinds)


def read_pooling(path: Path) -> str:
    """mean, cls or max from a Pooling module's config.json."""
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the pooling config {path} ({exc}): re-save the model") from exc
    on = [name for name, key in _MODE_KEYS.items() if config.get(key)]
    others = [key for key in _OTHER_MODES if config.get(key)]
    if config.get("pooling_mode") in POOLINGS and not on:  # the newer single-key form
        on = [config["pooling_mode"]]
    if others or len(on) != 1:
        found = ", ".join(others + on) or "no pooling mode"
        raise InputError(
            f"{path} sets {found}: codir-edge pools with exactly one of mean, cls or max tokens; "
            "re-save the model with one of them"
        )
    return on[0]


def write_sentence_head(folder: Path, head: SentenceHead, width: int, max_seq_length: int) -> None:
    """The files that make ``folder`` (a saved transformers model) a sentence-transformers model."""
    folder = Path(folder)
    modules = [{"idx": 0, "name": "0", "path": "", "type": _TRANSFORMER},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": _POOLING}]  # fmt: skip
    if head.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": _NORMALIZE})
        (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / MODULES).write_text(json.dumps(modules, indent=2) + "\n")
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pooling = {"word_embedding_dimension": width, **{key: name == head.pooling for name, key in _MODE_KEYS.items()}}
    pooling.update({key: False for key in _OTHER_MODES})
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n")
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}, indent=2) + "\n"
    )


def pool(hidden, attention_mask, pooling: str):
    """(B, d) float32 sentence embeddings of (B, T, d) token states, as sentence-transformers pools:
    padding never counts (mean over real tokens, max with padding at -1e9, cls the first token)."""
    import torch

    if pooling == "cls":
        return hidden[:, 0].float()
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    if pooling == "max":
        return torch.where(mask > 0, hidden, torch.full_like(hidden, -1e9)).max(dim=1).values.float()
    return (hidden.float() * mask.float()).sum(dim=1) / mask.float().sum(dim=1).clamp_min(1e-9)


def embed_output(hidden, attention_mask, head: SentenceHead):
    """The sentence embedding a model with ``head`` returns."""
    from torch.nn import functional as F

    pooled = pool(hidden, attention_mask, head.pooling)
    return F.normalize(pooled, dim=-1) if head.normalize else pooled
