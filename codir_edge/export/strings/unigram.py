"""Strings in for SentencePiece (Unigram) tokenizers: XLM-R, CamemBERT, ALBERT, DeBERTa-v3.

onnxruntime-extensions' ``HfJsonTokenizer`` runs the Unigram model of tokenizer.json, but measured here
(0.15) it ignores the normalizer (NFKC, Nmt, Strip, Replace: "x\\ty", no-break spaces, ligatures and
full-width text disagree), collapses runs of spaces, drops trailing ones, and prefixes "▁" only to the
whole text, where Hugging Face's Metaspace prefixes every piece between special tokens. So the graph
does all of that itself, with rules read from the tokenizer, and leaves the op only Viterbi over pieces:

1. special tokens typed into the text become marker code points (noncharacters U+FDD0..), so nothing
   normalizes them, and the text's own noncharacters are dropped;
2. the normalizer's steps in order: ``Replace`` as a regex, ``Strip`` at the text's and each special
   token's edges, and each run of per-character normalizers (NFKC, Nmt, Lowercase, StripAccents,
   Precompiled...) as a table read from the normalizer code point by code point, after a table of the
   decomposed sequences they compose (``e`` + U+0301 to ``é``);
3. Metaspace: spaces become "▁", and "▁" starts every piece that does not start with one;
4. markers back to their tokens, then the op (which adds the first "▁" itself, so the graph removes
   one, and removes the op's lone "▁" when the text starts with a special token).

Known gaps, besides NUL (as for every strings-in graph): noncharacters U+FDD0..U+FDEF are dropped, and
a combining mark after a character that is itself rewritten (a full-width letter, a ligature) is not
composed with it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from codir_edge.core.errors import InputError
from codir_edge.export.strings.graph import CONTRIB, WHITE_SPACE, Graph, map_code_points, strip_beside_added

_NO_GRAPH = "pass --no-tokenizer-in-graph"
_LAST_CODE_POINT = 0x10FFFF
MARKERS = range(0xFDD0, 0xFDEF)  # noncharacters: never in text people write
FENCE = "\ufdef"  # the last one: a piece of its own in the op's model, whose id is removed afterwards
_CHAR_LEVEL = {"NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents", "Nmt", "Precompiled"}
_SPACE = "▁"


@dataclass(frozen=True)
class UnigramRules:
    """What the graph does before the op, as data: ``steps`` in the normalizer's order, each
    ("replace", RE2 pattern, content), ("strip", left, right) or ("map", sequences, code points)."""

    steps: tuple
    specials: tuple[str, ...]  # added tokens, longest first; marker k stands for specials[k]
    # per special: None when it is matched in the raw text; else (its normalized form, lstrip, rstrip):
    # matched after the normalizer, as tokenizers matches an added token saved ``normalized: true``
    normalized: tuple[tuple[str, bool, bool] | None, ...]
    prepend_every_piece: bool  # Metaspace's prepend_scheme: "always" (True) or "first"
    spm_model: bytes  # the pieces as a sentencepiece model, for the op
    unknown: str | None  # the unknown piece, when it is also an added token ("<unk>" typed in the text)
    fence_id: int  # the id of FENCE in spm_model


def _normalizer_steps(described: dict) -> list[dict]:
    normalizer = described.get("normalizer")
    if normalizer is None:
        return []
    return list(normalizer["normalizers"]) if normalizer.get("type") == "Sequence" else [normalizer]


def _char_tables(described: dict, run: list[dict]) -> tuple[dict[str, str], dict[str, str]]:
    """(decomposed sequences -> composed, code point -> normalized) for a run of per-character
    normalizers, asked of tokenizers itself. The scan depends only on the run and the tokenizers
    version: it is kept on disk (``core/disk_cache.py``) for the next export with the same normalizer."""
    import tokenizers

    from codir_edge.core import disk_cache

    pipeline = {"scan": "unigram char tables", "format": 1, "tokenizers": tokenizers.__version__, "run": run}
    tables = disk_cache.cached("tokenizer-scans", pipeline, lambda: list(_scan_char_tables(described, run)))
    return tables[0], tables[1]


def _scan_char_tables(described: dict, run: list[dict]) -> tuple[dict[str, str], dict[str, str]]:
    from tokenizers import Tokenizer

    probe = dict(described, normalizer={"type": "Sequence", "normalizers": run}, pre_tokenizer=None,
                 post_processor=None, padding=None, truncation=None)  # fmt: skip
    normalize = Tokenizer.from_str(json.dumps(probe)).normalizer.normalize_str
    singles, sequences = {}, {}
    for cp in range(_LAST_CODE_POINT + 1):
        if 0xD800 <= cp <= 0xDFFF or cp in MARKERS or chr(cp) == FENCE:
            continue
        char = chr(cp)
        normal = normalize(char)
        if normal != char:
            singles[char] = normal
        decomposed = unicodedata.normalize("NFD", char)
        if len(decomposed) > 1 and unicodedata.combining(decomposed[-1]):
            composed = normalize(decomposed)
            if composed != "".join(normalize(c) for c in decomposed):
                sequences[decomposed] = composed
    return sequences, singles


def _metaspace(described: dict) -> dict:
    """The pre-tokenizer, looked through a Sequence of one (DebertaV2TokenizerFast saves Metaspace so)."""
    pre = described.get("pre_tokenizer") or {}
    inner = pre.get("pretokenizers") or []
    return inner[0] if pre.get("type") == "Sequence" and len(inner) == 1 else pre


def check_unigram(tokenizer) -> dict:
    """The tokenizer's description, when the graph can reproduce it (cheap); else an input error
    naming what it cannot."""
    described = json.loads(tokenizer.backend_tokenizer.to_str())
    model, pre = described.get("model") or {}, _metaspace(described)
    if model.get("type") != "Unigram" or pre.get("type") != "Metaspace":
        raise InputError(f"not a SentencePiece (Unigram + Metaspace) tokenizer: {_NO_GRAPH}")
    if model.get("byte_fallback") or pre.get("replacement", _SPACE) != _SPACE or not pre.get("split", True):
        raise InputError(f"the Unigram tokenizer uses byte fallback or a custom Metaspace: {_NO_GRAPH}")
    if pre.get("prepend_scheme", "always") not in ("always", "first"):
        raise InputError(f"the tokenizer's Metaspace never prefixes '▁': {_NO_GRAPH}")
    if any(_SPACE in piece[1:] for piece, _ in model.get("vocab", [])):
        raise InputError(f"the vocabulary has pieces spanning words: {_NO_GRAPH}")
    added = list(tokenizer.added_tokens_decoder.values())
    if len(added) > len(MARKERS) or any(t.single_word for t in added):
        raise InputError(f"the tokenizer has single-word or over {len(MARKERS)} added tokens: {_NO_GRAPH}")
    for step in _normalizer_steps(described):
        if step["type"] not in (*_CHAR_LEVEL, "Replace", "Strip"):
            raise InputError(f"the tokenizer's {step['type']} normalizer has no strings-in form: {_NO_GRAPH}")
    return described


def unigram_rules(tokenizer) -> UnigramRules:
    """The rules for this tokenizer, read from its normalizer and pre-tokenizer (a few seconds: every
    code point goes through the normalizer)."""
    described = check_unigram(tokenizer)
    pre = _metaspace(described)
    steps, run = [], []
    for step in [*_normalizer_steps(described), {"type": "end"}]:
        if step["type"] in _CHAR_LEVEL:
            run.append(step)
            continue
        if run:
            steps.append(("map", *_char_tables(described, run)))
            run = []
        if step["type"] == "Replace":
            pattern = step["pattern"]
            regex = pattern["Regex"] if "Regex" in pattern else re.escape(pattern["String"])
            steps.append(("replace", regex, step["content"]))
        elif step["type"] == "Strip":
            steps.append(("strip", bool(step.get("strip_left")), bool(step.get("strip_right"))))
    added = {t.content: t for t in tokenizer.added_tokens_decoder.values()}
    specials = tuple(sorted(added, key=len, reverse=True))
    normalizer = tokenizer.backend_tokenizer.normalizer
    normalized = tuple(
        (normalizer.normalize_str(c) if normalizer else c, added[c].lstrip, added[c].rstrip)
        if added[c].normalized else None
        for c in specials
    )
    every = pre.get("prepend_scheme", "always") == "always"
    model = described["model"]
    unknown = model["vocab"][model["unk_id"]][0] if model.get("unk_id") is not None else None
    unknown = unknown if unknown in specials else None
    spm_model, fence_id = _spm_model(described, tokenizer)
    return UnigramRules(tuple(steps), specials, normalized, every, spm_model, unknown, fence_id)


def _spm_model(described: dict, tokenizer) -> tuple[bytes, int]:
    """A sentencepiece model of the tokenizer's own pieces and scores, which onnxruntime-extensions'
    SentencepieceTokenizer runs with the sentencepiece library itself: tokenizers ported its Unigram
    lattice from it, ties included (``...`` is ``.`` + ``..`` in both; HfJsonTokenizer's Unigram breaks
    that tie the other way). Normalization and Metaspace are the graph's: the model's own normalizer is
    the identity and adds no "▁"; added tokens are user-defined symbols, matched wherever they are typed."""
    from transformers.convert_slow_tokenizer import import_protobuf

    pb2 = import_protobuf()
    model = described["model"]
    added = {t.content for t in tokenizer.added_tokens_decoder.values()}
    proto = pb2.ModelProto()
    types = pb2.ModelProto.SentencePiece
    seen: set[str] = set()
    for index, (piece, score) in enumerate(model["vocab"]):
        if piece in seen:  # sentencepiece refuses a repeated piece (CamemBERT's "<pad>" is a special and an spm
            # piece); tokenizers splits the added token out before its model, so the repeat is unreachable
            proto.pieces.add(piece=f"{FENCE}repeat{index}", score=0.0, type=types.UNUSED)
            continue
        seen.add(piece)
        kind = types.UNKNOWN if index == model.get("unk_id") else types.USER_DEFINED if piece in added else types.NORMAL
        proto.pieces.add(piece=piece, score=score, type=kind)
    # added tokens past the model's vocabulary (CamemBERT's "<s>NOTUSED"...) are pieces at their own ids
    beyond = {i: t.content for i, t in tokenizer.added_tokens_decoder.items() if i >= len(model["vocab"])}
    for index in range(len(model["vocab"]), max(beyond, default=-1) + 1):
        piece = beyond.get(index, f"{FENCE}unused{index}")  # a gap: a piece no text can produce
        proto.pieces.add(piece=piece, score=0.0, type=types.USER_DEFINED if index in beyond else types.UNUSED)
    proto.pieces.add(piece=FENCE, score=0.0, type=types.USER_DEFINED)
    proto.trainer_spec.model_type = pb2.TrainerSpec.UNIGRAM
    proto.trainer_spec.unk_id = int(model.get("unk_id") or 0)
    proto.trainer_spec.bos_id = proto.trainer_spec.eos_id = proto.trainer_spec.pad_id = -1
    spec = proto.normalizer_spec
    spec.name, spec.add_dummy_prefix, spec.remove_extra_whitespaces = "identity", False, False
    return proto.SerializeToString(), len(proto.pieces) - 1


def _markers(count: int) -> str:
    return f"[\\x{{{MARKERS[0]:X}}}-\\x{{{MARKERS[0] + max(count, 1) - 1:X}}}]"


def _replace(g: Graph, text: str, pattern: str, content: str, name: str) -> str:
    return g.op("StringRegexReplace", [text, g.text(pattern), g.text(content)], name, CONTRIB)


def _apply_steps(g: Graph, text: str, s: str, rules: UnigramRules) -> str:
    marker = _markers(len(rules.specials))
    for k, step in enumerate(rules.steps):
        if step[0] == "replace":
            text = _replace(g, text, step[1], step[2].replace("\\", "\\\\"), f"{s}/replace_{k}")
        elif step[0] == "strip":  # per piece between special tokens, as tokenizers normalizes each piece
            if step[1]:
                text = _replace(g, text, f"(^|{marker}){WHITE_SPACE}+", r"\1", f"{s}/lstrip_{k}")
            if step[2]:
                text = _replace(g, text, f"{WHITE_SPACE}+({marker}|$)", r"\1", f"{s}/rstrip_{k}")
        else:
            sequences, singles = step[1], step[2]
            removed = [c for c, v in singles.items() if v == ""]
            if removed:
                text = _replace(g, text, "[" + "".join(f"\\x{{{ord(c):X}}}" for c in removed) + "]", "",
                                f"{s}/removed_{k}")  # fmt: skip
            if sequences:  # a base and its combining marks looked up whole (``e`` + U+0301 is ``é``)
                safe = {key: v for key, v in sequences.items() if not _unsafe(key + v)}
                text = map_code_points(g, text, f"{s}/compose_{k}", safe, unit=r"(.\pM*)")
            kept = {c: v for c, v in singles.items() if v and not _unsafe(c + v)}
            for j, (c, v) in enumerate((c, v) for c, v in singles.items() if v and _unsafe(c + v)):
                text = _replace(g, text, f"\\x{{{ord(c):X}}}", v.replace("\\", "\\\\"), f"{s}/map_{k}_{j}")
            text = map_code_points(g, text, f"{s}/map_{k}", kept)
    return text


def _unsafe(value: str) -> bool:
    """Tabs and newlines cannot sit in StringMapping's table (its separators)."""
    return "\t" in value or "\n" in value


