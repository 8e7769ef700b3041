"""What a WordPiece tokenizer does to text before WordPiece, read from its own normalizer and
pre-tokenizer code point by code point, as data the strings-in graph (``strings.py``) can hold."""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass

from codir_edge.core import disk_cache
from codir_edge.core.errors import InputError
from codir_edge.models.families import BYTE_BPE, SENTENCEPIECE, WORDPIECE

_LAST_CODE_POINT = 0x10FFFF


@dataclass(frozen=True)
class TextRules:
    """What the tokenizer does to text before WordPiece, as data the graph can hold."""

    removed: str  # RE2 character class: code points the normalizer drops
    spaces: str  # RE2 character class: code points that become a word boundary
    isolated: str  # RE2 character class: characters the pre-tokenizer makes words of their own
    mapping: dict[str, str]  # code point -> its normalized form, where they differ
    added: tuple[tuple[str, int], ...]  # added tokens matched in the raw text, longest first, with ids
    # added tokens saved with ``normalized: true`` (as MPNetTokenizerFast writes them): matched in the
    # normalized text, by their own normalized form ("[UNK]" as "[unk]" under a lower-casing normalizer)
    normalized_added: tuple[tuple[str, int], ...] = ()


# Stands in for a special token between its match in the raw text and WordPiece: a private-use code
# point, which the BERT normalizer removes from raw text, so no text can smuggle one in.
MARK = "\ue000"


def _char_class(code_points: list[int]) -> str:
    ranges: list[list[int]] = []
    for cp in code_points:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    body = "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return f"[{body}]" if body else r"[^\x{0}-\x{10FFFF}]"  # an empty class matches nothing


def wordpiece_backend(tokenizer) -> dict:
    """The fast tokenizer's pipeline, when it is the BERT one this graph reproduces; else an input error."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    described = json.loads(backend.to_str()) if backend is not None else {}
    model = described.get("model") or {}
    pre = described.get("pre_tokenizer") or {}
    if model.get("type") != "WordPiece" or pre.get("type") != "BertPreTokenizer":
        kind = model.get("type") or type(tokenizer).__name__
        raise InputError(
            f"--tokenizer-in-graph supports BERT WordPiece tokenizers, not {kind}: pass --no-tokenizer-in-graph"
        )
    if any("\t" in token or "\n" in token for token in tokenizer.get_vocab()):
        raise InputError("the vocabulary has tokens with tabs or newlines: pass --no-tokenizer-in-graph")
    for added in tokenizer.added_tokens_decoder.values():
        if added.single_word:
            raise InputError(
                f"added token {added.content!r} is matched as a single word only, which the graph does not "
                "reproduce: pass --no-tokenizer-in-graph"
            )
    return model


def graph_tokenizer_kind(tokenizer) -> str:
    """Which strings-in graph reproduces this tokenizer: WordPiece (BERT's pipeline, rebuilt from simple
    operators) or byte-level BPE (RoBERTa's: no normalizer, so onnxruntime-extensions' HfJsonTokenizer
    runs it as tokenizer.json says); anything else is an input error saying why."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    described = json.loads(backend.to_str()) if backend is not None else {}
    model, pre = described.get("model") or {}, described.get("pre_tokenizer") or {}
    if model.get("type") == "BPE" and pre.get("type") == "ByteLevel" and described.get("normalizer") is None:
        single = [t.content for t in tokenizer.added_tokens_decoder.values() if t.single_word]
        if single:
            raise InputError(f"added token {single[0]!r} matches single words only: pass --no-tokenizer-in-graph")
        return BYTE_BPE
    if model.get("type") == "WordPiece":
        wordpiece_backend(tokenizer)
        return WORDPIECE
    if model.get("type") == "Unigram":
        from codir_edge.export.strings.unigram import check_unigram

        check_unigram(tokenizer)
        return SENTENCEPIECE
    kind = model.get("type") or type(tokenizer).__name__
    if model.get("type") == "BPE":
        normalizer = (described.get("normalizer") or {}).get("type")
        kind = f"BPE with a {pre.get('type')} pre-tokenizer and a {normalizer} normalizer"
    raise InputError(
        f"--tokenizer-in-graph supports WordPiece (BERT), byte-level BPE (RoBERTa) and SentencePiece Unigram (XLM-R) "
        f"tokenizers, not {kind}: "
        "pass --no-tokenizer-in-graph"
    )


def strings_graph_wanted(asked: bool | None, cannot: str | None) -> bool:
    """Whether to build model.strings.onnx, given ``--tokenizer-in-graph`` (None: by default) and why the
    tokenizer cannot be put in the graph (None: it can). Asked for and impossible: one line; by default
    and impossible: skipped, with a note saying why."""
    from codir_edge.core.notes import note

    if asked and cannot:
        raise InputError(cannot)
    if asked is None and cannot:
        note(f"no model.strings.onnx: {cannot.split(': pass --no-tokenizer-in-graph')[0]}")
    return asked is not False and cannot is None


