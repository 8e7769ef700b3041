"""Raw text in, each piece's label and character offsets out: ``model.strings.onnx`` of a token
classifier (``export --task ner``), so that an app marks the entities in its own string with no
tokenizer code of its own.

The classifier's strings graph (``build.py``) normalizes the whole text at once, which loses where
each normalized character came from. This one normalizes code point by code point: the text is split
into its code points, and each goes through the same rules (removed, white space, the mapping table,
isolated punctuation) on its own, so every normalized character knows the code point it came from.
The words, WordPiece and the whole-word [UNK] are the classifier graph's (``wordpiece_core``); then
each piece's span in the normalized text is walked back to the original code points, as the
Hugging Face tokenizer's ``offset_mapping`` does.

Special tokens typed into the text ("[SEP]") count as themselves, as in Hugging Face's split on added
tokens: each is first replaced by as many private-use characters as it has code points (one that
starts a word, fillers, one that ends it), which WordPiece looks up as one word, so its offsets cover
the typed token. Raw private-use characters in that range are first replaced by another the
normalizer removes as well, so no text can smuggle a marker in. Tokenizers whose added tokens swallow
the white space beside them, or are matched after normalization (MPNet's), are refused in one line:
those matches change the text's length, which the offsets could not follow.

Outputs: ``logits`` [1, T, labels] and ``probabilities`` (softmax), ``labels`` [T] (the name of each
piece's argmax label), ``offsets`` [T, 2] in code points (Python's string indices; [0, 0] for special
tokens), ``offsets_utf16`` [T, 2] in UTF-16 code units (JavaScript's, Java's and Swift's NSString
indices), and ``word_ids`` [T]: which white-space-separated word of the text each piece belongs to (-1
for special tokens). The model labels the first piece of each word, as it was trained.
"""

from __future__ import annotations

import re
from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.export.strings.graph import CONTRIB, Graph

_FIRST_MARKER, _LAST_MARKER = 0xE000, 0xE0FF  # private use: the markers live here
_NEUTRAL = "\ue100"  # raw characters in the markers' range become this (removed alike)
_FILL, _END = "\ue0fe", "\ue0ff"  # inside and at the end of a typed special token's marker
_NO_GRAPH = "pass --no-tokenizer-in-graph"
OUTPUTS = ("logits", "probabilities", "labels", "offsets", "offsets_utf16", "word_ids")  # then, for the check, ids


def offsets_unsupported(tokenizer) -> str | None:
    """Why this tokenizer cannot be put in the offsets graph, or None when it can."""
    from codir_edge.export.strings.rules import graph_tokenizer_kind, unsupported_reason
    from codir_edge.models.families import WORDPIECE

    reason = unsupported_reason(tokenizer)
    if reason is not None:
        return reason
    kind = graph_tokenizer_kind(tokenizer)
    if kind != WORDPIECE:
        return (f"the strings graph of a tagger (labels with character offsets) supports WordPiece tokenizers, "
                f"not {kind}: {_NO_GRAPH}")  # fmt: skip
    for added in tokenizer.added_tokens_decoder.values():
        if added.lstrip or added.rstrip:
            return (f"added token {added.content!r} swallows the white space beside it, which the offsets graph "
                    f"cannot follow: {_NO_GRAPH}")  # fmt: skip
        if added.normalized:
            return f"added token {added.content!r} is matched in normalized text, which the offsets graph " \
                   f"cannot follow: {_NO_GRAPH}"  # fmt: skip
    if len(tokenizer.added_tokens_decoder) > ord(_FILL) - _FIRST_MARKER - 1:
        return f"the tokenizer has more added tokens than the offsets graph has markers for: {_NO_GRAPH}"
    normalizer = tokenizer.backend_tokenizer.normalizer
    normalize = normalizer.normalize_str if normalizer is not None else (lambda text: text)
    if any(normalize(chr(cp)) for cp in (*range(_FIRST_MARKER, _LAST_MARKER + 1), ord(_NEUTRAL))):
        return f"the tokenizer keeps private-use characters: {_NO_GRAPH}"
    return None