def unigram_pieces(g: Graph, text: str, side: str, tokenizer, rules: UnigramRules) -> str:
    """``text`` (a [1] string tensor) to its Unigram ids without the template's special tokens."""
    s = f"strings/{side}"
    marker = _markers(len(rules.specials))
    text = strip_beside_added(g, text, s, tokenizer, raw_only=True)
    text = _replace(g, text, f"[{_markers(len(MARKERS))[1:-1]}{FENCE}]", "", f"{s}/no_markers")
    for k, content in enumerate(rules.specials):
        if rules.normalized[k] is None:
            text = _replace(g, text, re.escape(content), chr(MARKERS[k]), f"{s}/mark_{k}")
    text = _apply_steps(g, text, s, rules)
    for k, found in enumerate(rules.normalized):
        if found is not None and found[0]:
            form, lstrip, rstrip = found
            pattern = f"{WHITE_SPACE + '*' if lstrip else ''}{re.escape(form)}{WHITE_SPACE + '*' if rstrip else ''}"
            text = _replace(g, text, pattern, chr(MARKERS[k]), f"{s}/mark_normalized_{k}")
    text = _replace(g, text, " ", _SPACE, f"{s}/metaspace")
    # Metaspace's prefix: the first piece, and with "always" every piece after a special token, gets a
    # "▁" unless it starts with one (an empty piece gets none)
    starts = f"(^|{marker})" if rules.prepend_every_piece else "(^)"
    text = _replace(g, text, f"{starts}([^{_SPACE}{marker[1:-1]}])", rf"\1{_SPACE}\2", f"{s}/prefix_pieces")
    for k, content in enumerate(rules.specials):
        if content == rules.unknown:  # sentencepiece reads its unknown piece as text: the marker, never in
            # the vocabulary, gives the unknown id; fences keep sentencepiece from fusing it with unknown
            # characters beside it, as tokenizers does not (an added token is a piece of its own)
            text = _replace(g, text, chr(MARKERS[k]), f"{FENCE}{chr(MARKERS[k])}{FENCE}", f"{s}/fence_{k}")
            continue
        text = _replace(g, text, chr(MARKERS[k]), content.replace("\\", "\\\\"), f"{s}/unmark_{k}")
    defaults = [g.const([0]), g.const([0.0], np.float32), *[g.const([False], np.bool_)] * 4]
    outs = [f"{s}/ids32", f"{s}/rows", f"{s}/offsets"]
    g.op("SentencepieceTokenizer", [text, *defaults], outs, CONTRIB, model=rules.spm_model)
    g.op("Cast", [f"{s}/ids32"], f"{s}/ids", to=7)
    g.op("Equal", [f"{s}/ids", g.const([rules.fence_id])], f"{s}/is_fence")
    g.op("Not", [f"{s}/is_fence"], f"{s}/kept")
    return g.op("Compress", [f"{s}/ids", f"{s}/kept"], f"{s}/core", axis=0)


