"""Tokenization and batching with the real MiniLM tokenizer."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from codir_edge.data.encode import encode, eval_batches, pad_batch, train_batches
from codir_edge.data.examples import Examples


def test_encode_truncates_pairs_and_pads_per_batch(backbone_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(backbone_dir))
    long = "word " * 200
    examples = Examples(["short one", long, "", "café ünïcode"], ["second", long, "", "x"], [0, 1, 0, 1], "mem")
    enc = encode(tokenizer, examples, max_length=16)
    assert enc.lengths.max() == 16 and enc.lengths[2] == 3  # [CLS] [SEP] [SEP] for an empty pair
    batch = pad_batch(enc, np.array([0, 2]))
    assert batch["input_ids"].shape == (2, int(enc.lengths[[0, 2]].max()))
    assert batch["attention_mask"].sum(axis=1).tolist() == enc.lengths[[0, 2]].tolist()
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids"}
    expected = tokenizer("short one", "second")["input_ids"]
    assert batch["input_ids"][0, : len(expected)].tolist() == expected


@given(
    lengths=st.lists(st.integers(1, 64), min_size=1, max_size=300),
    batch=st.integers(1, 40),
    seed=st.integers(0, 1000),
    grouped=st.booleans(),
)
def test_batches_cover_every_example_once(lengths, batch, seed, grouped):
    lengths = np.array(lengths)
    for batches in (
        eval_batches(lengths, batch),
        train_batches(lengths, batch, np.random.default_rng(seed), grouped, mega_batches=3),
    ):
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(len(lengths)))
        assert all(1 <= len(b) <= batch for b in batches)
    sorted_batches = eval_batches(lengths, batch)
    assert all(lengths[a].max() <= lengths[b].min() for a, b in zip(sorted_batches, sorted_batches[1:], strict=False))
