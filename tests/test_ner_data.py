"""--task ner's data layer: the CoNLL and jsonl readers with their one-line errors, IOB1 conversion,
the label list, first-piece alignment on real tokenizers, and entity F1 held equal to seqeval's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codir_edge.core.errors import InputError
from codir_edge.data.ner import is_ner, label_list, load_tagged_train_dev, read_tagged
from codir_edge.data.ner_encode import IGNORE, encode_tagged, first_pieces, word_spans, word_tags
from codir_edge.data.ner_metrics import entities, ner_scores

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
"""


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_conll_reads_the_tag_last_skips_docstart_and_splits_on_blank_lines(tmp_path):
    split = read_tagged(write(tmp_path / "train.txt", CONLL), "train")
    assert split.words == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]]
    assert split.tags == [["B-ORG", "O", "B-MISC", "O"], ["B-PER", "I-PER"]]
    assert split.lines == [3, 8]
    assert label_list(split) == ["O", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_a_folder_gives_each_split_its_file(tmp_path):
    write(tmp_path / "train.txt", CONLL)
    write(tmp_path / "dev.txt", "Peter B-PER\n")
    train, dev, labels = load_tagged_train_dev(str(tmp_path), None, None)
    assert len(train) == 2 and dev.words == [["Peter"]] and labels[0] == "O"


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        ("EU B-ORG\nrejects\n", ":2:", "has no tag"),
        ("EU B-ORG\n\nsaid O\nBrussels I-LOC\n", ":4:", "fix the tag to B-LOC"),
        ("EU B-ORG\nrejects X-ORG\n", ":2:", "is not IOB"),
        ("\n\n", "", "holds no tagged sentences"),
    ],
)
def test_bad_conll_is_one_line_with_file_and_line(tmp_path, text, where, says):
    path = write(tmp_path / "train.txt", text)
    with pytest.raises(InputError) as raised:
        read_tagged(path, "train")
    message = str(raised.value)
    assert f"{path}{where}" in message and says in message and "\n" not in message


def test_a_tag_outside_the_labels_names_its_line(tmp_path):
    path = write(tmp_path / "dev.txt", "Peter B-PER\nParis B-LOC\n")
    with pytest.raises(InputError, match=r"dev\.txt:2: tag 'B-LOC' is not among the labels"):
        read_tagged(path, "dev", ["O", "B-PER", "I-PER"])


def test_iob1_files_are_converted_with_a_note(tmp_path, capsys):
    text = "Peter I-PER\nBlackburn I-PER\nmet O\nJohn I-PER\nSmith I-PER\nB B-PER\nin O\nParis I-LOC\n"
    split = read_tagged(write(tmp_path / "train.txt", text), "train")
    assert split.tags == [["B-PER", "I-PER", "O", "B-PER", "I-PER", "B-PER", "O", "B-LOC"]]
    assert "tagged IOB1" in capsys.readouterr().err


def test_jsonl_takes_names_or_ids_with_labels(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"tokens": ["EU", "rejects"], "ner_tags": [3, 0]}) + "\n")
    with pytest.raises(InputError, match=r"train\.jsonl:1: tags are ids.*--labels"):
        read_tagged(path, "train")
    labels = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]
    assert read_tagged(path, "train", labels).tags == [["B-ORG", "O"]]
    path.write_text(json.dumps({"tokens": ["EU"], "tags": ["B-ORG", "O"]}) + "\n")
    with pytest.raises(InputError, match="1 tokens but 2 tags"):
        read_tagged(path, "train")


def test_task_names():
    assert is_ner("ner") and is_ner("token-classification") and is_ner("NER") and not is_ner("sst2")


