"""Read a split from GLUE TSV files, custom CSV/TSV/JSONL files, or Hugging Face datasets.

GLUE's files are not CSV: quotes are literal text (``"`` starts many MRPC sentences), MRPC starts
with a UTF-8 byte-order mark, and CoLA has no header. So TSV is split on tabs by hand, never with a
quoting parser. Every error names the file, the line where there is one, and what to do.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.data.split import Columns, RawSplit
from codir_edge.data.tasks import Column, TaskSpec

FILE_FORMATS = (".tsv", ".csv", ".jsonl")
HUB_PREFIX = "hf:"
_SPLIT_ALIASES = {"dev": ("dev", "validation", "valid", "val"), "train": ("train",), "test": ("test",)}


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except IsADirectoryError as exc:
        raise InputError(f"{path} is a folder, expected a data file: pass the file or its folder") from exc
    except OSError as exc:
        raise InputError(f"cannot read {path} ({exc.strerror}): check the path and its permissions") from exc
    if not data.strip():
        raise InputError(f"{path} is empty: give a file with a header row and examples")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (bad byte at offset {exc.start}): re-save it as UTF-8") from exc


def _column_index(path: Path, header: list[str] | None, column: Column, role: str) -> int:
    if isinstance(column, int):
        return column
    if header is None:
        raise InputError(f"{path} has no header row, so the {role} column must be a number, not '{column}'")
    if column not in header:
        raise InputError(
            f"{path} has no column '{column}' for the {role} (columns: {', '.join(header)}): "
            f"pass --{role.replace(' ', '-')}-column with one of them"
        )
    return header.index(column)


def _rows_from_table(path: Path, rows: list[tuple[int, list[str]]], columns: Columns) -> RawSplit:
    has_header = not isinstance(columns.text, int)
    header = None
    if has_header:
        if not rows:
            raise InputError(f"{path} is empty: give a file with a header row and examples")
        header = [h.strip() for h in rows[0][1]]
        rows = rows[1:]
    roles = {"text": columns.text, "text pair": columns.text_pair, "label": columns.label}
    index = {role: _column_index(path, header, col, role) for role, col in roles.items() if col is not None}
    need = max(index.values()) + 1
    texts, pairs, labels, lines = [], [], [], []
    for line_no, fields in rows:
        if len(fields) < need:
            raise InputError(
                f"{path} line {line_no}: {len(fields)} fields where at least {need} are needed: "
                "fix the row (fields are tab- or comma-separated as the extension says)"
            )
        texts.append(fields[index["text"]])
        if "text pair" in index:
            pairs.append(fields[index["text pair"]])
        if "label" in index:
            labels.append(fields[index["label"]].strip())
        lines.append(line_no)
    if not texts:
        raise InputError(f"{path} has a header but no examples: add rows to it")
    return RawSplit(
        texts, pairs if "text pair" in index else None, labels if "label" in index else None, lines, str(path)
    )


def _lines(text: str) -> list[str]:
    """Split on newlines only. ``str.splitlines`` also splits on U+2028, U+0085 and the ASCII
    separators, which are legal inside a sentence and inside a JSON string."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def _read_tsv(path: Path, columns: Columns) -> RawSplit:
    rows = [(no, line.split("\t")) for no, line in enumerate(_lines(_decode(path)), start=1) if line.strip()]
    return _rows_from_table(path, rows, columns)


def _read_csv(path: Path, columns: Columns) -> RawSplit:
    reader = csv.reader(io.StringIO(_decode(path)))
    try:
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise InputError(f"{path} line {reader.line_num}: malformed CSV ({exc}): fix the quoting") from exc
    return _rows_from_table(path, rows, columns)


def _read_jsonl(path: Path, columns: Columns) -> RawSplit:
    texts, pairs, labels, lines = [], [], [], []
    for no, line in enumerate(_lines(_decode(path)), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} line {no}: not valid JSON ({exc.msg}): one JSON object per line") from exc
        if not isinstance(record, dict):
            raise InputError(f"{path} line {no}: expected a JSON object, found {type(record).__name__}")
        for role, key in (("text", columns.text), ("text pair", columns.text_pair), ("label", columns.label)):
            if key is not None and str(key) not in record:
                raise InputError(
                    f"{path} line {no}: no field '{key}' for the {role} (fields: {', '.join(record)}): "
                    f"pass --{role.replace(' ', '-')}-column with the right name"
                )
        text = record[str(columns.text)]
        if not isinstance(text, str):
            raise InputError(f"{path} line {no}: field '{columns.text}' must be a string, found {text!r}")
        texts.append(text)
        if columns.text_pair is not None:
            pairs.append(str(record[str(columns.text_pair)]))
        if columns.label is not None:
            labels.append(str(record[str(columns.label)]).strip())
        lines.append(no)
    if not texts:
        raise InputError(f"{path} holds no JSON records: give one JSON object per line")
    return RawSplit(
        texts,
        pairs if columns.text_pair is not None else None,
        labels if columns.label is not None else None,
        lines,
        str(path),
    )


def read_file(path: Path, columns: Columns) -> RawSplit:
    """Read one data file by its extension."""
    readers = {".tsv": _read_tsv, ".csv": _read_csv, ".jsonl": _read_jsonl}
    suffix = path.suffix.lower()
    if suffix not in readers:
        raise InputError(f"{path}: unsupported data file type '{suffix}': use one of {', '.join(FILE_FORMATS)}")
    if not path.exists():
        raise InputError(f"data file {path} does not exist: check the path")
    return readers[suffix](path, columns)


def split_file(folder: Path, task: TaskSpec, split: str) -> Path:
    """The file of ``split`` inside a data folder: GLUE's own name first, then ``<split>.<ext>``."""
    candidates = []
    if task.is_glue and split in task.split_files:
        candidates.append(folder / task.split_files[split])
    for alias in _SPLIT_ALIASES.get(split, (split,)):
        candidates += [folder / f"{alias}{ext}" for ext in FILE_FORMATS]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    names = ", ".join(dict.fromkeys(c.name for c in candidates))
    raise InputError(f"no {split} split in {folder} (looked for {names}): point --data at the right folder")


def read_split(data: str | Path, task: TaskSpec, split: str, columns: Columns) -> RawSplit:
    """Read ``split`` from a data folder, a single data file, a saved dataset or ``hf:NAME[:CONFIG]``."""
    text = str(data)
    if text.startswith(HUB_PREFIX):
        from codir_edge.data.hub import read_hub_split

        return read_hub_split(text[len(HUB_PREFIX) :], task, split, columns)
    path = Path(data).expanduser()
    if not path.exists():
        raise InputError(f"data path {path} does not exist: pass a data folder, a .tsv/.csv/.jsonl file or hf:NAME")
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            from codir_edge.data.hub import read_saved_split

            return read_saved_split(path, task, split, columns)
        if task.is_glue and not any(path.iterdir()):
            raise InputError(f"data folder {path} is empty: put the {task.folder} train.tsv and dev.tsv files in it")
        glue_child = path / task.folder if task.is_glue else None
        if glue_child is not None and glue_child.is_dir():
            path = glue_child  # accept the GLUE root (../shared/data/glue) as well as the task folder
        return read_file(split_file(path, task, split), columns)
    return read_file(path, columns)
