"""What a WordPiece tokenizer does to text before WordPiece, read from its own normalizer and
pre-tokenizer code point by code point, as data the strings-in graph (``strings.py``) can hold."""

from __future__ import annotations

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
    points left out of the removed class, which the graph uses as markers of its own. The scan
    (about 10 s) depends only on those two and the tokenizers version: it is kept on disk
    (``core/disk_cache.py``), so a second export with the same tokenizer does not repeat it."""
    import tokenizers

    wordpiece_backend(tokenizer)
    normalizer = tokenizer.backend_tokenizer.normalizer
    normalize = normalizer.normalize_str if normalizer is not None else (lambda s: s)
    if normalize(MARK) != "":
        raise InputError("the tokenizer keeps private-use characters: pass --no-tokenizer-in-graph")
    described = json.loads(tokenizer.backend_tokenizer.to_str())
    pipeline = {"scan": "wordpiece code points", "format": 1, "tokenizers": tokenizers.__version__,
                "normalizer": described.get("normalizer"), "pre_tokenizer": described.get("pre_tokenizer")}  # fmt: skip
    scan = disk_cache.cached("tokenizer-scans", pipeline, lambda: _scan_code_points(tokenizer))
    removed, spaces, isolated, mapping = scan["removed"], scan["spaces"], scan["isolated"], scan["mapping"]
    tokens = tokenizer.added_tokens_decoder.items()
    added = sorted(((t.content, i) for i, t in tokens if not t.normalized), key=lambda a: -len(a[0]))
    normalized = [(normalize(t.content).strip(), i) for i, t in tokens if t.normalized]
    normalized = sorted(((content, i) for content, i in normalized if content), key=lambda a: -len(a[0]))
    removed = [cp for cp in removed if cp not in keep]
    return TextRules(_char_class(removed), _char_class(spaces), _char_class(isolated), mapping, tuple(added),
                     tuple(normalized))  # fmt: skip


def _scan_code_points(tokenizer) -> dict:
    """Every code point through the normalizer and pre-tokenizer: which are removed, which become a
    word boundary, which are words of their own, and what each is normalized to where it changes."""
    normalizer = tokenizer.backend_tokenizer.normalizer
    pre_tokenizer = tokenizer.backend_tokenizer.pre_tokenizer
    normalize = normalizer.normalize_str if normalizer is not None else (lambda s: s)
    anchor = normalize("a")
    removed, spaces, isolated, mapping = [], [], [], {}
    for cp in range(_LAST_CODE_POINT + 1):
        if 0xD800 <= cp <= 0xDFFF or cp == ord(MARK):  # surrogates cannot occur in UTF-8 text
            continue
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
