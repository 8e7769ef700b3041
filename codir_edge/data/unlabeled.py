"""Unlabelled in-domain text for CoDIR-Fine's transfer set: read it, and keep out what must not be in it.

Users bring production logs, reviews or tickets as a ``.txt`` (one text per line), a ``.jsonl`` (the
``--text-column`` field, default ``text``, and for pair tasks ``--text-pair-column``, default
``text_pair``), a ``.tsv``/``.csv`` with the task's columns, or a data
folder whose train split is read with its labels ignored. Pair tasks need both texts, so a ``.txt``
cannot serve them.

A text that is also a labelled training sentence would be trained on twice, and one that is also a
dev sentence would leak the dev set into training through the teacher's predictions. Both are
dropped, as are repeats inside the file, and each kind is counted for the report. Texts are
compared after collapsing whitespace and case-folding, so "Great  movie" and "great movie" are one
text, as an uncased teacher sees them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.data.examples import Examples
from codir_edge.data.readers import FILE_FORMATS, _decode, _lines, read_file, read_split
from codir_edge.data.split import Columns
from codir_edge.data.tasks import TaskSpec

UNLABELED_FORMATS = (".txt", *FILE_FORMATS)
_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class Unlabeled:
    """The texts kept (as Examples with placeholder targets) and what was dropped, by reason."""

    examples: Examples
    read: int  # non-empty texts in the source
    repeats: int  # dropped: the same text earlier in the source
    labeled: int  # dropped: a labelled training example
    dev: int  # dropped: a dev example (would leak it)

    def counts(self) -> dict:
        return {"read": self.read, "kept": len(self.examples), "dropped_repeats": self.repeats,
                "dropped_labeled": self.labeled, "dropped_dev": self.dev}  # fmt: skip


def text_key(text: str, pair: str | None = None) -> tuple[str, str | None]:
    """What makes two examples the same text: whitespace collapsed and case folded."""
    return " ".join(text.split()).casefold(), None if pair is None else " ".join(pair.split()).casefold()


def example_keys(examples: Examples) -> set[tuple[str, str | None]]:
    pairs = examples.text_pairs if examples.text_pairs is not None else [None] * len(examples)
    return {text_key(t, p) for t, p in zip(examples.texts, pairs, strict=True)}


def read_unlabeled(path: str | Path, task: TaskSpec, text_column: str | None = None,
                   text_pair_column: str | None = None) -> tuple[list[str], list[str] | None]:  # fmt: skip
    """(texts, pairs or None) from ``path``, blank rows skipped; one-line errors for what cannot serve."""
    path = Path(path).expanduser()
    pair_task = task.text_pair_column is not None or text_pair_column is not None
    if not path.exists():
        raise InputError(f"--unlabeled {path} does not exist: pass a .txt, a .jsonl or a data folder")
    if path.is_file():
        _check_text_file(path)
        suffix = path.suffix.lower()
        if suffix == ".txt":
            if pair_task:
                raise InputError(
                    f"--unlabeled {path} is a .txt (one text per line) but task {task.name} reads text pairs: "
                    "give a .jsonl or .tsv with both texts"
                )
            texts, pairs = _lines(_decode(path)), None
        elif suffix == ".jsonl":
            pair = text_pair_column or ("text_pair" if pair_task else None)  # the tokenizers' own names
            columns = Columns(text_column or "text", pair, None)
            raw = read_file(path, columns)
            texts, pairs = raw.texts, raw.text_pairs
        elif suffix in FILE_FORMATS:
            raw = read_file(path, Columns.for_task(task, text_column, text_pair_column, None))
            texts, pairs = raw.texts, raw.text_pairs
        else:
            kinds = ", ".join(UNLABELED_FORMATS)
            raise InputError(f"--unlabeled {path}: unsupported file type '{path.suffix}': use one of {kinds}")
    else:
        raw = read_split(path, task, "train", Columns.for_task(task, text_column, text_pair_column, None))
        texts, pairs = raw.texts, raw.text_pairs
    rows = [(t, p) for t, p in zip(texts, pairs or [None] * len(texts), strict=True) if t.strip()]
    if not rows:
        raise InputError(f"--unlabeled {path} holds no text: give one text per line (or JSON record)")
    return [t for t, _ in rows], None if pairs is None else [p for _, p in rows]


def _check_text_file(path: Path) -> None:
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if not head.strip():
        raise InputError(f"--unlabeled {path} is empty: give one text per line")
    if b"\x00" in head:
        raise InputError(f"--unlabeled {path} is a binary file, not text: give a UTF-8 .txt or .jsonl")


def keep_new(texts: list[str], pairs: list[str] | None, labeled: Iterable[tuple], dev: Iterable[tuple],
             source: str) -> Unlabeled:  # fmt: skip
    """The texts that are neither repeats nor labelled nor dev examples, in source order."""
    labeled, dev = set(labeled), set(dev)
    seen: set[tuple] = set()
    kept_texts, kept_pairs = [], []
    repeats = in_labeled = in_dev = 0
    for i, text in enumerate(texts):
        pair = pairs[i] if pairs is not None else None
        key = text_key(text, pair)
        if key in dev:  # checked first: a leak is what a user most needs counted
            in_dev += 1
        elif key in labeled:
            in_labeled += 1
        elif key in seen:
            repeats += 1
        else:
            seen.add(key)
            kept_texts.append(text)
            kept_pairs.append(pair)
    examples = Examples(kept_texts, kept_pairs if pairs is not None else None, [-1] * len(kept_texts), source)
    return Unlabeled(examples, len(texts), repeats, in_labeled, in_dev)