def unsupported_reason(tokenizer) -> str | None:
    """Why this tokenizer cannot be put in the graph, or None when it can."""
    from codir_edge.export.strings.template import read_template

    try:
        graph_tokenizer_kind(tokenizer)
        template = read_template(tokenizer)
    except InputError as exc:
        return str(exc)
    if not template.prefix and not template.single_suffix:
        return (
            "the tokenizer adds no special tokens, so an empty text would be an empty input, which the model "
            "cannot run: pass --no-tokenizer-in-graph"
        )
    return None


def text_rules(tokenizer, keep: frozenset[int] = frozenset()) -> TextRules:
    """Ask the tokenizer's normalizer and pre-tokenizer about every code point, so the graph does what
    this tokenizer does (cased or not, accents kept or not), not what BERT usually does. ``keep``: code
    points left out of the removed class, which the graph uses as markers of its own. The scan (2-3 s
    in batches, 8-10 s one code point at a time) depends only on those two and the tokenizers version:
    it is kept on disk (``core/disk_cache.py``), so a second export with the same tokenizer does not
    repeat it."""
    import tokenizers

    wordpiece_backend(tokenizer)
    normalizer = tokenizer.backend_tokenizer.normalizer
    normalize = normalizer.normalize_str if normalizer is not None else (lambda s: s)
    if normalize(MARK) != "":
        raise InputError("the tokenizer keeps private-use characters: pass --no-tokenizer-in-graph")
    described = json.loads(tokenizer.backend_tokenizer.to_str())
    pipeline = {"scan": "wordpiece code points", "format": 1, "tokenizers": tokenizers.__version__,
                "normalizer": described.get("normalizer"), "pre_tokenizer": described.get("pre_tokenizer")}  # fmt: skip
    scan = disk_cache.cached("tokenizer-scans", pipeline, lambda: _scan_code_points(tokenizer, pipeline["normalizer"]))
    removed, spaces, isolated, mapping = scan["removed"], scan["spaces"], scan["isolated"], scan["mapping"]
    tokens = tokenizer.added_tokens_decoder.items()
    added = sorted(((t.content, i) for i, t in tokens if not t.normalized), key=lambda a: -len(a[0]))
    normalized = [(normalize(t.content).strip(), i) for i, t in tokens if t.normalized]
    normalized = sorted(((content, i) for content, i in normalized if content), key=lambda a: -len(a[0]))
    removed = [cp for cp in removed if cp not in keep]
    return TextRules(_char_class(removed), _char_class(spaces), _char_class(isolated), mapping, tuple(added),
                     tuple(normalized))  # fmt: skip


def _scan_code_points(tokenizer, normalizer: dict | None) -> dict:
    """Every code point through the normalizer and pre-tokenizer: which are removed, which become a
    word boundary, which are words of their own, and what each is normalized to where it changes.
    Thousands at a time where the normalizer is known to act on each character alone (BERT's, and
    lower-casing, accent stripping and decomposition): one call per code point took 12 s of a first
    export, batches take a second or two; any other normalizer is asked one code point at a time.
    ``normalizer``: the normalizer as tokenizer.json describes it (text_rules has read it already)."""
    backend = tokenizer.backend_tokenizer
    normalize = backend.normalizer.normalize_str if backend.normalizer is not None else (lambda s: s)
    points = [cp for cp in range(_LAST_CODE_POINT + 1) if not 0xD800 <= cp <= 0xDFFF and cp != ord(MARK)]
    # (surrogates cannot occur in UTF-8 text; MARK is the graph's own)
    if acts_per_character(normalizer, normalize):
        return scan_batched(normalize, backend.pre_tokenizer, points)
    return scan_each(normalize, backend.pre_tokenizer, points)


# Normalizers whose output for a text is the concatenation of their outputs for its characters, when
# those are separated by a character they keep (decomposition reorders combining marks only up to the
# next starter, which the separator is); composition (NFC, NFKC), Replace, Strip and SentencePiece's
# Precompiled map can look across characters, and are asked one code point at a time.
_LOCAL_NORMALIZERS = frozenset({"BertNormalizer", "Lowercase", "StripAccents", "NFD", "NFKD"})
_SEPARATOR = "|"
_BATCH = 4096


