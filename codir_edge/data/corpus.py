"""Unlabelled text for CoDIR-Pre: ``.txt`` (one text per line), ``.jsonl`` (a text field), or GLUE.

A GLUE task file or folder gives every text column it has (both sentences of a pair task, each on
its own: the student learns sentence representations, not pair encodings), with labels ignored;
the GLUE root gives every task under it. Exact duplicates are dropped (GLUE repeats many
sentences across pairs), since a sentence twice in the corpus would be its own negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.data.readers import _decode, _lines, read_file
from codir_edge.data.split import Columns
from codir_edge.data.tasks import TASKS, TaskSpec

CORPUS_FORMATS = (".txt", ".jsonl", ".tsv", ".csv")
_GLUE_FOLDERS = {task.folder: task for task in TASKS.values() if task.folder}


@dataclass(frozen=True)
class Corpus:
    texts: list[str]  # distinct, in the order first read
    files: list[str]  # every file read
    duplicates: int  # texts dropped because they repeat an earlier one

    def __len__(self) -> int:
        return len(self.texts)


def read_corpus(path: str | Path, text_field: str | None = None) -> Corpus:
    """Every distinct non-empty text under ``path``. ``text_field`` names the JSON field or CSV/TSV
    column of non-GLUE files (default ``text``)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"corpus {path} does not exist: pass a .txt or .jsonl file, or a GLUE folder")
    files = _corpus_files(path)
    seen: dict[str, None] = {}
    total = 0
    for file in files:
        for text in _read_texts(file, text_field):
            text = text.strip()
            if text:
                total += 1
                seen.setdefault(text, None)
    if not seen:
        raise InputError(f"corpus {path} holds no text: give a file with one text per line (or JSON record)")
    return Corpus(list(seen), [str(f) for f in files], total - len(seen))


def _corpus_files(path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix.lower() not in CORPUS_FORMATS:
            kinds = ", ".join(CORPUS_FORMATS)
            raise InputError(f"{path}: unsupported corpus file type '{path.suffix}': use one of {kinds}")
        return [path]
    if path.name in _GLUE_FOLDERS:
        return _glue_task_files(path, _GLUE_FOLDERS[path.name])
    tasks = [child for child in sorted(path.iterdir()) if child.is_dir() and child.name in _GLUE_FOLDERS]
    if tasks:  # the GLUE root
        return [file for child in tasks for file in _glue_task_files(child, _GLUE_FOLDERS[child.name])]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".txt", ".jsonl"))
    if not files:
        raise InputError(
            f"corpus folder {path} has no .txt or .jsonl files and is not a GLUE folder: "
            "pass a corpus file, a GLUE task folder or the GLUE root"
        )
    return files


def _glue_task_files(folder: Path, task: TaskSpec) -> list[Path]:
    files = [folder / name for name in dict.fromkeys(task.split_files.values()) if (folder / name).is_file()]
    if not files:
        names = ", ".join(dict.fromkeys(task.split_files.values()))
        raise InputError(f"GLUE folder {folder} has none of its files ({names}): point --data at a complete folder")
    return files


def _read_texts(file: Path, text_field: str | None) -> list[str]:
    suffix = file.suffix.lower()
    if suffix == ".txt":
        if not file.read_bytes().strip():  # _decode would ask for a header row, which a .txt never has
            raise InputError(f"corpus file {file} is empty: give one text per line")
        return _lines(_decode(file))
    task = _GLUE_FOLDERS.get(file.parent.name)
    if task is not None and suffix == ".tsv" and text_field is None:
        raw = read_file(file, Columns(task.text_column, task.text_pair_column, None))
        return raw.texts + (raw.text_pairs or [])
    column = text_field or "text"
    return read_file(file, Columns(int(column) if column.isdigit() else column, None, None)).texts
