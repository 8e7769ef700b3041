"""The hard check every strings-in model passes before it ships: the same scores as the Hugging Face
tokenizer followed by the plain graph, on real sentences topped up with generated ones and on the
cases tokenizers get wrong (scripts, accents, empty text, text beyond the maximum length)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codir_edge.core.errors import CheckFailedError


def check_strings_model(
    strings_path: Path,
    model_path: Path,
    tokenizer,
    texts: list[tuple[str, str | None]],
    max_length: int,
    atol: float = 1e-4,
) -> dict:
    """The strings model (built with its token ids exposed) against tokenizer + model on every text:
    the same ids exactly and logits within ``atol``; a mismatch fails the export, with all of them
    counted and the first named. For SentencePiece, a segmentation that differs only between
    equal-score alternatives (``unigram.equal_score_tie``) is counted as a tie, not a failure."""
    from codir_edge.export.strings.unigram import equal_score_tie
    from codir_edge.onnx.session import create_session

    strings = create_session(strings_path, 1, custom_ops=True)
    plain = create_session(model_path, 1)
    names = [i.name for i in plain.get_inputs()]
    worst, failures, ties = 0.0, [], 0
    for text, pair in texts:
        feed = {"text": np.array([text], dtype=object)}
        if pair is not None:
            feed["text_pair"] = np.array([pair], dtype=object)
        got, _, *ids = strings.run(None, feed)
        encoded = tokenizer(text, pair, truncation=True, max_length=max_length, return_tensors="np")
        expected = plain.run(None, {n: encoded[n].astype(np.int64) for n in names})[0]
        exposed = dict(zip(names, ids, strict=True))
        same_ids = all(np.array_equal(exposed[n], encoded[n]) for n in names)
        if not same_ids and equal_score_tie(
            tokenizer, exposed["input_ids"][0].tolist(), encoded["input_ids"][0].tolist()
        ):
            ties += 1
            continue
        diff = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else float("inf")
        worst = max(worst, diff)
        if not (diff <= atol and same_ids):
            failures.append(text[:40])
    if failures:
        raise CheckFailedError(
            f"model.strings.onnx disagrees with tokenizer + model on {len(failures)} of {len(texts)} texts "
            f"(worst |diff| {worst:.2e}, first: {failures[0]!r}): pass --no-tokenizer-in-graph and report it"
        )
    return {
        "texts": len(texts),
        "max_abs_diff": worst,
        "non_ascii": sum(not (t + (p or "")).isascii() for t, p in texts),
        "equal_score_ties": ties,
    }


HARD_TEXTS = (
    "",
    "Héllo WORLD, the naïve café's crème brûlée!",
    "Ünïcödé ßtraße Łódź Dvořák Ἀθῆναι ΟΔΟΣ Ελληνικά русский йогурт Ёлка",
    "日本語のテキスト、中文文本。한국어 텍스트 ภาษาไทย",
    "emoji😀 in words, ©2024 x¯y, full-width ＡＢＣ１２３ and ligatures ﬁne",
    "tabs\tand\nnewlines\r\nand\u00a0no-break\u2003spaces and zero\u200bwidth",
    'don\'t stop-believing... (really?!) "quoted" — dashes – and ‘curly’ quotes',
)


def generated_sentences(tokenizer, count: int, seed: int = 0) -> list[str]:
    """Where --data gives too few: sentences of whole vocabulary words in mixed case with punctuation,
    so the check still exercises casing, punctuation and word splitting."""
    rng = np.random.default_rng(seed)
    special = set(tokenizer.all_special_tokens)
    words = sorted(t for t in tokenizer.get_vocab() if t.isalpha() and t not in special and not t.startswith("#"))
    marks = ["", "", "", ",", ".", "!", "?", "'s", ":", ")"]
    sentences = []
    for _ in range(count):
        picked = rng.choice(words, size=int(rng.integers(1, 40)))
        shaped = [w.upper() if rng.random() < 0.05 else w.capitalize() if rng.random() < 0.2 else w for w in picked]
        sentences.append(" ".join(w + marks[int(rng.integers(len(marks)))] for w in shaped))
    return sentences


def probe_texts(
    sentences: list[str], pairs: list[str] | None, max_length: int, specials: tuple[str, ...] = ()
) -> list[tuple[str, str | None]]:
    """Real sentences plus the hard cases: non-ASCII scripts, empty text, text beyond ``max_length``,
    and the tokenizer's special tokens typed into the text (a literal "</s>" or "[SEP]")."""
    long_text = " ".join(sentences[:60]) or "word " * (4 * max_length)
    typed = " ".join(f"x {token} y{token}z" for token in specials)
    hard = [*HARD_TEXTS, *([typed] if typed else []), long_text]
    texts: list[tuple[str, str | None]] = [(s, pairs[i] if pairs else None) for i, s in enumerate(sentences)]
    for i, text in enumerate(hard):
        texts.append((text, hard[-1 - i] if pairs is not None else None))
    return texts


def check_offsets_model(strings_path: Path, model_path: Path, tokenizer, texts: list[str], max_length: int,
                        atol: float = 1e-4) -> dict:  # fmt: skip
    """The tagger's strings model (``offsets.py``, built with its token ids exposed) against the Hugging
    Face tokenizer + model on every text (``offsets.python_reference``): the same ids, the tokenizer's
    ``offset_mapping`` exactly (and in UTF-16 code units), the same white-space words, logits within
    ``atol``; a mismatch fails the export, with all of them counted and the first named."""
    from codir_edge.export.strings.offsets import python_reference
    from codir_edge.onnx.session import create_session

    strings = create_session(strings_path, 1, custom_ops=True)
    plain = create_session(model_path, 1)
    names = [i.name for i in plain.get_inputs()]
    outputs = [o.name for o in strings.get_outputs()]
    worst, failures = 0.0, []
    for text in texts:
        got = dict(zip(outputs, strings.run(None, {"text": np.array([text], dtype=object)}), strict=True))
        want = python_reference(text, tokenizer, max_length)
        feed = {"input_ids": [want["input_ids"]], "attention_mask": [[1] * len(want["input_ids"])],
                "token_type_ids": got.get("token_type_ids", [[0] * len(want["input_ids"])])}  # fmt: skip
        expected = plain.run(None, {n: np.asarray(feed[n], dtype=np.int64) for n in names})[0]
        same = got["input_ids"][0].tolist() == want["input_ids"] and all(
            [tuple(o) for o in got[key].tolist()] == want[key] for key in ("offsets", "offsets_utf16")
        ) and got["word_ids"].tolist() == want["word_ids"]  # fmt: skip
        diff = float(np.max(np.abs(got["logits"] - expected))) if got["logits"].shape == expected.shape else np.inf
        worst = max(worst, diff)
        if not (same and diff <= atol):
            failures.append(text[:40])
    if failures:
        raise CheckFailedError(
            f"model.strings.onnx disagrees with tokenizer + model on {len(failures)} of {len(texts)} texts "
            f"(worst |diff| {worst:.2e}, first: {failures[0]!r}): pass --no-tokenizer-in-graph and report it"
        )
    return {"texts": len(texts), "max_abs_diff": worst, "non_ascii": sum(not t.isascii() for t in texts),
            "offsets": "equal to the tokenizer's offset_mapping on every text"}  # fmt: skip