def _marker(k: int, content: str) -> str:
    """What added token ``k``'s text becomes: as many code points, the first naming the token."""
    start = chr(_FIRST_MARKER + 1 + k)
    return start if len(content) == 1 else start + _FILL * (len(content) - 2) + _END


def _normalized_units(g: Graph, s: str, rules, added) -> str:
    """The raw text's code points ([N], with their byte offsets), each normalized on its own; returns the
    joined normalized text. Keeps ``{s}/units_begin``, ``{s}/units_end``, ``{s}/unit_chars`` (how many
    normalized characters each became) and ``{s}/is_space``."""
    text = g.op("StringRegexReplace", ["text", g.text(r"[\x{E000}-\x{E0FF}]"), g.text(_NEUTRAL)], f"{s}/neutral",
                CONTRIB)  # fmt: skip
    for k, (content, _) in enumerate(added):  # longest first
        text = g.op("StringRegexReplace", [text, g.text(re.escape(content)), g.text(_marker(k, content))],
                    f"{s}/added_{k}", CONTRIB)  # fmt: skip
    unit = g.text("(?s)(.)", True)
    outs = [f"{s}/units", f"{s}/units_begin", f"{s}/units_end", f"{s}/units_rows"]
    g.op("StringRegexSplitWithOffsets", [text, unit, unit], outs, CONTRIB)
    kept = g.op("StringRegexReplace", [f"{s}/units", g.text(rules.removed), g.text("")], f"{s}/u_kept", CONTRIB)
    g.op("StringRegexReplace", [kept, g.text(rules.spaces), g.text("")], f"{s}/u_unspaced", CONTRIB)
    g.op("StringLength", [kept], f"{s}/u_kept_len", CONTRIB)
    g.op("StringLength", [f"{s}/u_unspaced"], f"{s}/u_unspaced_len", CONTRIB)
    g.op("Greater", [f"{s}/u_kept_len", f"{s}/u_unspaced_len"], f"{s}/is_space_b")
    g.op("Cast", [f"{s}/is_space_b"], f"{s}/is_space", to=7)
    spaced = g.op("StringRegexReplace", [kept, g.text(rules.spaces), g.text(" ")], f"{s}/u_spaced", CONTRIB)
    mapping = dict(rules.mapping)
    for k, (content, _) in enumerate(added):
        start = _marker(k, content)[0]
        mapping[start] = f" {start} " if len(content) == 1 else f" {start}"
    mapping[_END] = f"{_END} "
    table = "\n".join(f"{k}\t{v}" for k, v in mapping.items())
    g.op("StringMapping", [spaced], f"{s}/u_mapped", CONTRIB, map=table)
    padded = g.op("StringRegexReplace", [f"{s}/u_mapped", g.text(f"({rules.isolated})"), g.text(r" \1 ")],
                  f"{s}/u_padded", CONTRIB)  # fmt: skip
    g.op("StringLength", [padded], f"{s}/unit_chars", CONTRIB)
    g.op("StringJoin", [padded, g.text(""), g.const([0])], f"{s}/joined_0", CONTRIB)
    return g.op("Reshape", [f"{s}/joined_0", g.const([1])], f"{s}/joined")


def _marks(g: Graph, name: str, size: str, at: str) -> str:
    """[size] int64 zeros with a 1 at each index of ``at`` (distinct)."""
    g.op("ConstantOfShape", [size], f"{name}_zeros", value=_int64_zero())
    g.op("Sub", [at, at], f"{name}_z")
    g.op("Add", [f"{name}_z", g.const([1])], f"{name}_ones")
    return g.op("ScatterElements", [f"{name}_zeros", at, f"{name}_ones"], name, axis=0)


def _int64_zero():
    from onnx import TensorProto, helper

    return helper.make_tensor("zero", TensorProto.INT64, [1], [0])


def _cumsum(g: Graph, x: str, name: str, exclusive: bool) -> str:
    return g.op("CumSum", [x, g.const(0, scalar=True)], name, exclusive=int(exclusive))


