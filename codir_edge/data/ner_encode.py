"""Words to sub-word pieces, with each word's label on its first piece.

Words are joined with single spaces and the text is tokenized as an app would tokenize it, with the
fast tokenizer's character offsets mapping each piece back to its word. That one path serves every
tokenizer kind of the family registry: WordPiece, byte-level BPE (whose leading-space pieces
``is_split_into_words`` would need ``add_prefix_space`` for) and SentencePiece (whose lone ``▁``
piece covers only the space and so belongs to no word). A piece that starts a word carries the
word's label; the others, and the special tokens, carry ``IGNORE`` and are left out of every loss
and metric. Words cut off by ``--max-length`` are counted so the caller can say so.

A sentence longer than ``--max-length`` pieces is cut before its first word that does not fit whole,
and that prefix is tokenized again: the model sees whole words and its own end token, and an app can
reproduce the cut exactly by tokenizing word prefixes (examples/apps/web/tagging.js does; the
tokenizer's own truncation would keep half a word, and transformers.js's cuts the end token off).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codir_edge.data.encode import Encoded
from codir_edge.data.ner import TaggedSplit

IGNORE = -100  # transformers' ignore_index: the position is in no loss and no metric
UNLABELED = -1  # a word's first piece in a sentence without tags (the transfer set): teacher terms only


@dataclass(frozen=True)
class TokenEncoded:
    """Pieces per sentence (``encoded``), and per piece the word it starts (-1: none) and that word's label id."""

    encoded: Encoded
    word_of: list[np.ndarray]  # (T,) int64 per sentence: index of the word this piece starts, or -1
    labels: list[np.ndarray]  # (T,) int64 per sentence: label id at first pieces, IGNORE elsewhere
    words: int  # words in the data
    words_cut: int  # words past --max-length, which no piece represents
    sentences_cut: int

    def __len__(self) -> int:
        return len(self.encoded)


