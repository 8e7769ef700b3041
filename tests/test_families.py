"""Registry coverage: the families every chain test runs, and what the tiny look-alikes still serve.

``TESTED`` is the list ``test_families_base.py`` takes each family through the whole chain by (at its
base configuration); a family in ``FAMILIES`` that is missing from it fails
``test_every_registered_family_is_tested``. Here tiny random classifiers with a tokenizer of their own
kind trained on SST-2 sentences check what needs many fast graphs: the one-line error for other
architectures, and the strings-in graph splitting any pair of texts as the tokenizer does.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, invoke
from conftest import cut_glue
from families import build_family_classifier
from hypothesis import example, given, settings
from hypothesis import strategies as st

from codir_edge.models.families import FAMILIES

TESTED = ("bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra", "albert", "mpnet", "deberta-v2",
          "modernbert")  # fmt: skip


def test_every_registered_family_is_tested():
    assert set(TESTED) == set(FAMILIES), f"families without a chain test: {set(FAMILIES) - set(TESTED)}"


@pytest.fixture(scope="module")
def sst2(tmp_path_factory, glue_dir) -> Path:
    return cut_glue(glue_dir, "SST-2", tmp_path_factory.mktemp("fam") / "SST-2", 48, 40)


@pytest.mark.parametrize(
    ("model_type", "kind"), [("gpt2", "decoder-only"), ("t5", "sequence-to-sequence"), ("funnel", "not a supported")]
)
def test_other_architectures_get_one_line_listing_the_families(tmp_path, tiny_classifier, sst2, model_type, kind,
                                                                no_leftovers):  # fmt: skip
    model = shutil.copytree(tiny_classifier, tmp_path / model_type)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config | {"model_type": model_type}))
    for args in (["compress", "--teacher", model, "--task", "sst2", "--data", sst2, "--out", tmp_path / "o"],
                 ["export", model, "--out", tmp_path / "o"],
                 ["evaluate", model, "--task", "sst2", "--data", sst2]):  # fmt: skip
        assert_one_line_error(invoke(*args), 2, f"'{model_type}' model ({kind}", "deberta-v2, modernbert")
        no_leftovers(tmp_path / "o")


GRAPH_TOKENIZERS = (
    "roberta",
    "xlm-roberta",
    "albert",
)  # byte-level BPE; SentencePiece with XLM-R's and ALBERT's normalizers
_SESSIONS: dict = {}


def _pair_sessions(family: str, root: Path, glue_dir: Path) -> tuple:
    """A ``family`` classifier exported for a pair task, and its strings-in graph rebuilt with the token
    ids exposed, so a test can compare ids, not only logits."""
    if family not in _SESSIONS:
        from transformers import AutoTokenizer

        from codir_edge.export.strings.build import build_strings_model
        from codir_edge.onnx.session import create_session

        model = build_family_classifier(family, root / family, glue_dir)
        mrpc = cut_glue(glue_dir, "MRPC", root / f"MRPC-{family}", 8, 24)
        out = root / f"bundle-{family}"
        result = invoke("export", model, "--out", out, "--task", "mrpc", "--data", mrpc, "--max-length", "32",
                        "--quantize", "none", "--no-ort", "--no-optimize", "--max-accuracy-drop", "100")  # fmt: skip
        assert result.exit_code == 0, result.output
        tokenizer = AutoTokenizer.from_pretrained(out)
        ids_graph = root / f"{family}.ids.onnx"
        build_strings_model(out / "onnx/model.onnx", ids_graph, tokenizer, 32, True, False, ids_out=True)
        _SESSIONS[family] = (create_session(root / f"{family}.ids.onnx", 1, custom_ops=True),
                             create_session(out / "onnx/model.onnx", 1), tokenizer)  # fmt: skip
        if FAMILIES[family].tokenizer == "sentencepiece":
            _SESSIONS[f"{family}/pieces"] = _pieces_session(tokenizer, root / f"{family}.pieces.onnx")
    return _SESSIONS[family]


def _pieces_session(tokenizer, path: Path):
    """The SentencePiece graph alone, one text in, its ids out, untruncated."""
    import onnx
    from onnx import TensorProto, helper

    from codir_edge.export.strings.graph import Graph
    from codir_edge.export.strings.unigram import unigram_pieces, unigram_rules
    from codir_edge.onnx.session import create_session

    g = Graph()
    core = unigram_pieces(g, "text", "a", tokenizer, unigram_rules(tokenizer))
    text_in = helper.make_tensor_value_info("text", TensorProto.STRING, [1])
    ids_out = helper.make_tensor_value_info(core, TensorProto.INT64, [None])
    graph = helper.make_graph(g.nodes, "pieces", [text_in], [ids_out], g.initializers)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.contrib", 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return create_session(path, 1, custom_ops=True)


@pytest.fixture(scope="module")
def graphs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("graphs")


_PIECES = st.sampled_from(
    ["word", " the", "x", "Café", "!", "...", "naïve", "日本", "</s>", "<s>", "<mask>", "[SEP]", "[MASK]", "<unk>",
     "[UNK]", "<pad>", "😀", "  ", "\t", "\u00a0", "e\u0301", "ﬁ", "Ａ", "``", "", "▁"]
)  # fmt: skip
_ANY = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=120)
_TEXTS = st.lists(_PIECES, max_size=40).map(" ".join) | st.lists(_PIECES, max_size=40).map("".join) | _ANY


@pytest.mark.parametrize("family", GRAPH_TOKENIZERS)
@settings(max_examples=80, deadline=None)
@given(first=_TEXTS, second=_TEXTS)
@example(first="0000000", second="0" * 19 + "..." * 6)  # truncation cuts a run of equal-score pieces
@example(first="0" * 30, second="a...")
def test_strings_model_splits_any_pair_as_the_tokenizer_does(graphs_root, glue_dir, family, first, second):
    """Byte-level BPE and SentencePiece in the graph, framed as the tokenizer frames a pair and truncated
    longest-first at 32: any Unicode, emoji, typed special tokens, either text empty. The ids are
    the tokenizer's, except where SentencePiece's float32 scores pick another of two equal-score
    segmentations (the documented gap, recognised exactly by ``equal_score_tie``), on the pair or, when
    truncation cut through such a stretch, on either text alone."""
    import numpy as np

    from codir_edge.export.strings.unigram import equal_score_tie

    strings, plain, tokenizer = _pair_sessions(family, graphs_root, glue_dir)
    feed = {"text": np.array([first], dtype=object), "text_pair": np.array([second], dtype=object)}
    logits, _, *ids = strings.run(None, feed)
    names = [i.name for i in plain.get_inputs()]
    encoded = tokenizer(first, second, truncation=True, max_length=32, return_tensors="np")
    got, expected = dict(zip(names, ids, strict=True))["input_ids"][0].tolist(), encoded["input_ids"][0].tolist()
    if got != expected and equal_score_tie(tokenizer, got, expected):
        return
    if got != expected and f"{family}/pieces" in _SESSIONS:
        pieces = _SESSIONS[f"{family}/pieces"]
        alone = [(pieces.run(None, {"text": np.array([t], dtype=object)})[0].tolist(),
                  tokenizer(t, add_special_tokens=False)["input_ids"]) for t in (first, second)]  # fmt: skip
        if any(ours != theirs for ours, theirs in alone):
            assert all(ours == theirs or equal_score_tie(tokenizer, ours, theirs) for ours, theirs in alone)
            return
    assert got == expected, (tokenizer.convert_ids_to_tokens(got), tokenizer.convert_ids_to_tokens(expected))
    reference = plain.run(None, {n: encoded[n].astype(np.int64) for n in names})[0]
    np.testing.assert_allclose(logits, reference, atol=1e-5)