def acts_per_character(described: dict | None, normalize) -> bool:
    """Whether the normalizer (as tokenizer.json describes it) is one ``scan_batched`` may ask in batches."""
    if described is None:
        return True
    if described.get("type") == "Sequence":
        return all(acts_per_character(n, normalize) for n in described.get("normalizers", []))
    return described.get("type") in _LOCAL_NORMALIZERS and normalize(_SEPARATOR) == _SEPARATOR


def scan_each(normalize, pre_tokenizer, points: list[int]) -> dict:
    """The scan, one code point per call: right for any normalizer."""
    anchor = normalize("a")
    removed, spaces, isolated, mapping = [], [], [], {}
    for cp in points:
        char = chr(cp)
        normal = normalize(char)
        if normal == "":
            removed.append(cp)
            continue
        if not pre_tokenizer.pre_tokenize_str(normal):
            spaces.append(cp)
            continue
        words = [w for w, _ in pre_tokenizer.pre_tokenize_str(normalize(f"a{char}a"))]
        if words == [anchor, normal.strip(), anchor]:
            isolated.append(cp)
        if normal.strip() != char:
            mapping[char] = normal.strip()
    return {"removed": removed, "spaces": spaces, "isolated": isolated, "mapping": mapping}


def scan_batched(normalize, pre_tokenizer, points: list[int]) -> dict:
    """``scan_each``'s result for a per-character normalizer (``acts_per_character``) and BERT's
    pre-tokenizer (which splits at whitespace and isolates punctuation, one character at a time):
    ``_BATCH`` code points per normalizer call, separated by ``_SEPARATOR``, and their "a{char}a" probes
    per pre-tokenizer call, separated by spaces and told apart by the words' offsets. A batch in which
    some character normalizes to text holding the separator is asked one code point at a time."""
    anchor = normalize("a")
    found: dict = {"removed": [], "spaces": [], "isolated": [], "mapping": {}}
    for start in range(0, len(points), _BATCH):
        batch = points[start : start + _BATCH]
        parts = normalize("".join(_SEPARATOR + chr(cp) for cp in batch)).split(_SEPARATOR)
        if len(parts) != len(batch) + 1 or parts[0]:
            part = scan_each(normalize, pre_tokenizer, batch)
        else:
            part = _probe_batch(list(zip(batch, parts[1:], strict=True)), anchor, pre_tokenizer)
        for key in ("removed", "spaces", "isolated"):
            found[key] += part[key]
        found["mapping"].update(part["mapping"])
    return found


def _probe_batch(normals: list[tuple[int, str]], anchor: str, pre_tokenizer) -> dict:
    """One batch's code points and their normal forms, sorted as ``scan_each`` sorts them.

    The normal forms are pre-tokenized in one text, each between two anchors ("a", as "a{char}a" probes
    one): BERT's pre-tokenizer decides each boundary from the two characters beside it, so a normal form
    that is a word of its own there (isolated) is one here, with the same span, and one that is only
    whitespace (a word boundary) overlaps no word. Those few candidates are asked again alone, exactly
    as ``scan_each`` asks, so the batch never decides on its own."""
    removed = [cp for cp, normal in normals if normal == ""]
    kept = [(cp, normal) for cp, normal in normals if normal != ""]
    starts, position = [], len(anchor)
    for _, normal in kept:
        starts.append(position)
        position += len(normal) + len(anchor)
    text = anchor + anchor.join(normal for _, normal in kept) + anchor
    words = pre_tokenizer.pre_tokenize_str(text)
    blank, alone = set(), set()
    gap_begin = 0
    for _, (begin, end) in [*words, ("", (len(text), len(text)))]:
        index = bisect.bisect_left(starts, gap_begin)  # the normal forms inside the gap before this word
        while index < len(kept) and starts[index] + len(kept[index][1]) <= begin:
            blank.add(index)
            index += 1
        gap_begin = end
        index = bisect.bisect_right(starts, begin) - 1  # the normal form this word starts in
        if index >= 0 and end > begin:
            normal = kept[index][1]
            lead, trail = len(normal) - len(normal.lstrip()), len(normal) - len(normal.rstrip())
            if (begin, end) == (starts[index] + lead, starts[index] + len(normal) - trail):
                alone.add(index)
    spaces, isolated, mapping = [], [], {}
    for index, (cp, normal) in enumerate(kept):
        if index in blank and not pre_tokenizer.pre_tokenize_str(normal):
            spaces.append(cp)
            continue
        if index in alone:
            probe = [w for w, _ in pre_tokenizer.pre_tokenize_str(anchor + normal + anchor)]
            if probe == [anchor, normal.strip(), anchor]:
                isolated.append(cp)
        if normal.strip() != chr(cp):
            mapping[chr(cp)] = normal.strip()
    return {"removed": removed, "spaces": spaces, "isolated": isolated, "mapping": mapping}
