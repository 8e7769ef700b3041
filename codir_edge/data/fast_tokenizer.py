"""A tokenizer that needs only the ``tokenizers`` package (a small Rust wheel, no torch, no
transformers), so that real-sentence inputs and accuracy checks work on a device.

It reads the ``tokenizer.json`` that ``save_pretrained`` writes and answers the same call as a
transformers fast tokenizer, so :func:`codir_edge.data.encode.encode` serves both.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from codir_edge.core.errors import InputError


class JsonTokenizer:
    """``tokenizer(texts, pairs, truncation=True, max_length=N)`` over a ``tokenizer.json``."""

    def __init__(self, path: Path):
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise InputError("real-text inputs need the 'tokenizers' package: pip install tokenizers") from exc
        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises a bare Exception for a bad file
            raise InputError(f"{path} is not a readable tokenizer.json ({exc}): re-save the tokenizer") from exc
        self._tokenizer.no_padding()
        self.pad_token_id = self._pad_id(path)

    def _pad_id(self, path: Path) -> int:
        config = path.with_name("tokenizer_config.json")
        token = "[PAD]"
        if config.is_file():
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                token = json.loads(config.read_text(encoding="utf-8")).get("pad_token") or token
            token = token.get("content", "[PAD]") if isinstance(token, dict) else token
        found = self._tokenizer.token_to_id(str(token))
        return int(found) if found is not None else 0

    def __call__(self, texts, pairs=None, truncation=True, max_length=512, **_ignored) -> dict:
        if truncation:
            self._tokenizer.enable_truncation(max_length, strategy="longest_first")
        else:  # the setting is the Rust tokenizer's state: a call without truncation must clear it
            self._tokenizer.no_truncation()
        if isinstance(texts, str):
            raise TypeError("JsonTokenizer takes a list of texts, not one string")
        batch = list(zip(texts, pairs, strict=True)) if pairs is not None else list(texts)
        encodings = self._tokenizer.encode_batch(batch)
        return {"input_ids": [e.ids for e in encodings], "token_type_ids": [e.type_ids for e in encodings],
                "offset_mapping": [e.offsets for e in encodings]}  # fmt: skip


def find_tokenizer(folder: Path) -> JsonTokenizer | None:
    path = Path(folder) / "tokenizer.json"
    return JsonTokenizer(path) if path.is_file() else None
