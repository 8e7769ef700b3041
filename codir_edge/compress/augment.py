"""Cheap augmentation for small tasks: new sentences from the labelled ones, labelled by the teacher only.

TinyBERT grows a small task's training set with sentences whose words were replaced by GloVe or
masked-LM neighbours, and distils on them. This keeps the idea without another model: each new
sentence comes from one labelled sentence by one of three edits, chosen at random,

- token dropout: every word dropped with probability 0.1 (at least one word kept);
- span deletion: one span of 1 to a fifth of the words removed;
- word swaps: about 15% of the words replaced by one of their 8 nearest neighbours among whole-word
  tokens of the teacher's vocabulary, by cosine similarity of the teacher's input embeddings (the
  teacher's own notion of related words, at no cost).

The edit can change the label ("not good" without "not"), which is why these rows never get the
original label: the teacher's prediction in the bank is all they are trained on. Words are split on
whitespace, as GLUE's pre-tokenised sentences are; in a pair task one of the two texts is edited.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from codir_edge.data.examples import Examples

DROPOUT = 0.1
SWAP_SHARE = 0.15
NEIGHBOURS = 8
_WORD_STARTS = ("Ġ", "▁")  # byte-level BPE and SentencePiece mark a token that starts a word


@dataclass(frozen=True)
class Augmented:
    texts: list[str]
    text_pairs: list[str] | None
    made: int
    by_edit: dict[str, int]


def word_neighbours(tokenizer, embeddings: np.ndarray, words: set[str], k: int = NEIGHBOURS) -> dict[str, list[str]]:
    """For each of ``words`` that is one whole-word token, its ``k`` nearest whole-word tokens.

    embeddings: (V, d) the teacher's input embedding table."""
    vocab = tokenizer.get_vocab()
    lower = bool(getattr(tokenizer, "do_lower_case", False)) or _lowercases(tokenizer)
    marker = _word_start_marker(vocab)
    candidates: dict[str, int] = {}
    for token, index in vocab.items():
        word = _whole_word(token, marker)
        if word is not None and index < len(embeddings):
            candidates.setdefault(word, index)
    if not candidates:
        return {}
    names = list(candidates)
    table = embeddings[[candidates[n] for n in names]].astype(np.float32)
    table /= np.linalg.norm(table, axis=1, keepdims=True).clip(min=1e-6)
    position = {name: i for i, name in enumerate(names)}
    asked = sorted({w.lower() if lower else w for w in words} & position.keys())
    out: dict[str, list[str]] = {}
    for start in range(0, len(asked), 512):
        chunk = asked[start : start + 512]
        sims = table[[position[w] for w in chunk]] @ table.T  # (n, C)
        for row, word in enumerate(chunk):
            sims[row, position[word]] = -np.inf
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        for row, word in enumerate(chunk):
            order = top[row][np.argsort(-sims[row, top[row]])]
            out[word] = [names[j] for j in order]
    return out


def _word_start_marker(vocab: dict[str, int]) -> str | None:
    """The prefix that marks a word's first token in byte-level BPE ("Ġ") or SentencePiece ("▁")
    vocabularies, where an unmarked token continues a word; None for WordPiece, which marks the
    continuations ("##") instead."""
    for marker in _WORD_STARTS:
        if sum(token.startswith(marker) for token in vocab) > len(vocab) // 10:
            return marker
    return None


def _whole_word(token: str, marker: str | None) -> str | None:
    """The word a vocabulary token stands for when it is a whole alphabetic word, else None."""
    if marker is None:
        word = None if token.startswith("##") else token
    else:
        word = token[len(marker) :] if token.startswith(marker) else None
    return word if word is not None and len(word) > 1 and word.isalpha() else None


def _lowercases(tokenizer) -> bool:
    try:
        ids = tokenizer("Zebra", add_special_tokens=False)["input_ids"]
        return ids == tokenizer("zebra", add_special_tokens=False)["input_ids"]
    except Exception:  # noqa: BLE001 - a tokenizer that cannot say is treated as cased
        return False


def augment(examples: Examples, per_example: int, seed: int, neighbours: dict[str, list[str]]) -> Augmented:
    """``per_example`` edited copies of every example (fewer where an edit changes nothing)."""
    rng = random.Random(seed)
    texts, pairs = [], []
    by_edit = {"dropout": 0, "span_deletion": 0, "word_swap": 0}
    edits = {"dropout": _dropout, "span_deletion": _span_deletion, "word_swap": _swap}
    for i, text in enumerate(examples.texts):
        pair = examples.text_pairs[i] if examples.text_pairs is not None else None
        for _ in range(per_example):
            name = rng.choice(list(edits))
            second = pair is not None and rng.random() < 0.5
            source = pair if second else text
            edited = edits[name](source.split(), rng, neighbours)
            if not edited or " ".join(edited) == " ".join(source.split()):
                continue
            new = " ".join(edited)
            texts.append(text if second else new)
            pairs.append(new if second else pair)
            by_edit[name] += 1
    return Augmented(texts, pairs if examples.text_pairs is not None else None, len(texts), by_edit)


def _dropout(words: list[str], rng: random.Random, neighbours) -> list[str]:  # noqa: ARG001
    if not words:
        return words
    kept = [w for w in words if rng.random() >= DROPOUT]
    return kept or [rng.choice(words)]


def _span_deletion(words: list[str], rng: random.Random, neighbours) -> list[str]:  # noqa: ARG001
    if len(words) < 2:
        return words
    span = rng.randint(1, max(1, len(words) // 5))
    start = rng.randrange(0, len(words) - span + 1)
    return words[:start] + words[start + span :]


def _swap(words: list[str], rng: random.Random, neighbours: dict[str, list[str]]) -> list[str]:
    out = list(words)
    for i, word in enumerate(words):
        options = neighbours.get(word) or neighbours.get(word.lower())
        if options and rng.random() < SWAP_SHARE:
            out[i] = rng.choice(options)
    return out