def _piece_offsets(g: Graph, s: str, joined: str, prefix: int) -> tuple[str, str]:
    """Each kept piece's [start, end) in the raw text's code points (``{s}/keep`` of ``wordpiece_core``)."""
    # the pieces' spans in the joined text, in characters: a word's pieces follow each other, prefix aside
    g.op("StringLength", [f"{s}/pieces"], f"{s}/piece_chars_raw", CONTRIB)
    g.op("Reshape", [f"{s}/piece_chars_raw", g.const([-1])], f"{s}/piece_chars_all")
    g.op("Not", [f"{s}/first_piece"], f"{s}/later_piece")
    g.op("Cast", [f"{s}/later_piece"], f"{s}/later_i", to=7)
    g.op("Mul", [f"{s}/later_i", g.const([prefix])], f"{s}/prefix_chars")
    g.op("Sub", [f"{s}/piece_chars_all", f"{s}/prefix_chars"], f"{s}/piece_chars")
    _cumsum(g, f"{s}/piece_chars", f"{s}/piece_cum", exclusive=True)
    g.op("Gather", [f"{s}/piece_cum", f"{s}/own_start"], f"{s}/word_cum")
    g.op("Sub", [f"{s}/piece_cum", f"{s}/word_cum"], f"{s}/within")
    # the words' byte offsets in the joined text, to characters
    outs = [f"{s}/chars", f"{s}/chars_begin", f"{s}/chars_end", f"{s}/chars_rows"]
    g.op("StringRegexSplitWithOffsets", [joined, g.text("(?s)(.)", True), g.text("(?s)(.)", True)], outs, CONTRIB)
    g.op("Sub", [f"{s}/chars_end", f"{s}/chars_begin"], f"{s}/char_bytes")
    g.op("ReduceSum", [f"{s}/char_bytes"], f"{s}/n_bytes", keepdims=1)
    g.op("Add", [f"{s}/n_bytes", g.const([1])], f"{s}/n_bytes_1")
    _marks(g, f"{s}/char_starts", f"{s}/n_bytes_1", f"{s}/chars_begin")
    _cumsum(g, f"{s}/char_starts", f"{s}/char_of_byte", exclusive=True)
    g.op("Gather", [f"{s}/char_of_byte", f"{s}/w_begin"], f"{s}/word_start")
    g.op("Gather", [f"{s}/char_of_byte", f"{s}/w_end"], f"{s}/word_end")
    g.op("Gather", [f"{s}/word_start", f"{s}/word_of_piece"], f"{s}/piece_word_start")
    g.op("Gather", [f"{s}/word_end", f"{s}/word_of_piece"], f"{s}/piece_word_end")
    g.op("Add", [f"{s}/piece_word_start", f"{s}/within"], f"{s}/piece_start")
    g.op("Add", [f"{s}/piece_start", f"{s}/piece_chars"], f"{s}/piece_end_good")
    g.op("Where", [f"{s}/bad_piece", f"{s}/piece_word_end", f"{s}/piece_end_good"], f"{s}/piece_end")  # [UNK]: the word
    # characters of the joined text to the code points they came from
    g.op("ReduceSum", [f"{s}/unit_chars"], f"{s}/n_chars", keepdims=1)
    g.op("Add", [f"{s}/n_chars", g.const([1])], f"{s}/n_chars_1")
    _cumsum(g, f"{s}/unit_chars", f"{s}/unit_start", exclusive=True)
    g.op("Greater", [f"{s}/unit_chars", g.const([0])], f"{s}/unit_shows")
    g.op("Shape", [f"{s}/unit_chars"], f"{s}/n_units")
    g.op("Squeeze", [f"{s}/n_units"], f"{s}/n_units_s")
    g.op("Range", [g.const(0, scalar=True), f"{s}/n_units_s", g.const(1, scalar=True)], f"{s}/unit_index")
    g.op("Compress", [f"{s}/unit_start", f"{s}/unit_shows"], f"{s}/shown_start", axis=0)
    g.op("Compress", [f"{s}/unit_index", f"{s}/unit_shows"], f"{s}/shown_unit", axis=0)
    _marks(g, f"{s}/unit_firsts", f"{s}/n_chars_1", f"{s}/shown_start")
    _cumsum(g, f"{s}/unit_firsts", f"{s}/units_upto", exclusive=False)
    g.op("Sub", [f"{s}/piece_end", g.const([1])], f"{s}/piece_last")
    for end, char in (("start", f"{s}/piece_start"), ("last", f"{s}/piece_last")):
        g.op("Gather", [f"{s}/units_upto", char], f"{s}/{end}_upto")
        g.op("Sub", [f"{s}/{end}_upto", g.const([1])], f"{s}/{end}_shown")
        g.op("Gather", [f"{s}/shown_unit", f"{s}/{end}_shown"], f"{s}/{end}_unit")
    g.op("Add", [f"{s}/last_unit", g.const([1])], f"{s}/end_unit")
    start = g.op("Compress", [f"{s}/start_unit", f"{s}/keep"], f"{s}/off_start", axis=0)
    end = g.op("Compress", [f"{s}/end_unit", f"{s}/keep"], f"{s}/off_end", axis=0)
    return start, end