def equal_score_tie(tokenizer, got: list[int], expected: list[int]) -> bool:
    """Whether two id sequences differ only where both segment the same text with mathematically equal
    Unigram scores ("." + ".." and ".." + "." for "..."). tokenizers sums scores in float64 and
    sentencepiece in float32, so rounding, not the model, picks between such segmentations, and
    the two libraries can pick differently: the one known way this graph and the tokenizer disagree."""
    model = json.loads(tokenizer.backend_tokenizer.to_str()).get("model") or {}
    if model.get("type") != "Unigram" or got == expected:
        return False
    vocab, unk = model["vocab"], model.get("unk_id")
    i = j = 0
    while i < len(got) and j < len(expected):
        if got[i] == expected[j]:
            i, j = i + 1, j + 1
            continue
        # a differing stretch: extend both sides until they end at the same character
        ours, theirs = [got[i]], [expected[j]]
        i, j = i + 1, j + 1
        while _chars(vocab, ours) != _chars(vocab, theirs):
            shorter_ours = _chars(vocab, ours) < _chars(vocab, theirs)
            if (i if shorter_ours else j) >= (len(got) if shorter_ours else len(expected)):
                return False
            if shorter_ours:
                ours.append(got[i])
                i += 1
            else:
                theirs.append(expected[j])
                j += 1
        if not _same_score_same_text(vocab, unk, ours, theirs):
            return False
    return i == len(got) and j == len(expected)


def _chars(vocab: list, ids: list[int]) -> int:
    return sum(len(vocab[i][0]) if i < len(vocab) else 1 << 20 for i in ids)  # an added token: never a tie


def _same_score_same_text(vocab: list, unk: int | None, ours: list[int], theirs: list[int]) -> bool:
    from fractions import Fraction

    if unk in ours or unk in theirs or max(ours + theirs) >= len(vocab):
        return False
    if "".join(vocab[i][0] for i in ours) != "".join(vocab[i][0] for i in theirs):
        return False
    return sum(Fraction(vocab[i][1]) for i in ours) == sum(Fraction(vocab[i][1]) for i in theirs)
