"""Strings in, scores out: ``model.strings.onnx`` puts the model's WordPiece tokenizer in front of the
classifier (onnxruntime-extensions ops), so an app passes raw text, and a second text for pair tasks,
and gets logits and probabilities with no tokenizer code of its own.

Why not onnxruntime-extensions' own ``BertTokenizer`` op, which ``gen_processing_models`` emits: measured
here (0.15, the all-MiniLM-L6-v2 tokenizer), it disagrees with the Hugging Face tokenizer on about 11,500
of the first 12,000 code points. It strips accents only in part (``ā``, ``č``, Greek and Cyrillic
accents become [UNK]), splits words at symbols the Hugging Face tokenizer keeps inside words, emits the
pieces before an unknown one where WordPiece gives one [UNK] for the whole word, and does not truncate
pairs. So the graph does each step itself, with rules read from the tokenizer's own normalizer and
pre-tokenizer, code point by code point, at export time (``text_rules``):

1. remove what the normalizer removes (control and format characters, combining marks when it strips
   accents), turn what it treats as white space into a space;
2. map every code point the normalizer changes (lower case, accents stripped) through a table;
3. pad with spaces the characters the pre-tokenizer isolates (punctuation, CJK ideographs);
4. split at spaces, run WordPiece (``WordpieceTokenizer``), look the pieces up (``StringToVector``),
   and give a word with any unknown piece a single [UNK];
5. truncate (pairs by the Hugging Face "longest first" rule) and add [CLS] and [SEP].

Special-token strings typed into the text (a literal "[SEP]") count as themselves, as in Hugging
Face's split on added tokens. Known gap: the extensions' string ops end a string at its first NUL
character, where the Hugging Face tokenizer drops the NUL and reads on. Everything else agrees: a property test
feeds arbitrary Unicode, and ``check.check_strings_model`` holds every export to real sentences.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from codir_edge.export.strings.graph import CONTRIB, Graph, map_code_points, strip_beside_added
from codir_edge.export.strings.rules import MARK, TextRules, graph_tokenizer_kind, text_rules, wordpiece_backend
from codir_edge.export.strings.template import Template, read_template
from codir_edge.export.strings.unigram import unigram_pieces, unigram_rules
from codir_edge.models.families import SENTENCEPIECE, WORDPIECE


def _word_pieces(g: Graph, text: str, side: str, rules: TextRules, tokenizer, model: dict) -> str:
    """``text`` (a [1] string tensor) to its WordPiece ids without special tokens, as a [n] int64 tensor."""
    s = f"strings/{side}"
    # special tokens typed into the text count as themselves, as in Hugging Face's split on added tokens
    text = strip_beside_added(g, text, s, tokenizer)
    current = g.op("StringRegexReplace", [text, g.text(MARK), g.text("")], f"{s}/unmarked", CONTRIB)
    for k, (content, _) in enumerate(rules.added):
        marker = f" {MARK * (k + 1)} "
        current = g.op("StringRegexReplace", [current, g.text(re.escape(content)), g.text(marker)], f"{s}/added_{k}",
                       CONTRIB)  # fmt: skip
    g.op("StringRegexReplace", [current, g.text(rules.removed), g.text("")], f"{s}/kept", CONTRIB)
    g.op("StringRegexReplace", [f"{s}/kept", g.text(rules.spaces), g.text(" ")], f"{s}/spaced", CONTRIB)
    normal = map_code_points(g, f"{s}/spaced", s, rules.mapping)
    first = len(rules.added)  # markers of tokens matched after normalization follow the raw ones
    for k, (content, _) in enumerate(rules.normalized_added, start=first):
        marker = f" {MARK * (k + 1)} "
        normal = g.op("StringRegexReplace", [normal, g.text(re.escape(content)), g.text(marker)],
                      f"{s}/normal_added_{k}", CONTRIB)  # fmt: skip
    g.op("StringRegexReplace", [normal, g.text(f"({rules.isolated})"), g.text(r" \1 ")], f"{s}/padded", CONTRIB)
    markers = [*rules.added, *rules.normalized_added]
    vocab = {**tokenizer.get_vocab(), **{MARK * (k + 1): index for k, (_, index) in enumerate(markers)}}
    return wordpiece_core(g, s, f"{s}/padded", vocab, tokenizer, model)


def wordpiece_core(g: Graph, s: str, padded: str, vocab: dict[str, int], tokenizer, model: dict) -> str:
    """Normalized text with its words parted by spaces (``padded``, [1]) to WordPiece ids, a word with
    any unknown piece one [UNK]. Its steps' outputs keep their names (``{s}/words``, ``{s}/pieces``,
    ``{s}/keep`` ...): the offsets graph reads them (``offsets.py``)."""
    outs = [f"{s}/words", f"{s}/w_begin", f"{s}/w_end", f"{s}/w_rows"]
    g.op("StringRegexSplitWithOffsets", [padded, g.text("( +)", True), g.text("", True)], outs, CONTRIB)
    # each word a row of its own, so the op reports where each word's pieces start
    g.op("Shape", [f"{s}/words"], f"{s}/n_words")
    g.op("Add", [f"{s}/n_words", g.const([1])], f"{s}/n_rows")
    g.op("Squeeze", [f"{s}/n_rows"], f"{s}/n_rows_s")
    g.op("Range", [g.const(0, scalar=True), f"{s}/n_rows_s", g.const(1, scalar=True)], f"{s}/row_splits")
    outs = [f"{s}/pieces", f"{s}/piece_splits", f"{s}/p_begin", f"{s}/p_end"]
    g.op(
        "WordpieceTokenizer",
        [f"{s}/words", f"{s}/row_splits"],
        outs,
        CONTRIB,
        vocab=json.dumps(vocab, ensure_ascii=False),
        suffix_indicator=model.get("continuing_subword_prefix", "##"),
        unknown_token=model.get("unk_token", tokenizer.unk_token),
        max_input_chars_per_word=int(model.get("max_input_chars_per_word", 100)),
    )
    unk = tokenizer.unk_token_id
    table = "\n".join(f"{token}\t{index}" for token, index in vocab.items())
    g.op("StringToVector", [f"{s}/pieces"], f"{s}/ids_2d", CONTRIB, map=table, unk=str(unk))
    g.op("Reshape", [f"{s}/ids_2d", g.const([-1])], f"{s}/piece_ids")
    return _whole_word_unknown(g, s, f"{s}/piece_ids", f"{s}/piece_splits", unk)


def _whole_word_unknown(g: Graph, s: str, ids: str, splits: str, unk: int) -> str:
    """WordPiece as Hugging Face runs it: a word with any piece not in the vocabulary is one [UNK].
    The extensions op keeps the pieces it found before the unknown one, so fix that here."""
    g.op("Slice", [splits, g.const([0]), g.const([-1]), g.const([0])], f"{s}/starts")  # [W]
    g.op("Shape", [ids], f"{s}/n_pieces")
    g.op("Squeeze", [f"{s}/n_pieces"], f"{s}/n_pieces_s")
    g.op("Range", [g.const(0, scalar=True), f"{s}/n_pieces_s", g.const(1, scalar=True)], f"{s}/piece_index")
    g.op("Unsqueeze", [f"{s}/piece_index", g.const([1])], f"{s}/index_col")  # [P, 1]
    g.op("Unsqueeze", [f"{s}/starts", g.const([0])], f"{s}/starts_row")  # [1, W]
    g.op("GreaterOrEqual", [f"{s}/index_col", f"{s}/starts_row"], f"{s}/started")  # [P, W]
    g.op("Cast", [f"{s}/started"], f"{s}/started_i", to=7)
    g.op("ReduceSum", [f"{s}/started_i", g.const([1])], f"{s}/n_started", keepdims=0)
    g.op("Sub", [f"{s}/n_started", g.const([1])], f"{s}/word_of_piece")  # [P]
    g.op("Equal", [ids, g.const([unk])], f"{s}/is_unk")
    g.op("Cast", [f"{s}/is_unk"], f"{s}/is_unk_i", to=7)
    g.op("Unsqueeze", [f"{s}/word_of_piece", g.const([1])], f"{s}/word_col")
    g.op("Shape", [f"{s}/starts"], f"{s}/n_starts")
    g.op("Squeeze", [f"{s}/n_starts"], f"{s}/n_starts_s")
    g.op("Range", [g.const(0, scalar=True), f"{s}/n_starts_s", g.const(1, scalar=True)], f"{s}/word_index")
    g.op("Unsqueeze", [f"{s}/word_index", g.const([0])], f"{s}/word_row")
    g.op("Equal", [f"{s}/word_col", f"{s}/word_row"], f"{s}/belongs")  # [P, W] one-hot
    g.op("Cast", [f"{s}/belongs"], f"{s}/belongs_i", to=7)
    g.op("Unsqueeze", [f"{s}/is_unk_i", g.const([1])], f"{s}/unk_col")
    g.op("Mul", [f"{s}/belongs_i", f"{s}/unk_col"], f"{s}/unk_by_word")
    g.op("ReduceSum", [f"{s}/unk_by_word", g.const([0])], f"{s}/unknowns", keepdims=0)  # [W]
    g.op("Greater", [f"{s}/unknowns", g.const([0])], f"{s}/bad_word")
    g.op("Gather", [f"{s}/bad_word", f"{s}/word_of_piece"], f"{s}/bad_piece")
    g.op("Gather", [f"{s}/starts", f"{s}/word_of_piece"], f"{s}/own_start")
    g.op("Equal", [f"{s}/piece_index", f"{s}/own_start"], f"{s}/first_piece")
    g.op("Not", [f"{s}/bad_piece"], f"{s}/good_piece")
    g.op("Or", [f"{s}/good_piece", f"{s}/first_piece"], f"{s}/keep")
    g.op("Where", [f"{s}/bad_piece", g.const([unk]), ids], f"{s}/marked")
    return g.op("Compress", [f"{s}/marked", f"{s}/keep"], f"{s}/core", axis=0)


def _bpe_pieces(g: Graph, text: str, side: str, tokenizer) -> str:
    """``text`` to its byte-level BPE ids without special tokens: onnxruntime-extensions' HfJsonTokenizer
    runs the tokenizer's own tokenizer.json (its post-processor removed: the template adds the special
    tokens, after truncation, as for WordPiece).

    Measured here (0.15): the op drops what follows a "<" in the last two characters of its input
    ("<0" gives "<" alone) when the tokenizer has added tokens starting with "<". So the text goes in
    with a plain added token after it, whose id is cut off again: the text then never ends there."""
    s = f"strings/{side}"
    text = strip_beside_added(g, text, s, tokenizer)
    sentinel = next((t for t in tokenizer.added_tokens_decoder.values() if not (t.lstrip or t.rstrip)), None)
    if sentinel is not None:
        text = g.op("StringConcat", [text, g.text([sentinel.content])], f"{s}/sentinel", CONTRIB)
    described = json.loads(tokenizer.backend_tokenizer.to_str())
    described.update(post_processor=None, padding=None, truncation=None)
    # the op knows tokenizers by class name; PreTrainedTokenizerFast means "all in tokenizer.json"
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1 << 30}
    g.op("HfJsonTokenizer", [text], f"{s}/ids_2d", CONTRIB, tokenizer_vocab=json.dumps(described, ensure_ascii=False),
         tokenizer_config=json.dumps(config))  # fmt: skip
    g.op("Reshape", [f"{s}/ids_2d", g.const([-1])], f"{s}/with_sentinel")
    end = -1 if sentinel is not None else 1 << 62
    return g.op("Slice", [f"{s}/with_sentinel", g.const([0]), g.const([end]), g.const([0])], f"{s}/core")


def _typed(g: Graph, ids: str, segment: int, name: str) -> str:
    zeros = g.op("Sub", [ids, ids], f"{name}_zeros")
    return g.op("Add", [zeros, g.const([segment])], name)


def _single(g: Graph, core: str, template: Template, max_length: int) -> tuple[str, str, str]:
    g.op("Slice", [core, g.const([0]), g.const([max_length - template.single_specials]), g.const([0])], "strings/cut")
    ids = g.op("Concat", [g.const(list(template.prefix)), "strings/cut", g.const(list(template.single_suffix))],
               "strings/ids", axis=0)  # fmt: skip
    types = _typed(g, ids, template.first_type, "strings/types")
    mask = _typed(g, ids, 1, "strings/mask")
    return ids, types, mask


def _pair(g: Graph, core_a: str, core_b: str, template: Template, max_length: int) -> tuple[str, str, str]:
    """Keep n_a + n_b within budget by Hugging Face's longest-first rule (truncation.rs): the shorter
    text whole when it fits in half the budget, else half each, the odd piece to the second. An empty
    second text is no second text, as in transformers (``if text_pair``): framed as one text."""
    g.op("StringLength", ["text_pair"], "strings/pair_chars", CONTRIB)
    g.op("Equal", ["strings/pair_chars", g.const([0])], "strings/no_pair")
    g.op("Cast", ["strings/no_pair"], "strings/no_pair_i", to=7)
    spare = template.pair_specials - template.single_specials  # specials a pair costs beyond one text
    g.op("Mul", ["strings/no_pair_i", g.const([spare])], "strings/spare")
    g.op("Add", [g.const([max_length - template.pair_specials]), "strings/spare"], "strings/budget")
    budget = "strings/budget"
    for side, core in (("a", core_a), ("b", core_b)):
        g.op("Shape", [core], f"strings/n_{side}")
    n_a, n_b = "strings/n_a", "strings/n_b"
    g.op("Min", [n_a, n_b], "strings/short")
    g.op("Greater", [n_a, n_b], "strings/a_longer")
    g.op("Sub", [budget, "strings/short"], "strings/rest")
    g.op("Max", ["strings/short", "strings/rest"], "strings/long_fit")
    g.op("Greater", ["strings/short", budget], "strings/short_over")
    g.op("Where", ["strings/short_over", "strings/short", "strings/long_fit"], "strings/long_cap")
    g.op("Add", ["strings/short", "strings/long_cap"], "strings/total")
    g.op("Greater", ["strings/total", budget], "strings/halve")
    g.op("Div", [budget, g.const([2])], "strings/half")
    g.op("Mod", [budget, g.const([2])], "strings/odd")
    g.op("Add", ["strings/half", "strings/odd"], "strings/half_up")
    g.op("Where", ["strings/halve", "strings/half", "strings/short"], "strings/short_cap")
    g.op("Where", ["strings/halve", "strings/half_up", "strings/long_cap"], "strings/long_cap2")
    g.op("Where", ["strings/a_longer", "strings/long_cap2", "strings/short_cap"], "strings/cap_a")
    g.op("Where", ["strings/a_longer", "strings/short_cap", "strings/long_cap2"], "strings/cap_b")
    for side, core in (("a", core_a), ("b", core_b)):
        g.op("Min", [f"strings/n_{side}", f"strings/cap_{side}"], f"strings/keep_{side}")
        g.op("Slice", [core, g.const([0]), f"strings/keep_{side}", g.const([0])], f"strings/cut_{side}")
    # one text keeps the middle's first len(single_suffix) ids and drops the suffix (read_template checks
    # that this is how the tokenizer frames it)
    cut_middle = len(template.middle) - len(template.single_suffix)
    g.op("Mul", ["strings/no_pair_i", g.const([cut_middle])], "strings/middle_cut")
    g.op("Sub", [g.const([len(template.middle)]), "strings/middle_cut"], "strings/n_middle")
    g.op("Mul", ["strings/no_pair_i", g.const([len(template.suffix)])], "strings/suffix_cut")
    g.op("Sub", [g.const([len(template.suffix)]), "strings/suffix_cut"], "strings/n_suffix")
    for part in ("middle", "suffix"):
        g.op("Slice", [g.const(list(getattr(template, part))), g.const([0]), f"strings/n_{part}", g.const([0])],
             f"strings/{part}")  # fmt: skip
    first = g.op("Concat", [g.const(list(template.prefix)), "strings/cut_a", "strings/middle"], "strings/first", axis=0)
    second = g.op("Concat", ["strings/cut_b", "strings/suffix"], "strings/second", axis=0)
    ids = g.op("Concat", [first, second], "strings/ids", axis=0)
    types_first = _typed(g, first, template.first_type, "strings/types_first")
    types_second = _typed(g, second, template.second_type, "strings/types_second")
    types = g.op("Concat", [types_first, types_second], "strings/types", axis=0)
    mask = _typed(g, ids, 1, "strings/mask")
    return ids, types, mask


def build_strings_model(
    model_path: Path, out_path: Path, tokenizer, max_length: int, pair: bool, regression: bool, ids_out: bool = False
) -> None:
    """Prefix ``model_path`` (a token-id classifier) with its tokenizer. Inputs: ``text`` (and
    ``text_pair``), each a [1] string tensor; outputs: ``logits`` and ``probabilities`` (softmax; the raw
    score again for regression), and with ``ids_out`` the token ids it fed the classifier too (the
    export's check compares them with the tokenizer's, which logits alone can hide)."""
    import onnx
    from onnx import helper

    template = read_template(tokenizer)
    kind = graph_tokenizer_kind(tokenizer)
    if kind == WORDPIECE:
        model_spec, rules = wordpiece_backend(tokenizer), text_rules(tokenizer)

        def pieces(g: Graph, text: str, side: str) -> str:
            return _word_pieces(g, text, side, rules, tokenizer, model_spec)
    elif kind == SENTENCEPIECE:
        unigram = unigram_rules(tokenizer)

        def pieces(g: Graph, text: str, side: str) -> str:
            return unigram_pieces(g, text, side, tokenizer, unigram)
    else:

        def pieces(g: Graph, text: str, side: str) -> str:
            return _bpe_pieces(g, text, side, tokenizer)

    model = onnx.load(str(model_path))
    graph = model.graph
    g = Graph()
    core_a = pieces(g, "text", "a")
    if pair:
        core_b = pieces(g, "text_pair", "b")
        ids, types, mask = _pair(g, core_a, core_b, template, max_length)
    else:
        ids, types, mask = _single(g, core_a, template, max_length)
    initializer_names = {x.name for x in graph.initializer}
    wanted = [i.name for i in graph.input if i.name not in initializer_names]
    for source, target in ((ids, "input_ids"), (types, "token_type_ids"), (mask, "attention_mask")):
        if target in wanted:
            g.op("Unsqueeze", [source, g.const([0])], target)
    logits = graph.output[0].name
    if regression:
        g.op("Identity", [logits], "probabilities")
    else:
        g.op("Softmax", [logits], "probabilities", axis=-1)
    string_inputs = [helper.make_tensor_value_info("text", onnx.TensorProto.STRING, [1])]
    if pair:
        string_inputs.append(helper.make_tensor_value_info("text_pair", onnx.TensorProto.STRING, [1]))
    labels = graph.output[0].type.tensor_type.shape.dim[1].dim_value or "labels"
    outputs = [graph.output[0], helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, [1, labels])]
    if ids_out:
        outputs += [helper.make_tensor_value_info(name, onnx.TensorProto.INT64, [1, None]) for name in wanted]
    prefix, suffix = g.nodes[:-1], g.nodes[-1:]
    merged = helper.make_graph(
        prefix + list(graph.node) + suffix,
        "strings_in_scores_out",
        string_inputs,
        outputs,
        list(graph.initializer) + g.initializers,
        value_info=list(graph.value_info),
    )
    opsets = [o for o in model.opset_import if o.domain != CONTRIB] + [helper.make_opsetid(CONTRIB, 1)]
    made = helper.make_model(merged, opset_imports=opsets, producer_name="codir-edge")
    made.ir_version = model.ir_version
    onnx.save(made, str(out_path))
