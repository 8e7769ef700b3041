"""``--task ner``'s data: word-tagged sentences read from CoNLL-style or jsonl files.

Two layouts are read, the two that token-classification data ships in:
- CoNLL: one word per line, whitespace-separated columns with the tag last, a blank line between
  sentences, ``-DOCSTART-`` lines skipped (CoNLL-2003's own layout, and what most taggers write);
- jsonl: one sentence per line, ``{"tokens": [...], "tags": [...]}`` (``ner_tags`` accepted), tags as
  names or as ids into ``--labels``: the layout of Hugging Face token-classification sets.

Tags are IOB2 (``B-`` opens every entity). A file whose entities mostly open with ``I-`` is IOB1
and is converted, with a note; in an IOB2 file an ``I-`` tag that opens an entity cannot be placed
and is refused with its file and line, as are a word with no tag and a tag outside ``--labels``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.core.notes import note

NER_TASK = "ner"
NER_ALIASES = ("ner", "token-classification", "token_classification", "tokenclassification")
NER_FORMATS = (".txt", ".conll", ".iob", ".bio", ".jsonl")
_SPLITS = {"train": ("train",), "dev": ("dev", "validation", "valid", "val", "testa"), "test": ("test", "testb")}


def is_ner(task: str | None) -> bool:
    """Whether ``--task`` names token classification (``ner`` or ``token-classification``)."""
    return (task or "").strip().lower() in NER_ALIASES


@dataclass(frozen=True)
class TaggedSplit:
    """Sentences as words and their IOB2 tags, with the line each sentence starts on (for errors)."""

    words: list[list[str]]
    tags: list[list[str]]
    lines: list[int]
    source: str

    text_pairs = None  # read like a split's texts (profile's real inputs): one sentence per row

    def __len__(self) -> int:
        return len(self.words)

    @property
    def texts(self) -> list[str]:
        """Each sentence as an app receives it: its words joined by single spaces."""
        return [" ".join(words) for words in self.words]

    def subsample(self, count: int | None, seed: int) -> TaggedSplit:
        """A seeded sample of ``count`` sentences in their file order (all of them when None)."""
        import numpy as np

        if count is None or count >= len(self):
            return self
        keep = np.sort(np.random.default_rng(seed).permutation(len(self))[:count])
        return TaggedSplit([self.words[i] for i in keep], [self.tags[i] for i in keep],
                           [self.lines[i] for i in keep], self.source)  # fmt: skip


def split_file(data: str | Path, split: str) -> Path:
    """The file holding ``split``: ``data`` itself when it is a file, else ``<split>.<ext>`` in the folder."""
    path = Path(data)
    if path.is_file():
        return path
    if not path.is_dir():
        raise InputError(f"--data {data} does not exist: give a CoNLL or jsonl file, or a folder of them")
    for stem in _SPLITS.get(split, (split,)):
        for suffix in NER_FORMATS:
            if (path / f"{stem}{suffix}").is_file():
                return path / f"{stem}{suffix}"
    names = ", ".join(f"{s}{{{','.join(NER_FORMATS)}}}" for s in _SPLITS.get(split, (split,))[:2])
    raise InputError(f"{path} has no {split} file ({names}): add one, or pass the file itself")


def read_tagged(data: str | Path, split: str, labels: list[str] | None = None) -> TaggedSplit:
    """One split's sentences, tags checked against ``labels`` when given and converted to IOB2."""
    path = split_file(data, split)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (bad byte at offset {exc.start}): re-save it as UTF-8") from exc
    except OSError as exc:
        raise InputError(f"cannot read {path} ({exc.strerror}): check the path and its permissions") from exc
    read = _read_jsonl if path.suffix == ".jsonl" else _read_conll
    words, tags, lines = read(path, text, labels)
    if not words:
        raise InputError(f"{path} holds no tagged sentences: give one 'word TAG' per line, a blank line between "
                         "sentences (or jsonl with tokens and tags)")  # fmt: skip
    tags = _to_iob2(path, tags, lines)
    if labels is not None:
        _check_known(path, tags, lines, labels)
    return TaggedSplit(words, tags, lines, str(path))


def _read_conll(path: Path, text: str, labels: list[str] | None) -> tuple[list, list, list]:  # noqa: ARG001
    words: list[list[str]] = []
    tags: list[list[str]] = []
    lines: list[int] = []
    current: tuple[list[str], list[str]] = ([], [])
    for number, line in enumerate(text.splitlines(), start=1):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            if current[0]:
                words.append(current[0])
                tags.append(current[1])
                current = ([], [])
            continue
        if len(columns) < 2:
            raise InputError(f"{path}:{number}: '{line.strip()}' has no tag: each line is 'word TAG' (the tag "
                             "last, separated by whitespace), a blank line between sentences")  # fmt: skip
        if not current[0]:
            lines.append(number)
        current[0].append(columns[0])
        current[1].append(columns[-1])
    if current[0]:
        words.append(current[0])
        tags.append(current[1])
    return words, tags, lines