def _utf16(g: Graph, s: str, start: str, end: str) -> tuple[str, str]:
    """Code point offsets to UTF-16 code units: a code point of 4 UTF-8 bytes is two."""
    g.op("Sub", [f"{s}/units_end", f"{s}/units_begin"], f"{s}/unit_bytes")
    g.op("Equal", [f"{s}/unit_bytes", g.const([4])], f"{s}/astral")
    g.op("Cast", [f"{s}/astral"], f"{s}/astral_i", to=7)
    g.op("Add", [f"{s}/astral_i", g.const([1])], f"{s}/unit_u16")
    g.op("Concat", [f"{s}/unit_u16", g.const([0])], f"{s}/unit_u16_end", axis=0)
    _cumsum(g, f"{s}/unit_u16_end", f"{s}/u16_before", exclusive=True)
    return (g.op("Gather", [f"{s}/u16_before", start], f"{s}/off16_start"),
            g.op("Gather", [f"{s}/u16_before", end], f"{s}/off16_end"))  # fmt: skip


def _word_ids(g: Graph, s: str, start: str, end: str) -> str:
    """Per kept piece, its white-space-separated word: a piece opens a word when white space lies
    between it and the piece before it."""
    g.op("Concat", [f"{s}/is_space", g.const([0])], f"{s}/is_space_end", axis=0)
    _cumsum(g, f"{s}/is_space_end", f"{s}/spaces_before", exclusive=True)
    g.op("Slice", [end, g.const([0]), g.const([-1]), g.const([0])], f"{s}/end_but_last")
    g.op("Concat", [g.const([0]), f"{s}/end_but_last"], f"{s}/previous_end", axis=0)
    g.op("Gather", [f"{s}/spaces_before", start], f"{s}/spaces_to_start")
    g.op("Gather", [f"{s}/spaces_before", f"{s}/previous_end"], f"{s}/spaces_to_previous")
    g.op("Sub", [f"{s}/spaces_to_start", f"{s}/spaces_to_previous"], f"{s}/gap_spaces")
    g.op("Greater", [f"{s}/gap_spaces", g.const([0])], f"{s}/after_space")
    g.op("Shape", [start], f"{s}/n_kept")
    g.op("Squeeze", [f"{s}/n_kept"], f"{s}/n_kept_s")
    g.op("Range", [g.const(0, scalar=True), f"{s}/n_kept_s", g.const(1, scalar=True)], f"{s}/kept_index")
    g.op("Equal", [f"{s}/kept_index", g.const([0])], f"{s}/first_kept")
    g.op("Or", [f"{s}/after_space", f"{s}/first_kept"], f"{s}/opens")
    g.op("Cast", [f"{s}/opens"], f"{s}/opens_i", to=7)
    _cumsum(g, f"{s}/opens_i", f"{s}/opened", exclusive=False)
    return g.op("Sub", [f"{s}/opened", g.const([1])], f"{s}/word_ids_core")


def _whole_words_within(g: Graph, cut: int, columns: dict[str, str], words: str) -> dict[str, str]:
    """Each of ``columns`` (one row per piece) kept for the pieces of the whole words that fit in ``cut``:
    a word the limit would split is left out whole, as codir-edge trains and scores taggers (a cut
    word's first piece would be labelled on a context the model never saw)."""
    g.op("Shape", [words], "strings/n_core")
    g.op("Min", ["strings/n_core", g.const([cut])], "strings/at")
    g.op("Concat", [words, g.const([1 << 40])], "strings/words_then_none", axis=0)
    g.op("Gather", ["strings/words_then_none", "strings/at"], "strings/first_out")
    g.op("Less", [words, "strings/first_out"], "strings/fits")
    return {name: g.op("Compress", [x, "strings/fits"], f"strings/{name}_fit", axis=0) for name, x in columns.items()}