# --- entity scores: seqeval's strict IOB2 reading ------------------------------------------------------
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
sentences = st.lists(st.lists(st.sampled_from(TAGS), min_size=1, max_size=12), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(sentences, st.randoms(use_true_random=False))
def test_entity_scores_equal_seqeval_strict(gold, rnd):
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    predicted = [[t if rnd.random() < 0.6 else rnd.choice(TAGS) for t in row] for row in gold]
    ours = ner_scores(gold, predicted)
    kw = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    assert ours["f1"] == pytest.approx(f1_score(gold, predicted, **kw))
    assert ours["precision"] == pytest.approx(precision_score(gold, predicted, **kw))
    assert ours["recall"] == pytest.approx(recall_score(gold, predicted, **kw))
    per_type = f1_score(gold, predicted, average=None, **kw)  # by type name, over types found in either
    kinds = sorted({kind for row in gold + predicted for kind, *_ in entities(row)})
    if kinds:
        assert [ours[f"f1_{k}"] for k in kinds] == pytest.approx(list(per_type))


def test_an_orphan_inside_tag_is_no_entity():
    assert entities(["O", "I-PER", "I-PER", "B-LOC", "I-LOC", "I-PER"]) == {("LOC", 3, 4)}


# --- alignment ---------------------------------------------------------------------------------------------
def test_word_spans_and_first_pieces():
    text, spans = word_spans(["New", "York-based", "firm"])
    assert text == "New York-based firm" and spans == [(0, 3), (4, 14), (15, 19)]
    # [CLS] New York - based firm [SEP], a lone space piece before "firm" (SentencePiece's ▁)
    offsets = [(0, 0), (0, 3), (4, 8), (8, 9), (9, 14), (14, 15), (15, 19), (0, 0)]
    assert first_pieces(offsets, spans).tolist() == [-1, 0, 1, -1, -1, -1, 2, -1]


def test_the_bundled_tokenizer_labels_first_pieces_and_counts_cut_words(backbone_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(backbone_dir))
    split = read_tagged(write(tmp_path / "train.txt", CONLL), "train")
    labels = label_list(split)
    tokens = encode_tagged(tokenizer, split, labels, 128, True)
    first = tokens.labels[0]
    assert (first != IGNORE).sum() == 4 and tokens.words_cut == 0
    assert [labels[i] for i in first[first != IGNORE]] == split.tags[0]
    short = encode_tagged(tokenizer, split, labels, 4, True)  # [CLS] + 2 pieces + [SEP]
    assert short.words_cut == 2 and short.sentences_cut == 1
    assert word_tags(first, tokens.word_of[0], 4, labels) == split.tags[0]
    assert np.all(tokens.word_of[0][first == IGNORE] == -1)


_WORDS = st.lists(st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=12), min_size=1,
                  max_size=20)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(_WORDS)
def test_any_words_get_one_first_piece_each_in_order(words):
    """Letters, digits, punctuation and symbols of any script: each word that fits is labelled exactly once,
    on a piece that starts where the word starts, and the labels come out in word order."""
    from transformers import AutoTokenizer

    from codir_edge.data.ner import TaggedSplit
    from codir_edge.models.checkpoint import default_backbone

    tokenizer = _tokenizer(AutoTokenizer, default_backbone())
    labels = ["O", "B-X", "I-X"]
    tags = [labels[i % 3] for i in range(len(words))]
    tokens = encode_tagged(tokenizer, TaggedSplit([words], [tags], [1], "t"), labels, 512, True)
    text, spans = word_spans(words)
    offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    firsts = np.flatnonzero(tokens.word_of[0] >= 0)
    kept = tokens.word_of[0][firsts].tolist()
    assert kept == sorted(kept) and len(set(kept)) == len(kept)
    assert all(offsets[p][0] == spans[w][0] for p, w in zip(firsts, kept, strict=True))
    assert [labels[i] for i in tokens.labels[0][firsts]] == [tags[w] for w in kept]
    assert tokens.words_cut == len(words) - len(kept)  # a word made only of characters BERT drops has no piece


_CACHE: dict = {}


def _tokenizer(auto, folder):
    if folder not in _CACHE:
        _CACHE[folder] = auto.from_pretrained(str(folder))
    return _CACHE[folder]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["the", "Teichmann", "Westhuizen", "Joubert", "-", "15", "captain", "(", "Stransky"]),
                min_size=1, max_size=30), st.integers(2, 24), st.booleans())  # fmt: skip
def test_a_long_sentence_is_cut_before_the_first_word_that_does_not_fit(words, max_length, bundled):
    """The model sees whole words and its own end token: the row is the tokenization of the longest word
    prefix that fits, which an app reproduces by tokenizing prefixes (examples/apps/web/tagging.js); with
    transformers' tokenizer (folders) and the tokenizer.json reader that bundles are scored with alike."""
    from transformers import AutoTokenizer

    from codir_edge.data.fast_tokenizer import find_tokenizer
    from codir_edge.data.ner import TaggedSplit
    from codir_edge.models.checkpoint import default_backbone

    tokenizer = find_tokenizer(default_backbone()) if bundled else _tokenizer(AutoTokenizer, default_backbone())
    tokens = encode_tagged(tokenizer, TaggedSplit([words], [["O"] * len(words)], [1], "t"), ["O"], max_length, True)
    kept = int((tokens.word_of[0] >= 0).sum())
    row = tokens.encoded.input_ids[0].tolist()

    def ids(n: int) -> list[int]:
        return tokenizer([" ".join(words[:n])], truncation=False)["input_ids"][0]

    assert row == ids(kept) and len(row) <= max_length
    if kept < len(words):
        assert len(ids(kept + 1)) > max_length
    assert tokens.words_cut == len(words) - kept and tokens.sentences_cut == (kept < len(words))