def _read_jsonl(path: Path, text: str, labels: list[str] | None) -> tuple[list, list, list]:
    words, tags, lines = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not valid JSON ({exc.msg}): one object per line") from None
        tokens = row.get("tokens") if isinstance(row, dict) else None
        tagged = next((row[k] for k in ("tags", "ner_tags", "labels") if k in row), None) if tokens else None
        if not isinstance(tokens, list) or not isinstance(tagged, list):
            raise InputError(f"{path}:{number}: expected an object with 'tokens' and 'tags' lists "
                             "(ner_tags accepted): fix the line")  # fmt: skip
        if len(tokens) != len(tagged):
            raise InputError(f"{path}:{number}: {len(tokens)} tokens but {len(tagged)} tags: give one tag per token")
        words.append([str(t) for t in tokens])
        tags.append([_tag_name(path, number, t, labels) for t in tagged])
        lines.append(number)
    return words, tags, lines


def _tag_name(path: Path, number: int, tag, labels: list[str] | None) -> str:
    if isinstance(tag, bool) or not isinstance(tag, int | str):
        raise InputError(f"{path}:{number}: tag {tag!r} is neither a name nor an id: use strings or integers")
    if isinstance(tag, str):
        return tag
    if labels is None:
        raise InputError(f"{path}:{number}: tags are ids, so the names are needed: pass --labels in id order "
                         "(e.g. O,B-PER,I-PER,...)")  # fmt: skip
    if not 0 <= tag < len(labels):
        raise InputError(f"{path}:{number}: tag id {tag} is outside --labels ({len(labels)} names): fix the id "
                         "or --labels")  # fmt: skip
    return labels[tag]


def _entity(tag: str) -> tuple[str, str]:
    """('B'|'I'|'O', type)."""
    if tag == "O":
        return "O", ""
    prefix, _, kind = tag.partition("-")
    return (prefix, kind) if prefix in ("B", "I") and kind else ("?", tag)


def _to_iob2(path: Path, tags: list[list[str]], lines: list[int]) -> list[list[str]]:
    """IOB2 tags: IOB1 files (entities opened by ``I-``) converted with a note; a stray ``I-`` refused."""
    opened_by_i, opened_by_b, first_stray = 0, 0, None
    for sentence, (row, start) in enumerate(zip(tags, lines, strict=True)):
        previous = "O"
        for offset, tag in enumerate(row):
            prefix, kind = _entity(tag)
            if prefix == "?":
                line = start + offset if path.suffix != ".jsonl" else start
                raise InputError(f"{path}:{line}: tag '{tag}' is not IOB (O, B-TYPE or I-TYPE): fix it; other "
                                 "schemes (BIOES, BILOU) are not read")  # fmt: skip
            if prefix == "B":
                opened_by_b += 1
            elif prefix == "I" and _entity(previous)[1] != kind:
                opened_by_i += 1
                if first_stray is None:
                    first_stray = (sentence, offset, tag, previous)
            previous = tag
    if first_stray is None:
        return tags
    if opened_by_i > opened_by_b:
        note(f"{path} is tagged IOB1 (entities open with I-): converted to IOB2")
        return [_iob1_to_iob2(row) for row in tags]
    sentence, offset, tag, previous = first_stray
    line = lines[sentence] + offset if path.suffix != ".jsonl" else lines[sentence]
    raise InputError(f"{path}:{line}: '{tag}' follows '{previous}', so it opens an entity, which IOB2 does with "
                     f"B-: fix the tag to B-{_entity(tag)[1]}")  # fmt: skip


def _iob1_to_iob2(row: list[str]) -> list[str]:
    out, previous = [], "O"
    for tag in row:
        prefix, kind = _entity(tag)
        out.append(f"B-{kind}" if prefix == "I" and _entity(previous)[1] != kind else tag)
        previous = tag
    return out


def _check_known(path: Path, tags: list[list[str]], lines: list[int], labels: list[str]) -> None:
    known = set(labels)
    for row, start in zip(tags, lines, strict=True):
        for offset, tag in enumerate(row):
            if tag not in known:
                line = start + offset if path.suffix != ".jsonl" else start
                raise InputError(f"{path}:{line}: tag '{tag}' is not among the labels ({', '.join(labels)}): "
                                 "fix the tag, or give --labels with it")  # fmt: skip


def label_list(split: TaggedSplit, given: list[str] | None = None) -> list[str]:
    """``--labels`` as given (checked to hold O and IOB names), else O first then B-/I- by entity type."""
    if given:
        for name in given:
            if _entity(name)[0] == "?":
                raise InputError(f"--labels holds '{name}', which is not IOB (O, B-TYPE or I-TYPE): fix --labels")
        if "O" not in given:
            raise InputError("--labels has no 'O' (outside any entity): add it")
        return list(given)
    kinds = sorted({_entity(tag)[1] for row in split.tags for tag in row} - {""})
    return ["O", *[f"{p}-{k}" for k in kinds for p in ("B", "I")]]


def load_tagged_train_dev(data: str, eval_data: str | None, given: list[str] | None,
                          max_train: int | None = None, max_eval: int | None = None,
                          seed: int = 0) -> tuple[TaggedSplit, TaggedSplit, list[str]]:  # fmt: skip
    """Train and dev sentences and the label list (``--labels``, else the train split's tags)."""
    if eval_data is None and Path(data).is_file():
        raise InputError(f"--data {data} is a single file, so there is no dev split: pass --eval-data with the dev "
                         "file or a folder holding train and dev files")  # fmt: skip
    train = read_tagged(data, "train", given)
    labels = label_list(train, given)
    dev = read_tagged(eval_data or data, "dev", labels)
    return train.subsample(max_train, seed), dev.subsample(max_eval, seed), labels