def _framed(g: Graph, core: str, name: str, before: list, after: list, pairs: bool = False) -> str:
    """``core`` with the rows ``before`` and ``after`` it (the special tokens'); ``pairs``: rows are
    [start, end] pairs."""
    parts = []
    for side, rows in (("before", before), ("after", after)):
        shape = [len(rows), 2] if pairs else [len(rows)]
        flat = [v for row in rows for v in row] if pairs else rows
        parts.append(g.op("Reshape", [g.const(flat), g.const(shape)], f"{name}_{side}"))
    return g.op("Concat", [parts[0], core, parts[1]], name, axis=0)


def _pairs(g: Graph, start: str, end: str, name: str) -> str:
    g.op("Unsqueeze", [start, g.const([1])], f"{name}_a")
    g.op("Unsqueeze", [end, g.const([1])], f"{name}_b")
    return g.op("Concat", [f"{name}_a", f"{name}_b"], name, axis=1)


def build_offsets_model(model_path: Path, out_path: Path, tokenizer, max_length: int, labels: list[str],
                        ids_out: bool = False) -> None:  # fmt: skip
    """Prefix the token classifier at ``model_path`` with its tokenizer and follow it with the pieces'
    labels, offsets and word ids (the module's docstring); ``ids_out``: the token ids it fed the model
    too, for the export's check."""
    import onnx
    from onnx import TensorProto, helper

    from codir_edge.export.strings.build import wordpiece_core
    from codir_edge.export.strings.rules import text_rules, wordpiece_backend
    from codir_edge.export.strings.template import read_template

    reason = offsets_unsupported(tokenizer)
    if reason is not None:
        raise InputError(reason)
    template = read_template(tokenizer)
    spec = wordpiece_backend(tokenizer)
    rules = text_rules(tokenizer, keep=frozenset(range(_FIRST_MARKER, _LAST_MARKER + 1)))
    g, s = Graph(), "strings/a"
    joined = _normalized_units(g, s, rules, rules.added)
    markers = {_marker(k, content): index for k, (content, index) in enumerate(rules.added)}
    core = wordpiece_core(g, s, joined, {**tokenizer.get_vocab(), **markers}, tokenizer, spec)
    start, end = _piece_offsets(g, s, joined, len(spec.get("continuing_subword_prefix", "##")))
    start16, end16 = _utf16(g, s, start, end)
    words = _word_ids(g, s, start, end)
    columns = {
        "ids": core,
        "offsets": _pairs(g, start, end, "strings/offsets_core"),
        "offsets_utf16": _pairs(g, start16, end16, "strings/offsets_utf16_core"),
        "word_ids": words,
    }
    fit = _whole_words_within(g, max_length - template.single_specials, columns, words)
    prefix, suffix = list(template.prefix), list(template.single_suffix)
    ids = _framed(g, fit["ids"], "strings/ids", prefix, suffix)
    g.op("Sub", [ids, ids], "strings/zeros")
    g.op("Add", ["strings/zeros", g.const([template.first_type])], "strings/types")
    g.op("Add", ["strings/zeros", g.const([1])], "strings/mask")
    for name in ("offsets", "offsets_utf16"):
        _framed(g, fit[name], name, [[0, 0]] * len(prefix), [[0, 0]] * len(suffix), pairs=True)
    _framed(g, fit["word_ids"], "word_ids", [-1] * len(prefix), [-1] * len(suffix))
    model = onnx.load(str(model_path))
    graph = model.graph
    wanted = [i.name for i in graph.input if i.name not in {x.name for x in graph.initializer}]
    for source, target in (("strings/ids", "input_ids"), ("strings/types", "token_type_ids"),
                           ("strings/mask", "attention_mask")):  # fmt: skip
        if target in wanted:
            g.op("Unsqueeze", [source, g.const([0])], target)
    prefix_nodes = len(g.nodes)  # the nodes after it read the logits: they follow the model's
    logits = graph.output[0].name
    g.op("Softmax", [logits], "probabilities", axis=-1)
    g.op("ArgMax", [logits], "strings/label_ids_2d", axis=-1, keepdims=0)
    g.op("Reshape", ["strings/label_ids_2d", g.const([-1])], "strings/label_ids")
    g.op("Gather", [g.const(list(labels), dtype=object), "strings/label_ids"], "labels", axis=0)
    count = graph.output[0].type.tensor_type.shape.dim[2].dim_value or "labels"
    outputs = [
        graph.output[0],
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, "sequence", count]),
        helper.make_tensor_value_info("labels", TensorProto.STRING, ["sequence"]),
        helper.make_tensor_value_info("offsets", TensorProto.INT64, ["sequence", 2]),
        helper.make_tensor_value_info("offsets_utf16", TensorProto.INT64, ["sequence", 2]),
        helper.make_tensor_value_info("word_ids", TensorProto.INT64, ["sequence"]),
    ]
    if ids_out:
        outputs += [helper.make_tensor_value_info(name, TensorProto.INT64, [1, None]) for name in wanted]
    nodes = g.nodes[:prefix_nodes] + list(graph.node) + g.nodes[prefix_nodes:]
    text = helper.make_tensor_value_info("text", TensorProto.STRING, [1])
    merged = helper.make_graph(nodes, "strings_in_labels_out", [text], outputs,
                               list(graph.initializer) + g.initializers, value_info=list(graph.value_info))  # fmt: skip
    opsets = [o for o in model.opset_import if o.domain != CONTRIB] + [helper.make_opsetid(CONTRIB, 1)]
    made = helper.make_model(merged, opset_imports=opsets, producer_name="codir-edge")
    made.ir_version = model.ir_version
    onnx.save(made, str(out_path))