def word_spans(words: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The sentence as one string (words joined by a space) and each word's character span in it."""
    spans, start = [], 0
    for word in words:
        spans.append((start, start + len(word)))
        start += len(word) + 1
    return " ".join(words), spans


def first_pieces(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> np.ndarray:
    """For each piece (character offsets), the word it is the first piece of, or -1.

    A piece belongs to the word holding its first non-space character; empty pieces (specials) and
    pieces of spaces alone belong to none."""
    starts = np.array([s for s, _ in spans], dtype=np.int64)
    ends = np.array([e for _, e in spans], dtype=np.int64)
    out = np.full(len(offsets), -1, dtype=np.int64)
    seen = -1
    for i, (start, end) in enumerate(offsets):
        if end <= start:
            continue
        word = int(np.searchsorted(ends, start, side="right"))  # first word ending after the start
        if word >= len(spans) or end <= starts[word]:
            continue  # a piece of whitespace only
        if word > seen:
            out[i] = word
            seen = word
    return out


def encode_tagged(tokenizer, split: TaggedSplit, labels: list[str], max_length: int, segments: bool,
                  chunk: int = 2048, tagged: bool = True) -> TokenEncoded:  # fmt: skip
    """Tokenize every sentence, cut to the whole words that fit in ``max_length`` pieces, with first-piece
    labels (``tagged`` False: the split's tags are placeholders, and first pieces get UNLABELED)."""
    index = {name: i for i, name in enumerate(labels)}
    ids, types, word_of, targets = [], [], [], []
    cut_words = cut_sentences = 0
    for start in range(0, len(split), chunk):
        joined = [word_spans(words) for words in split.words[start : start + chunk]]
        out = _tokenize(tokenizer, [text for text, _ in joined], max_length + 1, segments)  # one over: cut ones
        for row, (_, spans) in enumerate(joined):
            sentence_tags = split.tags[start + row]
            piece_ids = out["input_ids"][row]
            offsets, segment_ids = out["offset_mapping"][row], (out["token_type_ids"][row] if segments else None)
            if len(piece_ids) > max_length:
                piece_ids, offsets, segment_ids = _whole_words(tokenizer, split.words[start + row], max_length,
                                                               segments)  # fmt: skip
            firsts = first_pieces(offsets, spans)
            labelled = np.full(len(firsts), IGNORE, dtype=np.int64)
            present = firsts >= 0
            labelled[present] = [index[sentence_tags[w]] for w in firsts[present]] if tagged else UNLABELED
            missing = len(spans) - int(present.sum())
            cut_words += missing
            cut_sentences += missing > 0
            ids.append(np.asarray(piece_ids, dtype=np.int64))
            if segments:
                types.append(np.asarray(segment_ids, dtype=np.int64))
            word_of.append(firsts)
            targets.append(labelled)
    encoded = Encoded(ids, types or None, np.arange(len(ids), dtype=np.int64), int(tokenizer.pad_token_id or 0))
    total = sum(len(w) for w in split.words)
    return TokenEncoded(encoded, word_of, targets, total, cut_words, cut_sentences)


def _tokenize(tokenizer, texts: list[str], max_length: int, segments: bool):
    return tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True,
                     return_attention_mask=False, return_token_type_ids=segments)  # fmt: skip


def whole_words_that_fit(count_pieces, words: list[str], max_length: int) -> int:
    """How many leading words fit whole in ``max_length`` pieces, ``count_pieces(text)`` counting the
    specials too (a binary search: a longer prefix never has fewer pieces)."""
    fits, over = 0, len(words)  # a prefix of ``fits`` words fits; one of ``over`` words does not
    while over - fits > 1:
        mid = (fits + over) // 2
        if count_pieces(" ".join(words[:mid])) <= max_length:
            fits = mid
        else:
            over = mid
    return fits


def _whole_words(tokenizer, words: list[str], max_length: int, segments: bool):
    """(ids, offsets, segment ids) of the longest prefix of whole words that fits in ``max_length``."""

    def count(text: str) -> int:
        return len(tokenizer([text], truncation=True, max_length=max_length + 1)["input_ids"][0])

    kept = whole_words_that_fit(count, words, max_length)
    out = _tokenize(tokenizer, [" ".join(words[:kept])], max_length, segments)
    return out["input_ids"][0], out["offset_mapping"][0], (out["token_type_ids"][0] if segments else None)


def concat_tokens(first: TokenEncoded, second: TokenEncoded) -> TokenEncoded:
    """``first``'s sentences then ``second``'s, as one set (rows keep their order)."""
    a, b = first.encoded, second.encoded
    types = a.token_type_ids + b.token_type_ids if a.token_type_ids is not None else None
    encoded = Encoded(a.input_ids + b.input_ids, types, np.arange(len(a) + len(b), dtype=np.int64), a.pad_id)
    return TokenEncoded(encoded, first.word_of + second.word_of, first.labels + second.labels,
                        first.words + second.words, first.words_cut + second.words_cut,
                        first.sentences_cut + second.sentences_cut)  # fmt: skip


def pad_labels(tokens: TokenEncoded, indices: np.ndarray) -> np.ndarray:
    """(B, T) label ids for ``indices``, right-padded with IGNORE to the batch's longest sentence."""
    width = max(len(tokens.labels[i]) for i in indices)
    out = np.full((len(indices), width), IGNORE, dtype=np.int64)
    for row, i in enumerate(indices):
        out[row, : len(tokens.labels[i])] = tokens.labels[i]
    return out


def word_tags(label_ids: np.ndarray, word_of: np.ndarray, words: int, labels: list[str]) -> list[str]:
    """A sentence's tag per word from per-piece predictions (first pieces); words cut off get 'O', by
    ``--max-length`` or by a fixed-shape graph that returned fewer pieces than were encoded."""
    out = ["O"] * words
    for piece in np.flatnonzero(word_of[: len(label_ids)] >= 0):
        out[int(word_of[piece])] = labels[int(label_ids[piece])]
    return out


def score_token_logits(logits: list[np.ndarray], tokens: TokenEncoded, split: TaggedSplit,
                       labels: list[str]) -> dict[str, float]:  # fmt: skip
    """Entity scores of per-sentence (T, C) logits against the split's gold tags (every word counts,
    cut-off ones included: a word the model never saw is a word it missed)."""
    from codir_edge.data.ner_metrics import ner_scores

    predicted = [word_tags(row.argmax(axis=-1), tokens.word_of[i], len(split.words[i]), labels)
                 for i, row in enumerate(logits)]  # fmt: skip
    return ner_scores(split.tags, predicted)


def truncation_note(train: TokenEncoded, dev: TokenEncoded, max_length: int) -> dict | None:
    """How many words --max-length cut off (counted, said once, never silently dropped)."""
    from codir_edge.core.notes import note

    counts = {"train_words_cut": train.words_cut, "train_sentences_cut": train.sentences_cut,
              "dev_words_cut": dev.words_cut, "dev_sentences_cut": dev.sentences_cut}  # fmt: skip
    if not train.words_cut and not dev.words_cut:
        return None
    note(f"--max-length {max_length} cuts {train.words_cut} of {train.words} training words "
         f"({train.sentences_cut} sentences) and {dev.words_cut} of {dev.words} dev words: those words are "
         "unlabelled in training and count as missed in the dev scores; raise --max-length to keep them")  # fmt: skip
    return counts