def python_reference(text: str, tokenizer, max_length: int) -> dict[str, list]:
    """What the offsets graph must return for ``text``, from the Hugging Face tokenizer: its ids and
    ``offset_mapping``, cut to the whole words that fit in ``max_length`` with the special tokens
    (``_whole_words_within``), and each piece's white-space word (``python_word_ids``)."""
    encoded = tokenizer(text, return_offsets_mapping=True, verbose=False)
    ids, offsets = list(encoded["input_ids"]), [tuple(o) for o in encoded["offset_mapping"]]
    specials = set(tokenizer.all_special_ids)
    special = [i in specials and o == (0, 0) for i, o in zip(ids, offsets, strict=True)]
    words = python_word_ids(text, offsets, special, tokenizer)
    core = [i for i, is_special in enumerate(special) if not is_special]
    budget = max_length - (len(ids) - len(core))
    if len(core) > budget:
        first_out = words[core[budget]]
        dropped = {i for i in core if words[i] >= first_out}
        keep = [i for i in range(len(ids)) if i not in dropped]
        ids, offsets, words = [ids[i] for i in keep], [offsets[i] for i in keep], [words[i] for i in keep]
    return {"input_ids": ids, "offsets": offsets, "word_ids": words,
            "offsets_utf16": [(_utf16_len(text[:a]), _utf16_len(text[:b])) for a, b in offsets]}  # fmt: skip


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def python_word_ids(text: str, offsets: list[tuple[int, int]], specials: list[bool], tokenizer) -> list[int]:
    """The reference for ``word_ids``: a piece opens a word when a character the tokenizer treats as white
    space lies between it and the piece before it; -1 for special tokens."""
    normalizer = tokenizer.backend_tokenizer.normalizer
    pre = tokenizer.backend_tokenizer.pre_tokenizer
    normalize = normalizer.normalize_str if normalizer is not None else (lambda t: t)

    def is_space(char: str) -> bool:
        normal = normalize(char)
        return normal != "" and not pre.pre_tokenize_str(normal)

    out, word, previous_end = [], -1, None
    for (begin, end), special in zip(offsets, specials, strict=True):
        if special:
            out.append(-1)
            continue
        if previous_end is None or any(is_space(c) for c in text[previous_end:begin]):
            word += 1
        out.append(word)
        previous_end = end
    return out
